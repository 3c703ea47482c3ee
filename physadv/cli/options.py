"""Options several commands share, written once."""

from __future__ import annotations

import typer


def end2end_option():
    """``--end2end/--nms`` for every command that loads a detector to attack or judge it."""
    return typer.Option(
        None,
        "--end2end/--nms",
        help="Detectors with an NMS-free head (YOLO26): attack and judge that one-to-one head "
        "(--end2end) or the one-to-many branch with NMS (--nms). Default: as Ultralytics' predict.",
    )
