"""Read a photograph of the printed chart: find the fiducials, rectify, sample every swatch, leave
out the swatches that cannot be trusted, fit the colour transfer from intended to photographed RGB.

A swatch is left out (and named by its row and column on the chart, counted from 1 at the top-left)
when
- ``uneven``: the four quarters of its centre disagree (ΔE2000 > :data:`UNEVEN_DE`) — partly covered,
  a shadow's edge, a glare spot;
- ``covered``: the paper around it is not the page's white (ΔE2000 > :data:`PAPER_DE` from a plane
  fitted to the white around all swatches, so an even light gradient is fine) — a finger, a sheet,
  a deep shadow over it;
- ``off the fit``: its colour is far from what the transfer fitted on the others predicts (ΔE2000 >
  :data:`FIT_DE` and 4× the median) — whatever the two checks above missed.
Fewer than :data:`MIN_TRUSTED_FRACTION` of the swatches left is an error: retake the photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from physadv.eot.colour import ColourTransfer, delta_e2000, rgb_to_lab
from physadv.errors import PhysadvError
from physadv.printing.chart import ARUCO_DICT, ChartLayout

RECTIFIED_PX_PER_MM = 4.0
UNEVEN_DE = 8.0
PAPER_DE = 10.0
FIT_DE = 15.0
MIN_TRUSTED_FRACTION = 0.5


@dataclass
class ChartReading:
    """What a photo of the chart says: ``measured [N, 3]`` RGB in [0, 1] per swatch, which swatches
    were trusted (``trusted [N]`` bool; ``reasons[i]`` says why swatch ``i`` was left out, "" if
    kept), the transfer fitted on the trusted ones, and the rectified photo (uint8 RGB)."""

    intended: np.ndarray
    measured: np.ndarray
    transfer: ColourTransfer
    rectified: np.ndarray
    markers_found: int
    trusted: np.ndarray
    reasons: list[str]
    positions: list[tuple[int, int]]  # (row, column) of each swatch on the chart, from 1

    def left_out(self) -> list[str]:
        """``"row 5, column 7 (covered)"`` for every swatch that was left out."""
        return _describe(self.reasons, self.positions)


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
    """Rectify the chart in ``photo`` (``[H, W, 3]`` uint8 RGB), measure every swatch, leave out the
    ones that cannot be trusted (see the module docstring) and fit the transfer on the rest.

    Each swatch is read as the per-channel median of its central half, which ignores small glare
    spots, edges and print bleed.

    Raises:
        PhysadvError: fewer than three of the four fiducial markers are visible, or fewer than
            :data:`MIN_TRUSTED_FRACTION` of the swatches can be trusted (the message names some).
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
    measured, uneven, paper = _sample_swatches(rectified, layout)
    reasons = ["" for _ in measured]
    for i in np.flatnonzero(uneven > UNEVEN_DE):
        reasons[i] = "uneven"
    for i in np.flatnonzero(_paper_deviation(paper, layout) > PAPER_DE):
        reasons[i] = "covered"
    intended = layout.colours
    transfer = _robust_fit(intended, measured, reasons)
    trusted = np.array([not r for r in reasons])
    positions = [(i // layout.cols + 1, i % layout.cols + 1) for i in range(len(measured))]
    if trusted.sum() < MIN_TRUSTED_FRACTION * len(trusted):
        raise PhysadvError(
            f"only {int(trusted.sum())} of {len(trusted)} swatches can be trusted (need at least "
            f"{MIN_TRUSTED_FRACTION:.0%}): retake the photo with the whole chart flat, evenly lit and "
            f"uncovered; left out: {'; '.join(_describe(reasons, positions)[:6])}…"
        )
    return ChartReading(intended, measured, transfer, rectified, len(markers), trusted, reasons, positions)


def _describe(reasons: list[str], positions: list[tuple[int, int]]) -> list[str]:
    return [f"row {r}, column {c} ({why})" for (r, c), why in zip(positions, reasons, strict=True) if why]


def _lab(rgb: np.ndarray) -> torch.Tensor:
    return rgb_to_lab(torch.from_numpy(np.asarray(rgb, np.float32)))


def _sample_swatches(rectified: np.ndarray, layout: ChartLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per swatch: the median RGB of its central half (ignores edges, bleed and small glare), the
    largest ΔE2000 between the medians of that centre's four quarters, and the median RGB of the
    paper just around it (a ring 0.5–1.5 mm outside, inside the 2 mm gap between swatches)."""
    image = rectified.astype(np.float32) / 255
    gap = layout.gap_mm * RECTIFIED_PX_PER_MM
    measured, uneven, paper = [], [], []
    for x0, y0, x1, y1 in layout.swatch_rects_mm() * RECTIFIED_PX_PER_MM:
        qx, qy = (x1 - x0) / 4, (y1 - y0) / 4
        centre = image[round(y0 + qy) : round(y1 - qy), round(x0 + qx) : round(x1 - qx)]
        measured.append(np.median(centre.reshape(-1, 3), axis=0))
        h, w = centre.shape[:2]
        quarters = [centre[a : a + h // 2, b : b + w // 2] for a in (0, h - h // 2) for b in (0, w - w // 2)]
        labs = _lab(np.stack([np.median(q.reshape(-1, 3), axis=0) for q in quarters]))
        uneven.append(float(delta_e2000(labs[:, None], labs[None, :]).max()))
        outer = image[
            round(y0 - 0.75 * gap) : round(y1 + 0.75 * gap), round(x0 - 0.75 * gap) : round(x1 + 0.75 * gap)
        ]
        ring = np.ones(outer.shape[:2], bool)
        inner = round(0.5 * gap)
        ring[inner:-inner, inner:-inner] = False
        paper.append(np.median(outer[ring], axis=0))
    return np.array(measured, np.float32), np.array(uneven), np.array(paper, np.float32)


def _paper_deviation(paper: np.ndarray, layout: ChartLayout) -> np.ndarray:
    """ΔE2000 of the paper around each swatch from the page's white, modelled as a plane over the
    chart (light falls off evenly across a page) fitted robustly: first on the brightest quarter of
    the rings (a hand, a shadow or a card over the chart is darker than the paper), then on those
    that fit the last plane as well as those did."""
    rects = layout.swatch_rects_mm()
    xy = np.stack([(rects[:, 0] + rects[:, 2]) / 2, (rects[:, 1] + rects[:, 3]) / 2], 1) / 100
    design = np.concatenate([xy, np.ones((len(xy), 1))], 1)
    lightness = _lab(paper)[:, 0].numpy()
    keep = lightness >= np.quantile(lightness, 0.75)  # start from the brightest quarter: the paper
    for _ in range(4):
        coef, *_ = np.linalg.lstsq(design[keep], paper[keep], rcond=None)
        error = np.linalg.norm(paper - design @ coef, axis=1)
        keep = error <= 3 * np.median(error[keep]) + 0.01
    expected = np.clip(design @ coef, 0, 1)
    return delta_e2000(_lab(paper), _lab(expected)).numpy()


def _robust_fit(intended: np.ndarray, measured: np.ndarray, reasons: list[str]) -> ColourTransfer:
    """The affine transfer fitted on the swatches not yet left out; a swatch far off it is left out
    ("off the fit", marked in ``reasons``) and the transfer refitted, until none is."""
    for _ in range(len(reasons)):
        keep = np.array([not r for r in reasons])
        if keep.sum() < 4:
            break
        transfer = ColourTransfer.fit(torch.from_numpy(intended[keep]), torch.from_numpy(measured[keep]))
        predicted = transfer(torch.from_numpy(intended).T[:, :, None]).squeeze(-1).T
        error = delta_e2000(rgb_to_lab(predicted), _lab(measured)).numpy()
        limit = max(FIT_DE, 4 * float(np.median(error[keep])))
        worst = [i for i in np.argsort(-error) if keep[i] and error[i] > limit]
        if not worst:
            return transfer
        reasons[worst[0]] = "off the fit"  # one at a time: the worst can drag the fit towards others
    keep = np.array([not r for r in reasons])
    return ColourTransfer.fit(torch.from_numpy(intended[keep]), torch.from_numpy(measured[keep]))
