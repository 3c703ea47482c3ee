"""Errors a user can act on: the CLI prints them as one line and exits non-zero."""


class PhysadvError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class ModelError(PhysadvError):
    """A model file is missing, corrupt, unsupported or not attackable."""


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C in a stage whose leftovers differ from its command's usual ones (``kept``: what
    was written, said after "physadv: interrupted; what was written is kept: ")."""

    def __init__(self, kept: str):
        super().__init__(kept)
        self.kept = kept
