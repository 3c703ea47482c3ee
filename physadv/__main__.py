"""``python -m physadv …`` (and ``torchrun … -m physadv …``) does what the ``physadv`` command does."""

from physadv.cli import main

main()
