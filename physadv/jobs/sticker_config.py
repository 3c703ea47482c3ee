"""The settings of ``physadv sticker`` (kept free of torch so the CLI starts fast)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from physadv.attacks.sticker_config import StickerConfig
from physadv.config import setting
from physadv.jobs.attack_job import PAPERS, AttackJob

TASKS = ("classify", "detect")


@dataclass
class StickerJob(AttackJob):
    """Every setting of ``physadv sticker`` (one source of defaults; ``--config`` reads this as YAML)."""

    model: str = setting("default", "a classifier or detector file, a model yaml, or 'default'")
    task: str = setting(
        "classify", "with model 'default': classify (sign classifier) or detect (YOLO)", choices=TASKS
    )
    target: str | None = setting(
        None, "classifier: the class the sign should read as; detector: relabel the sign as this class"
    )
    untargeted: bool = setting(False, "classifier: any class but the true one")
    true_class: str | None = setting(None, "the sign's class in the model (default: 'stop sign' or 'stop')")
    eval_views: int = setting(200, "held-out EOT views for the evaluation", minimum=0)
    lab: Path | None = setting(None, "lab-table scene spec (default: scenes/lab_rp2.yaml)")
    driveby: Path | None = setting(None, "drive-by scene spec (default: scenes/driveby_stop.yaml)")
    scenes: bool = setting(True, "replay the lab table and the drive-by after optimising")
    paper: str = setting("letter", "paper for the sticker sheet and poster tiles", choices=PAPERS)
    dpi: int = setting(300, "print resolution of the printables", unit="dpi", minimum=72, maximum=1200)
    attack: StickerConfig = setting(StickerConfig(), "RP2's settings")
