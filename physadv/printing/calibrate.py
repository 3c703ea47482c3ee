"""Read a photograph of the printed chart: find the fiducials, rectify, sample every swatch, fit
the colour transfer from intended to photographed RGB."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from physadv.eot.colour import ColourTransfer
from physadv.errors import PhysadvError
from physadv.printing.chart import ARUCO_DICT, ChartLayout

RECTIFIED_PX_PER_MM = 4.0


@dataclass
class ChartReading:
    """What a photo of the chart says: ``measured [N, 3]`` RGB in [0, 1] per swatch, the fitted
    transfer, and the rectified photo (uint8 RGB) for inspection."""

    intended: np.ndarray
    measured: np.ndarray
    transfer: ColourTransfer
    rectified: np.ndarray
    markers_found: int


def find_markers(photo: np.ndarray) -> dict[int, np.ndarray]:
    """ArUco marker id → ``[4, 2]`` pixel corners in an ``[H, W, 3]`` uint8 RGB photo."""
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    detector = cv2.aruco.ArucoDetector(
        cv2.aruco.getPredefinedDictionary(ARUCO_DICT), cv2.aruco.DetectorParameters()
    )
    corners, ids, _ = detector.detectMarkers(gray)
    if ids is None:
        return {}
    return {int(i): c.reshape(4, 2) for i, c in zip(ids.ravel(), corners, strict=True) if 0 <= i < 4}


def read_chart(photo: np.ndarray, layout: ChartLayout | None = None) -> ChartReading:
    """Rectify the chart in ``photo`` (``[H, W, 3]`` uint8 RGB) and measure every swatch.

    Each swatch is read as the per-channel median of its central half, which ignores glare spots,
    edges and print bleed.

    Raises:
        PhysadvError: fewer than three of the four fiducial markers are visible.
    """
    layout = layout or ChartLayout()
    markers = find_markers(photo)
    if len(markers) < 3:
        raise PhysadvError(
            f"no calibration chart found in the photo: {len(markers)} of 4 fiducial markers visible "
            "(photograph the whole chart, flat and in focus)"
        )
    truth = layout.marker_corners_mm()
    src = np.concatenate([markers[i] for i in sorted(markers)])
    dst = np.concatenate([truth[i] for i in sorted(markers)]) * RECTIFIED_PX_PER_MM
    homography, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if homography is None:
        raise PhysadvError("the chart's fiducial markers are inconsistent; retake the photo")
    size = tuple(round(v * RECTIFIED_PX_PER_MM) for v in layout.page_mm)
    rectified = cv2.warpPerspective(photo, homography, size, flags=cv2.INTER_LINEAR)
    measured = []
    for x0, y0, x1, y1 in layout.swatch_rects_mm() * RECTIFIED_PX_PER_MM:
        qx, qy = (x1 - x0) / 4, (y1 - y0) / 4
        centre = rectified[round(y0 + qy) : round(y1 - qy), round(x0 + qx) : round(x1 - qx)]
        measured.append(np.median(centre.reshape(-1, 3), axis=0) / 255.0)
    measured = np.array(measured, np.float32)
    intended = layout.colours
    transfer = ColourTransfer.fit(torch.from_numpy(intended), torch.from_numpy(measured))
    return ChartReading(intended, measured, transfer, rectified, len(markers))
