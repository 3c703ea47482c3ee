"""``python cli.py …`` does exactly what the ``physadv`` command does."""

from physadv.cli import main

if __name__ == "__main__":
    main()
