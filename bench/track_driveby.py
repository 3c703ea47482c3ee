"""How well the planar tracker follows a sign, against rendered ground truth.

    physadv scene render scenes/driveby_stop.yaml --out runs/driveby
    python bench/track_driveby.py runs/driveby            # only the first frame's box given
    python bench/track_driveby.py runs/driveby --corners  # the first frame's corners given

Prints the share of frames with IoU ≥ 0.8 against the true box, the lowest IoU, the largest
distance error (PnP on the tracked corners) and the mean and largest corner error in pixels.
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


def main(folder: Path, corners: bool) -> None:
    truth = load_ground_truth(folder / "ground_truth.jsonl")
    sign = {i: next(o for o in objs if o.class_name == "stop") for i, objs in truth.items()}
    first = np.array(sign[0].corners) if corners else corners_from_box(sign[0].box)
    tracker = PlanarTracker({0: first}, "stop")
    ious, errors, corner_px = [], [], []
    for frame in VideoSource(folder / "scene.mp4").frames():
        point, true = tracker.update(frame.index, frame.bgr), sign[frame.index]
        if not point.found:
            ious.append(0.0)
            continue
        h, w = frame.bgr.shape[:2]
        ious.append(float(box_iou(torch.tensor(point.box), torch.tensor(true.box))))
        distance, _ = pose_from_corners(point.corners, 0.75, 0.75, focal_px(w, 60), (w, h))
        errors.append(abs(distance / true.distance_m - 1))
        corner_px.append(float(np.linalg.norm(point.corners - np.array(true.corners), axis=1).mean()))
    ious = np.array(ious)
    print(
        f"{len(ious)} frames: IoU ≥ 0.8 in {100 * (ious >= 0.8).mean():.1f} %, lowest IoU {ious.min():.3f}; "
        f"largest distance error {100 * max(errors):.1f} %; corner error mean {np.mean(corner_px):.2f} px, "
        f"largest {max(corner_px):.2f} px"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--corners" in sys.argv)
