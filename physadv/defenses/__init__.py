"""Defenses in front of a model: input transforms and patch-specific smoothing."""
