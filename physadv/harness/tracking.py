"""Ground truth from one marked box: follow it through a video by template matching.

The tracker looks only at pixels, never at the model under test, so an attack that hides the
object from the model does not hide it from the ground truth. It searches near the last box at a
few scales (a sign grows as a car approaches), and refreshes its template while the match stays
good; when the match is poor it keeps the last box and marks the frame untracked.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

SCALES = (0.94, 0.97, 1.0, 1.03, 1.06)
SEARCH = 1.0  # search window: the last box grown by this many box sizes on each side
MIN_SCORE = 0.5  # normalised cross-correlation below this: lost
REFRESH_SCORE = 0.8  # above this the template is refreshed from the frame


def _gray(image: torch.Tensor) -> np.ndarray:
    return (image.mean(0).clamp(0, 1).numpy() * 255).astype(np.uint8)


class BoxTracker:
    """Follows ``box`` (x1, y1, x2, y2 pixels in the first frame it is given)."""

    def __init__(self, box):
        self.box = tuple(float(v) for v in box)
        self.template: np.ndarray | None = None

    def _crop(self, gray: np.ndarray, box) -> np.ndarray:
        x1, y1, x2, y2 = (round(v) for v in box)
        return gray[max(0, y1) : max(y1 + 1, y2), max(0, x1) : max(x1 + 1, x2)]

    def update(self, image: torch.Tensor) -> tuple[tuple[float, float, float, float], bool]:
        """The box in this frame (``image`` ``[3, H, W]``) and whether the match was trusted."""
        gray = _gray(image)
        if self.template is None:
            self.template = self._crop(gray, self.box)
            return self.box, True
        x1, y1, x2, y2 = self.box
        w, h = x2 - x1, y2 - y1
        H, W = gray.shape
        sx1, sy1 = max(0, round(x1 - SEARCH * w)), max(0, round(y1 - SEARCH * h))
        sx2, sy2 = min(W, round(x2 + SEARCH * w)), min(H, round(y2 + SEARCH * h))
        window = gray[sy1:sy2, sx1:sx2]
        best = (-1.0, self.box)
        for scale in SCALES:
            tw, th = max(4, round(w * scale)), max(4, round(h * scale))
            if tw >= window.shape[1] or th >= window.shape[0]:
                continue
            template = cv2.resize(self.template, (tw, th), interpolation=cv2.INTER_AREA)
            scores = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED)
            _, score, _, (mx, my) = cv2.minMaxLoc(scores)
            if score > best[0]:
                best = (score, (sx1 + mx, sy1 + my, sx1 + mx + tw, sy1 + my + th))
        score, box = best
        if score < MIN_SCORE:
            return self.box, False
        self.box = tuple(float(v) for v in box)
        if score > REFRESH_SCORE:
            self.template = self._crop(gray, self.box)
        return self.box, True
