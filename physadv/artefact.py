"""The artefact: what an attack makes and a printer prints."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Artefact:
    """A printable adversarial artefact (a patch, or the sticker layer of a sign).

    Attributes:
        image: ``[3, H, W]`` RGB in [0, 1], the intended (pre-print) colours.
        size_mm: printed ``(width, height)`` in millimetres.
        alpha: optional ``[1, H, W]`` in [0, 1]; 0 where nothing is printed (outside stickers).
        provenance: how it was made (model, target, losses and weights, steps, seed, palette, …).
    """

    image: torch.Tensor
    size_mm: tuple[float, float]
    alpha: torch.Tensor | None = None
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.image.ndim != 3 or self.image.shape[0] != 3:
            raise ValueError(f"artefact image must be [3, H, W], got {tuple(self.image.shape)}")
        if self.alpha is not None and self.alpha.shape[-2:] != self.image.shape[-2:]:
            raise ValueError("artefact alpha must match the image's height and width")
        if min(self.size_mm) <= 0:
            raise ValueError(f"artefact size must be positive, got {self.size_mm} mm")

    @property
    def mm_per_pixel(self) -> tuple[float, float]:
        h, w = self.image.shape[-2:]
        return self.size_mm[0] / w, self.size_mm[1] / h
