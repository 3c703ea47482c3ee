"""Images as physadv reads and frames them: RGB, letterboxed the way Ultralytics does."""

from __future__ import annotations

import cv2
import numpy as np

LETTERBOX_FILL = 114 / 255  # Ultralytics' grey padding, as a float in [0, 1]


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, int, int]:
    """Resize HWC RGB so its long side is ``size`` and pad to a square; returns the canvas, the
    scale and the left/top padding in canvas pixels."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    fill = round(LETTERBOX_FILL * 255)
    canvas = np.full((size, size, 3), fill, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top : top + nh, left : left + nw] = resized
    return canvas, scale, left, top
