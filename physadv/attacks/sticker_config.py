"""The settings of an RP2 sticker attack (kept free of torch so the CLI starts fast)."""

from __future__ import annotations

from dataclasses import dataclass

from physadv.config import Settings, setting
from physadv.eot.view_range import ViewRange

GOALS = ("targeted", "untargeted", "hide", "relabel")


@dataclass
class StickerConfig(Settings):
    """Everything that decides the result (saved in checkpoints, the summary and ``config.yaml``).

    ``goal``, ``true_class`` and ``target`` are resolved from the model by the job (class ids);
    ``batch`` 0 is resolved by :class:`StickerAttack` from the model and device.
    """

    goal: str = setting(
        "targeted", "what the sticker does", choices=GOALS, derived=True
    )  # targeted / untargeted (classifiers), hide / relabel (detectors)
    true_class: int = setting(0, "the sign's class id in the model", derived=True)
    target: int | None = setting(None, "the class id the sign should read as", derived=True)
    mask: str = setting(
        "graffiti",
        "graffiti (blocks placed where they work, learned first; best on classifiers), auto (the same on "
        "a finer grid), blocks (two fixed blocks), stripes (two full-width stripes; best on detectors), "
        "art (five squares), poster (whole face), or a mask image (white = sticker)",
    )
    area: float = setting(
        0.15, "learned masks: the most of the face the stickers may cover", unit="fraction",
        minimum=0.01, maximum=1.0,
    )  # fmt: skip
    place_share: float = setting(
        0.4, "learned masks: the share of the steps spent finding the places", minimum=0.0, maximum=0.95
    )
    mask_lr: float = setting(0.1, "learned masks: Adam's rate for the cells' logits", minimum=0.0)
    sign: str = setting("stop", "the sign the sticker goes on")
    steps: int = setting(
        500, "optimisation steps (learned masks: the first place_share find the places)", minimum=1
    )
    # colours saturate within ~100 steps; 0.05 ends weaker (bench/sticker_masks.py --lr)
    lr: float = setting(0.2, "Adam learning rate (sticker colours in [0, 1])", minimum=0.0)
    batch: int = setting(0, "EOT views per step (0: 32 crops / 8 frames on CPU, 4x on CUDA)", minimum=0,
                        maximum=4096)  # fmt: skip
    pool: int = setting(384, "EOT views drawn once and sampled from (at least batch)", minimum=8)
    lambda_norm: float = setting(0.02, "weight of RP2's |M·δ| term", minimum=0.0)
    lambda_nps: float = setting(0.1, "weight of non-printability", minimum=0.0)
    lambda_tv: float = setting(0.05, "weight of total variation", minimum=0.0)
    resolution: int = setting(128, "sticker pixels per side while optimising", unit="px", minimum=16,
                             maximum=1024)  # fmt: skip
    seed: int = setting(0, "random seed of the views and the optimisation")
    view_range: ViewRange = setting(ViewRange(), "where EOT views are drawn from")

    def as_dict(self) -> dict:
        return self.to_dict()
