"""The settings of the patch segmenter's training (kept free of torch so the CLI starts fast)."""

from __future__ import annotations

from dataclasses import dataclass

from physadv.config import Settings, setting


@dataclass
class SegmenterTraining(Settings):
    """How the patch segmenter is trained (saved with it)."""

    steps: int = setting(800, "optimisation steps", minimum=1)
    batch: int = setting(8, "photos per step", minimum=1)
    lr: float = setting(2e-3, "Adam learning rate", minimum=0.0)
    width: int = setting(16, "channels of the U-Net's first level", minimum=4)
    patch_share: float = setting(0.7, "share of the people given a patch", minimum=0.0, maximum=1.0)
    random_share: float = setting(
        0.5, "share of the steps whose patch is a random texture, not one of yours", minimum=0.0, maximum=1.0
    )
    size_mm: tuple[float, float] = setting(
        (200.0, 600.0), "printed side of the patches put on people (the attack's default: 400)", unit="mm"
    )
    pos_weight: float = setting(5.0, "weight of patch pixels in the cross-entropy", minimum=1.0)
    seed: int = setting(0, "random seed of the draws and the initial weights")
    checkpoint_every: int = setting(50, "steps between checkpoints", minimum=1)
