"""Replays through a model: verdicts per object and frame, rates with Wilson intervals, reports."""
