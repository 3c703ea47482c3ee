"""A list of recordings to replay as one (``physadv eval --sources list.txt``).

One recording a line: a video file or a folder of frames, optionally followed by its ground-truth
file (JSON lines, CSV or a folder of YOLO labels, as ``--gt``). Paths with spaces are quoted
(shell rules); relative paths are read from the list's own folder; blank lines and ``#`` comments
are skipped::

    drive_monday.mp4   drive_monday.jsonl
    "night drive/cam 2.mp4"
    # left out for now: drive_tuesday.mp4
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from physadv.errors import PhysadvError


@dataclass(frozen=True)
class ListedSource:
    """One line of the list: the recording, its ground truth (None: none), and a short unique
    ``name`` (the file's stem; its parent folder too where two stems collide) for reports."""

    path: Path
    gt: Path | None
    name: str


def _entry(line: str, number: int, base: Path, where: str) -> tuple[Path, Path | None]:
    try:
        fields = shlex.split(line, comments=True)
    except ValueError as e:
        raise PhysadvError(f"{where} line {number}: {e} ({line.strip()!r})") from None
    if len(fields) > 2:
        raise PhysadvError(
            f"{where} line {number}: give a recording and at most its ground truth, got {len(fields)} "
            "fields (quote paths with spaces)"
        )
    paths = [p if p.is_absolute() else base / p for p in map(Path, fields)]
    for p in paths:
        if not p.exists():
            raise PhysadvError(f"{where} line {number}: '{p}' does not exist")
    return paths[0], paths[1] if len(paths) == 2 else None


def read_source_list(path: Path) -> list[ListedSource]:
    """The recordings ``path`` lists, in its order.

    Raises:
        PhysadvError: the list is missing or empty, a listed file does not exist, a recording is
            listed twice, or a line has more than two fields (one line, naming the line).
    """
    path = Path(path)
    if not path.is_file():
        raise PhysadvError(f"--sources '{path}' is not a file (one video or folder of frames a line)")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            entries.append(_entry(line, number, path.parent, f"--sources {path.name}"))
    if not entries:
        raise PhysadvError(f"--sources '{path}' lists no recordings")
    resolved = [p.resolve() for p, _ in entries]
    if len(set(resolved)) < len(resolved):
        twice = next(p for p in resolved if resolved.count(p) > 1)
        raise PhysadvError(f"--sources '{path}' lists '{twice}' twice")
    stems = [p.stem for p, _ in entries]  # names go into file names (annotated_NAME.mp4): no slashes
    names = [p.stem if stems.count(p.stem) == 1 else f"{p.parent.name}_{p.stem}" for p, _ in entries]
    names = [n if names.count(n) == 1 else f"{n}_{k + 1}" for k, n in enumerate(names)]
    return [ListedSource(p, gt, n) for (p, gt), n in zip(entries, names, strict=True)]
