"""Segment and complete (SAC; Liu et al., CVPR 2022): a patch segmenter marks the pixels it believes
belong to an adversarial patch, the marks are *completed* to the square a patch is, and the square
is blanked before the detector sees the image. A completed square is also an alarm.

Completion: each connected region of the thresholded mask (0.5) of at least ``min_area`` of the image
becomes the smallest square that holds it, grown by ``grow`` of its side — SAC's own "simple shape
completion" (its code's bounding-box variant) made square, per region so that two people with two
patches get two squares. SAC's default search over known square sizes needs the patch size in pixels
in advance, which a detector seeing people at every distance does not have.

Adaptive attack (SAC's section 5, "BPDA"): the blanking mask passes the gradient straight through to
the segmenter's probabilities (the threshold and the completion as the identity), so the detector's
loss reaches the patch both through the image and through the segmenter; and
:meth:`SegmentAndComplete.evasion_penalty` — the segmenter's strongest scores — goes into the patch
loss so the patch learns to be missed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from physadv.defenses.alarms import MaskingDetector
from physadv.defenses.masking import MASK_FILL
from physadv.defenses.segmenter import PatchSegmenter, load_segmenter

THRESHOLD = 0.5


def complete_squares(mask: np.ndarray, min_pixels: float, grow: float = 0.1) -> np.ndarray:
    """``[H, W]`` bool → the same with each region of at least ``min_pixels`` replaced by the
    smallest square holding it, grown by ``grow`` of its side (clipped to the image); smaller
    regions are dropped."""
    out = np.zeros(mask.shape, np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    h, w = mask.shape
    for c in range(1, count):
        x, y, bw, bh, area = stats[c]
        if area < min_pixels:
            continue
        side = max(bw, bh) * (1 + grow)
        cx, cy = x + bw / 2, y + bh / 2
        x0, y0 = int(max(0, np.floor(cx - side / 2))), int(max(0, np.floor(cy - side / 2)))
        x1, y1 = int(min(w, np.ceil(cx + side / 2))), int(min(h, np.ceil(cy + side / 2)))
        out[y0:y1, x0:x1] = 1
    return out.astype(bool)


class SegmentAndComplete(MaskingDetector):
    """SAC in front of a detector adapter.

    Args:
        model: the detector adapter.
        segmenter: a file written by ``physadv train patch-segmenter``, or the network itself.
        min_area: the smallest region kept, as a share of the image's pixels.
        grow: how much each completed square grows beyond the region, as a share of its side.
        margin: the adaptive attacker keeps patch probabilities this far under the threshold.
        name: the defense's name in tables.
    """

    kind = "detector"

    def __init__(
        self,
        model,
        segmenter: str | Path | PatchSegmenter,
        min_area: float = 2e-4,
        grow: float = 0.1,
        margin: float = 0.1,
        seed: int = 0,
        name: str = "sac",
    ):
        super().__init__(model, seed)
        if isinstance(segmenter, (str, Path)):
            self.net, self.record = load_segmenter(segmenter, model.device)
        else:  # a network in memory: anything with ``probabilities(images)``
            self.net, self.record = segmenter, {}
        self.min_area, self.grow, self.margin, self._name = min_area, grow, margin, name

    @property
    def name(self) -> str:
        return self._name

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 1, H, W]`` the segmenter's patch probabilities (differentiable)."""
        return self.net.probabilities(images.to(self.device).float())

    def _complete(self, probs: torch.Tensor) -> torch.Tensor:
        raw = (probs > THRESHOLD).cpu().numpy()
        smallest = self.min_area * raw.shape[-1] * raw.shape[-2]
        done = np.stack([complete_squares(m[0], smallest, self.grow)[None] for m in raw])
        return torch.from_numpy(done).to(probs.device)

    @torch.no_grad()
    def locate(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 1, H, W]`` bool: the completed squares."""
        return self._complete(self.probabilities(images))

    @torch.no_grad()
    def clean(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Blank the squares (mid-grey, as physadv's other masking defenses)."""
        return torch.where(mask, torch.full_like(images, MASK_FILL), images)

    def defended_input(self, images: torch.Tensor) -> torch.Tensor:
        """The blanked image; the gradient passes the completion straight through to the segmenter."""
        images = images.to(self.device)
        probs = self.probabilities(images)
        mask = self._complete(probs.detach()).to(images.dtype)
        soft = mask + (probs - probs.detach())  # BPDA: completion ∘ threshold ≈ identity
        return images * (1 - soft) + MASK_FILL * soft

    def evasion_penalty(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable: how far the pixels above ``threshold − margin`` rise above it, averaged over
        them (at least ``min_area`` of the image) and over images, in units of ``margin`` (1: at the
        threshold). Every such pixel gets a gradient, so the whole patch learns to be missed."""
        probs = self.probabilities(images).flatten(1)
        k = max(1, round(self.min_area * probs.shape[1]))
        over = (probs - (THRESHOLD - self.margin)).clamp(min=0)
        hot = (over > 0).sum(dim=1).clamp(min=k)
        return (over.sum(dim=1) / hot).mean() / self.margin
