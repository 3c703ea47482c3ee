"""The settings of ``physadv patch`` (kept free of torch so the CLI starts fast)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from physadv.attacks.patch_config import PatchConfig
from physadv.config import setting
from physadv.eot.person_ranges import PersonEOT
from physadv.jobs.attack_job import PAPERS, AttackJob


@dataclass
class PatchJob(AttackJob):
    """Every setting of ``physadv patch`` (one source of defaults; ``--config`` reads this as YAML)."""

    images: Path | None = setting(None, "folder of photos with the people to hide (or scene, or both)")
    scene: Path | None = setting(
        None, "a 'pedestrians' scene spec: optimise in its rendered streets (alone or mixed with images)"
    )
    scene_frames: int = setting(32, "scene: rendered frames kept in the pool", minimum=2, maximum=4096)
    scene_refresh: float = setting(0.5, "scene: frames re-rendered per step", minimum=0.0)
    scene_val: int = setting(48, "scene: held-out street frames to judge on (other seeds)", minimum=0,
                         maximum=100000)  # fmt: skip
    model: list[str] = setting(["default"], "detector .pt, model yaml or 'default'; several: an ensemble")
    classes: list[str] = setting(["person"], "classes to hide: names or ids")
    labels: str = setting(
        "auto",
        "YOLO label folder; 'auto': Ultralytics' images/ -> labels/ sibling if there is one; 'none': the "
        "model's own detections (pseudo ground truth)",
    )
    class_map: str | None = setting(
        None, "label classes -> model classes, 'stop=stop sign,car=ignore' or a YAML/JSON file"
    )
    val: Path | None = setting(None, "held-out photos (default: hold out 'holdout' of the images)")
    val_labels: str = setting("auto", "labels for val (as labels)")
    holdout: float = setting(0.25, "share of the images held out when no val", minimum=0.05, maximum=0.9)
    pseudo_conf: float = setting(
        0.5, "confidence of the detections taken as pseudo ground truth", minimum=0.0, maximum=1.0
    )
    min_box: float = setting(
        16.0, "ignore objects whose box is smaller than this on its short side", unit="photo px", minimum=0.0
    )
    imgsz: int | None = setting(None, "detector input size (default: the model's own; 640 for yamls)",
                                unit="px", minimum=32, maximum=4096)  # fmt: skip
    paper: str = setting("letter", "paper for the tiled PDF", choices=PAPERS)
    dpi: int = setting(150, "print resolution of the printables", unit="dpi", minimum=72, maximum=1200)
    # the command trains with more folds than the library's default (the demo's): folds are what a
    # worn patch meets most (docs/patches.md)
    attack: PatchConfig = setting(PatchConfig(eot=PersonEOT(crease=0.5)), "the patch attack's settings")
