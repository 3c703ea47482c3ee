"""The colour calibration chart: swatches spanning the gamut, with ArUco fiducials at the corners
so a photograph of the print can be rectified. Coordinates are millimetres on the page, origin at
the top-left, x to the right, y down."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

ARUCO_DICT = cv2.aruco.DICT_4X4_50


@dataclass(frozen=True)
class ChartLayout:
    """Geometry and colours of the chart (A4 landscape by default)."""

    page_mm: tuple[float, float] = (297.0, 210.0)
    margin_mm: float = 10.0
    marker_mm: float = 24.0
    cols: int = 9
    rows: int = 8
    gap_mm: float = 2.0
    levels: tuple[float, ...] = (0.0, 1 / 3, 2 / 3, 1.0)

    @cached_property
    def colours(self) -> np.ndarray:
        """``[N, 3]`` intended RGB: a 4×4×4 grid of the cube, then greys, ``rows·cols`` in all."""
        grid = [list(c) for c in itertools.product(self.levels, repeat=3)]
        extra = self.rows * self.cols - len(grid)
        greys = [[v, v, v] for v in np.linspace(0.1, 0.9, extra)] if extra > 0 else []
        return np.array((grid + greys)[: self.rows * self.cols], dtype=np.float32)

    def marker_corners_mm(self) -> dict[int, np.ndarray]:
        """Marker id → ``[4, 2]`` corners (TL, TR, BR, BL), in the order ArUco reports them."""
        w, h, m, s = *self.page_mm, self.margin_mm, self.marker_mm
        origins = {0: (m, m), 1: (w - m - s, m), 2: (w - m - s, h - m - s), 3: (m, h - m - s)}
        return {
            i: np.array([[x, y], [x + s, y], [x + s, y + s], [x, y + s]], np.float32)
            for i, (x, y) in origins.items()
        }

    def swatch_rects_mm(self) -> np.ndarray:
        """``[N, 4]`` swatch rectangles ``x0, y0, x1, y1`` between the marker columns."""
        w, h = self.page_mm
        x0 = self.margin_mm + self.marker_mm + self.gap_mm * 2
        y0 = self.margin_mm
        cell_w = (w - 2 * x0) / self.cols
        cell_h = (h - 2 * y0) / self.rows
        rects = [
            (
                x0 + c * cell_w,
                y0 + r * cell_h,
                x0 + (c + 1) * cell_w - self.gap_mm,
                y0 + (r + 1) * cell_h - self.gap_mm,
            )
            for r in range(self.rows)
            for c in range(self.cols)
        ]
        return np.array(rects, np.float32)


def render_chart(layout: ChartLayout, px_per_mm: float) -> np.ndarray:
    """The chart as an ``[H, W, 3]`` uint8 RGB image at ``px_per_mm``."""
    w, h = (round(v * px_per_mm) for v in layout.page_mm)
    page = np.full((h, w, 3), 255, np.uint8)
    dictionary = cv2.aruco.getPredefinedDictionary(ARUCO_DICT)
    side = round(layout.marker_mm * px_per_mm)
    for marker_id, corners in layout.marker_corners_mm().items():
        x, y = (round(v * px_per_mm) for v in corners[0])
        marker = cv2.aruco.generateImageMarker(dictionary, marker_id, side)
        page[y : y + side, x : x + side] = marker[..., None]
    for (x0, y0, x1, y1), colour in zip(layout.swatch_rects_mm() * px_per_mm, layout.colours, strict=True):
        page[round(y0) : round(y1), round(x0) : round(x1)] = np.round(colour * 255).astype(np.uint8)
    return page
