"""Errors a user can act on: the CLI prints them as one line and exits non-zero."""


class PhysadvError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class ModelError(PhysadvError):
    """A model file is missing, corrupt, unsupported or not attackable."""
