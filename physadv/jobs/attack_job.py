"""The settings every attack job shares (``physadv sticker`` and ``physadv patch``): where it runs, how
the printer's colours constrain it, and how often it checkpoints. Kept free of torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from physadv.config import Settings, setting

PAPERS = ("letter", "a4", "a3", "legal")


@dataclass
class AttackJob(Settings):
    """Device, printer and checkpoint settings of an attack job; each job adds its own after these."""

    device: str = setting("auto", "auto, cpu, cuda or cuda:N")
    amp: bool = setting(True, "mixed precision on CUDA")
    end2end: bool | None = setting(
        None,
        "detectors with an NMS-free head (YOLO26): attack the one-to-one head (true) or the one-to-many "
        "branch with NMS (false); empty: as Ultralytics' predict",
    )
    palette: Path | None = setting(None, "printable colours (r,g,b lines); default: physadv's estimate")
    calibration: Path | None = setting(
        None, "colour_transfer.json from 'physadv calibrate photo': optimise as the print will look"
    )
    checkpoint_every: int = setting(25, "steps between checkpoints", minimum=1)
