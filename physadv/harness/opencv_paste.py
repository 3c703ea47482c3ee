"""An independent way to put a patch on people: OpenCV's resampling, 8-bit printing and its own JPEG.

The patch attack optimises through physadv's compositing (:mod:`physadv.scene.wear`: PyTorch,
bilinear sampling of an antialiased texture, Pillow's JPEG in its EOT). A patch that works only
through those pixels is caught by judging it through a different implementation of the same physical
event — the same print, at the same place on the same torso plane:

- print: the colour transfer (calibrated, or the typical print) applied in NumPy, rounded to 8 bits;
- resample: shrunk with ``cv2.INTER_AREA`` to its on-screen size, then ``cv2.warpPerspective`` with
  bicubic interpolation (the attack's compositing is bilinear), blended through its warped coverage;
- photograph: the composite encoded by OpenCV's JPEG encoder (libjpeg-turbo) at ``quality``.
"""

from __future__ import annotations

import cv2
import numpy as np


def print_patch(patch: np.ndarray, matrix: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``[P, P, 3]`` float RGB in [0, 1] → printed and photographed colours, uint8."""
    printed = patch.reshape(-1, 3).astype(np.float64) @ matrix.T.astype(np.float64) + bias
    return np.clip(np.round(printed * 255), 0, 255).astype(np.uint8).reshape(patch.shape)


def paste(
    frame: np.ndarray, patch: np.ndarray, quad: np.ndarray, visible: np.ndarray | None = None
) -> np.ndarray:
    """Paste a uint8 ``[P, P, 3]`` patch onto a uint8 ``[H, W, 3]`` frame at ``quad`` (``[4, 2]`` pixels,
    TL, TR, BR, BL); ``visible`` ``[H, W]`` bool: where it may show (None: everywhere)."""
    h, w = frame.shape[:2]
    span = quad.max(axis=0) - quad.min(axis=0)
    side = int(max(2, min(patch.shape[0], np.ceil(span.max()))))
    small = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA) if side < patch.shape[0] else patch
    src = np.float32([[0, 0], [side - 1, 0], [side - 1, side - 1], [0, side - 1]])
    matrix = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    colour = cv2.warpPerspective(
        small, matrix, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    cover = cv2.warpPerspective(
        np.ones((side, side), np.float32),
        matrix,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
    )
    if visible is not None:
        cover = cover * visible
    cover = cover[..., None]
    out = frame.astype(np.float32) * (1 - cover) + colour.astype(np.float32) * cover
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    """A uint8 RGB frame through OpenCV's JPEG encoder and decoder."""
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
