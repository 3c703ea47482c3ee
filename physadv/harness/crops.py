"""Crops of an object from a frame, as RP2 classified signs in its lab photos and drive-by frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SIGN_FILL = 0.82  # the sign spans this share of the crop, as in the classifier's training crops


def model_inputs(model, frames: torch.Tensor, boxes) -> torch.Tensor:
    """What ``model`` judges of each frame: a crop around the object for a classifier (as RP2 judged
    signs), the whole frame for a detector."""
    if model.kind != "classifier":
        return frames
    return torch.stack([crop_object(f, b, model.input_size) for f, b in zip(frames, boxes, strict=True)])


def crop_object(frame: torch.Tensor, box, size: tuple[int, int], fill: float = SIGN_FILL) -> torch.Tensor:
    """A square crop centred on ``box`` (xyxy pixels) whose side is the box's longer side / ``fill``,
    resized (antialiased) to ``size`` (H, W); edges beyond the frame repeat the border pixels.

    Shape:
        - frame: ``[3, H, W]``; returns ``[3, *size]``
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 2.0) / fill
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    n = max(2, round(side))
    h, w = frame.shape[-2:]
    pad = (max(0, -left), max(0, left + n - w), max(0, -top), max(0, top + n - h))
    padded = F.pad(frame[None], pad, mode="replicate") if any(pad) else frame[None]
    crop = padded[:, :, top + pad[2] : top + pad[2] + n, left + pad[0] : left + pad[0] + n]
    shrink = n > size[0]
    return F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=shrink)[0]
