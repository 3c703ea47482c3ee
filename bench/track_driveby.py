"""How well the planar tracker follows a sign, against rendered ground truth.

    physadv scene render scenes/driveby_stop.yaml --out runs/driveby
    python bench/track_driveby.py runs/driveby            # only the first frame's box given
    python bench/track_driveby.py runs/driveby --corners  # the first frame's corners given
    python bench/track_driveby.py runs/driveby --forward  # without the backward pass

Prints the share of frames with IoU ≥ 0.8 against the true box, the lowest IoU, the largest
distance error (PnP on the tracked corners) and the mean and largest corner error in pixels, then
per range of the sign's size the corners' mean shift (x, y), scale and error against the truth.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from physadv.boxes import box_iou
from physadv.data.groundtruth import focal_px, load_ground_truth, pose_from_corners
from physadv.harness.sources import VideoSource
from physadv.harness.tracking import PlanarTracker, corners_from_box
from physadv.harness.two_way import TwoWayTracker

SIZE_BINS = ((0, 35), (35, 45), (45, 56), (56, 80), (80, 1000))  # the true side, pixels


def by_size(found: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Per size bin: the corners' mean shift, their scale about their centre, and the mean error."""
    for lo, hi in SIZE_BINS:
        rows = [(a, t) for a, t in found if lo <= np.linalg.norm(t[1] - t[0]) < hi]
        if not rows:
            continue
        shift = np.mean([(a - t).mean(0) for a, t in rows], 0)
        spread = [
            (np.linalg.norm(a - a.mean(0), axis=1).mean(), np.linalg.norm(t - t.mean(0), axis=1).mean())
            for a, t in rows
        ]
        scale = np.mean([a / t for a, t in spread])
        error = np.mean([np.linalg.norm(a - t, axis=1).mean() for a, t in rows])
        print(
            f"  side {lo}-{hi} px ({len(rows)} frames): shift {shift[0]:+.2f}, {shift[1]:+.2f} px, "
            f"scale {scale:.4f}, corner error {error:.2f} px"
        )


def main(folder: Path, corners: bool, forward: bool) -> None:
    truth = load_ground_truth(folder / "ground_truth.jsonl")
    sign = {i: next(o for o in objs if o.class_name == "stop") for i, objs in truth.items()}
    first = np.array(sign[0].corners) if corners else corners_from_box(sign[0].box)
    tracker = (PlanarTracker if forward else TwoWayTracker)({0: first}, "stop")
    frames = list(VideoSource(folder / "scene.mp4").frames())
    points = [tracker.update(frame.index, frame.bgr) for frame in frames]
    points = points if forward else tracker.finish()
    ious, errors, corner_px, found = [], [], [], []
    for frame, point in zip(frames, points, strict=True):
        true = sign[frame.index]
        if not point.found:
            ious.append(0.0)
            continue
        h, w = frame.bgr.shape[:2]
        ious.append(float(box_iou(torch.tensor(point.box), torch.tensor(true.box))))
        distance, _ = pose_from_corners(point.corners, 0.75, 0.75, focal_px(w, 60), (w, h))
        errors.append(abs(distance / true.distance_m - 1))
        corner_px.append(float(np.linalg.norm(point.corners - np.array(true.corners), axis=1).mean()))
        found.append((point.corners.astype(np.float64), np.array(true.corners)))
    ious = np.array(ious)
    print(
        f"{len(ious)} frames: IoU ≥ 0.8 in {100 * (ious >= 0.8).mean():.1f} %, lowest IoU {ious.min():.3f}; "
        f"largest distance error {100 * max(errors):.1f} %; corner error mean {np.mean(corner_px):.2f} px, "
        f"largest {max(corner_px):.2f} px"
    )
    by_size(found)


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--corners" in sys.argv, "--forward" in sys.argv)
