"""Expectation over Transformation: random views drawn once and rendered through the scene geometry."""
