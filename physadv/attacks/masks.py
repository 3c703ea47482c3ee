"""Sticker masks on a sign face: where stickers may go (RP2's mask ``M``).

Masks are ``[1, H, W]`` in {0, 1} over the face's bounding rectangle (face coordinates: x right,
y down, fractions of the face's width and height). Stickers only stick on the sign itself, so every
mask is cut to the face's shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from physadv.errors import PhysadvError

# (x0, y0, x1, y1) as fractions of the face. "blocks": two blocks above and below the legend (RP2's
# LOVE / HATE places), 14.7 %; tall rather than wide: at a 32-pixel classifier input a 0.11-high bar
# is 3 pixels and loses most of its effect (bench/sticker_masks.py measures the shapes). "art": a
# handful of square patches across the face.
MASK_RECTS = {
    "blocks": [(0.344, 0.15, 0.656, 0.345), (0.344, 0.65, 0.656, 0.845)],
    # full-width stripes, 14.1 %: they cut the octagon's outline, which is what a detector keys on
    "stripes": [(0.055, 0.219, 0.9375, 0.281), (0.055, 0.711, 0.9375, 0.781)],
    "art": [
        (0.22, 0.16, 0.36, 0.30),
        (0.64, 0.16, 0.78, 0.30),
        (0.22, 0.70, 0.36, 0.84),
        (0.64, 0.70, 0.78, 0.84),
        (0.43, 0.72, 0.57, 0.86),
    ],
}
# masks whose places the attack learns (physadv.attacks.placement), as cells per side of the face:
# "graffiti" blocks an eighth of the face high (letter-sized, cut from sticker paper), "auto" finer
LEARNED_CELLS = {"graffiti": 8, "auto": 16}
MASK_NAMES = ("graffiti", "auto", "blocks", "stripes", "art", "poster")


def _face_alpha(face_alpha: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(face_alpha[None].float(), size=size, mode="bilinear", align_corners=False)[0]


def sticker_mask(spec: str, face_alpha: torch.Tensor, size: tuple[int, int] = (128, 128)) -> torch.Tensor:
    """The fixed mask for ``spec``: ``blocks``, ``stripes``, ``art``, ``poster`` (the whole face, RP2's
    subtle poster) or a path to an image (white = sticker), resized to ``size`` (H, W). (The learned
    masks, ``LEARNED_CELLS``, come from :class:`physadv.attacks.placement.CellPlacement`.)

    Args:
        face_alpha: ``[1, h, w]`` the sign's shape.
    """
    if spec in LEARNED_CELLS:
        raise ValueError(f"mask '{spec}' is learned by the attack (CellPlacement), not drawn")
    alpha = (_face_alpha(face_alpha, size) > 0.5).float()
    h, w = size
    if spec == "poster":
        return alpha
    if spec in MASK_RECTS:
        mask = torch.zeros(1, h, w)
        for x0, y0, x1, y1 in MASK_RECTS[spec]:
            mask[:, round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)] = 1
        return mask * alpha
    path = Path(spec)
    if not path.is_file():
        raise PhysadvError(f"unknown mask '{spec}': use {', '.join(MASK_NAMES)} or a path to a mask image")
    from PIL import Image

    from physadv.data.images import read_image

    # any depth or alpha: transparent pixels count as "no sticker" (composited over black)
    grey = read_image(path, "mask image").over(0.0) @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma
    image = Image.fromarray(grey.round().astype(np.uint8)).resize((w, h), Image.NEAREST)
    mask = torch.from_numpy((np.asarray(image) > 127).astype(np.float32))[None] * alpha
    if mask.sum() == 0:
        raise PhysadvError(f"mask image '{path}' marks no part of the sign face (white = sticker)")
    return mask


def area_fraction(mask: torch.Tensor, face_alpha: torch.Tensor) -> float:
    """Sticker area over the sign face's area."""
    alpha = _face_alpha(face_alpha, tuple(mask.shape[-2:]))
    return float((mask * alpha).sum() / alpha.sum())
