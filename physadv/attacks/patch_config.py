"""The settings of a person-hiding patch attack (kept free of torch so the CLI starts fast)."""

from __future__ import annotations

from dataclasses import dataclass

from physadv.config import Settings, setting
from physadv.eot.person_ranges import PersonEOT
from physadv.scene.assumptions import DEFAULT_HFOV_DEG, PERSON_HEIGHT_M

LOSSES = ("max", "topk", "threshold")
ENSEMBLES = ("sum", "max")
INITS = ("grey", "random")


@dataclass
class PatchConfig(Settings):
    """Everything that decides the result (saved in checkpoints, the summary and ``config.yaml``).

    ``classes`` are resolved from the models by the job (names); ``batch`` 0 is resolved by
    :class:`~physadv.attacks.person_patch.PatchAttack` from the device. Photos place the patch from
    boxes alone with ``hfov_deg`` and ``person_height_m`` (:func:`physadv.scene.wear.planes_from_boxes`).
    """

    classes: list[str] = setting(
        ["person"], "the attacked class names, looked up in each model by name", derived=True
    )
    size_mm: float = setting(400.0, "printed side of the square patch: its size on the torso", unit="mm",
                             minimum=10.0, maximum=3000.0)  # fmt: skip
    steps: int = setting(1000, "optimisation steps (Adam updates)", minimum=1)
    # 0.1 over 0.03: at 600 mm the street's rate falls in 400 steps as far as in 2000 (docs/patches.md)
    lr: float = setting(0.1, "Adam learning rate (patch colours in [0, 1])", minimum=0.0)
    batch: int = setting(0, "people-frames per step (0: 8 on CPU, 32 on CUDA)", minimum=0,
                        maximum=1024)  # fmt: skip
    resolution: int = setting(150, "patch pixels per side while optimising", unit="px", minimum=16,
                             maximum=1024)  # fmt: skip
    # threshold at 0.1 over max: 7–9 points lower true-positive rates at 400 mm (docs/patches.md)
    loss: str = setting(
        "threshold", "per-person score: threshold (sum of the scores above it), max (Thys), topk (mean "
        "of the k best)", choices=LOSSES,
    )  # fmt: skip
    topk: int = setting(5, "loss topk: how many candidates", minimum=1)
    threshold: float = setting(0.1, "loss threshold: scores from here up count", minimum=0.0, maximum=1.0)
    ensemble: str = setting("sum", "several models: sum or max of their losses", choices=ENSEMBLES)
    lambda_nps: float = setting(0.01, "weight of non-printability", minimum=0.0)
    lambda_tv: float = setting(2.5, "weight of total variation (floored at tv_floor, as Thys)", minimum=0.0)
    tv_floor: float = setting(0.1, "total variation counts from this value up", minimum=0.0)
    init: str = setting("grey", "starting patch: grey or random", choices=INITS)
    seed: int = setting(0, "random seed of every draw")
    scene_share: float = setting(
        0.5, "with photos and a scene: the part of each batch from the street", minimum=0.0, maximum=1.0
    )
    hfov_deg: float = setting(
        DEFAULT_HFOV_DEG, "photos: the camera's field of view across the long side", unit="deg",
        minimum=5.0, maximum=170.0,
    )  # fmt: skip
    person_height_m: float = setting(
        PERSON_HEIGHT_M,
        "photos: a person's height, which their box spans",
        unit="m",
        minimum=0.5,
        maximum=2.5,
    )
    eot: PersonEOT = setting(PersonEOT(), "the physical EOT's ranges and which components are on")

    def as_dict(self) -> dict:
        return self.to_dict()
