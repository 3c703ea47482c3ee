"""`physadv models check`: can physadv attack this model? Measured, not assumed."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from physadv.models.classifier import Classifier
from physadv.models.detector import YoloDetector
from physadv.models.loading import UNTRAINED


@dataclass
class CheckReport:
    """What a user needs to know before attacking a model."""

    kind: str
    num_classes: int
    first_names: str
    input_size: tuple[int, int]
    gradient_norm: float
    end2end: bool | None = None
    has_one2one: bool | None = None
    file_format: str = ""
    untrained: bool = False  # built from a model yaml: random weights

    @property
    def attackable(self) -> bool:
        """A finite, non-zero gradient reached the input pixels."""
        return math.isfinite(self.gradient_norm) and self.gradient_norm > 0

    def as_dict(self) -> dict:
        return {**asdict(self), "attackable": self.attackable}


def input_gradient_norm(model: YoloDetector | Classifier, size: tuple[int, int], seed: int = 0) -> float:
    """L2 norm of d(loss)/d(input) for a random image, with the loss an attack would use:
    the top class score over all candidates (detector) or the top logit (classifier)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, *size, generator=g).to(model.device).requires_grad_(True)
    if isinstance(model, YoloDetector):
        loss = model.candidates(x).scores.max().log()  # log: no sigmoid saturation on untrained heads
    else:
        loss = model.logits(x).max()
    loss.backward()
    return float(x.grad.norm()) if x.grad is not None else 0.0


def check_model(model: YoloDetector | Classifier) -> CheckReport:
    """Describe ``model`` and measure whether a gradient reaches its input."""
    if isinstance(model, YoloDetector):
        side = model.imgsz or model.train_imgsz
        size = (side, side)
        end2end, has_one2one = model.end2end, model.has_one2one
    else:
        size = model.input_size
        end2end = has_one2one = None
    return CheckReport(
        kind=model.kind,
        num_classes=model.num_classes,
        first_names=model.names.preview(),
        input_size=size,
        gradient_norm=input_gradient_norm(model, size),
        end2end=end2end,
        has_one2one=has_one2one,
        file_format=model.file_format,
        untrained=model.file_format == UNTRAINED,
    )
