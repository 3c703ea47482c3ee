"""Rates with Wilson intervals, and per-object verdicts for detectors (Armory's definitions).

For one ground-truth object and one image's detections:

- *true positive*: a detection of the right class with IoU > 0.5 and score ≥ the threshold;
- *misclassified*: no true positive, but a detection of another class with IoU > 0.5;
- *disappeared*: neither (so disappearance rate = 1 − TPR − misclassification rate);
- *hidden*: no detection of the object's class overlaps it at all (IoU ≥ 0.1) — what a hiding
  attack wants; stricter than "not a true positive".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from physadv.boxes import box_iou
from physadv.models.detector import Detections
from physadv.results import Rate, format_rate, wilson_interval  # noqa: F401 (the rates' home)

MATCH_IOU = 0.5
OVERLAP_IOU = 0.1


@dataclass
class ObjectVerdict:
    true_positive: bool
    misclassified: bool
    hidden: bool
    label: int | None  # class of the best-overlapping detection, if any
    score: float  # its score (0 if none)

    def relabelled_as(self, target: int) -> bool:
        """What a relabelling attack wants: no box of the object's class on it, and the box that
        overlaps it most is of class ``target``."""
        return self.hidden and self.label == target


def judge_object(dets: Detections, box: torch.Tensor, class_id: int, conf: float = 0.25) -> ObjectVerdict:
    """Verdict for one ground-truth object (``box`` xyxy pixels, class ``class_id``)."""
    keep = dets.scores >= conf
    boxes, labels, scores = dets.boxes[keep], dets.labels[keep], dets.scores[keep]
    if len(boxes) == 0:
        return ObjectVerdict(False, False, True, None, 0.0)
    iou = box_iou(boxes, box.to(boxes)[None])
    matched = iou > MATCH_IOU
    true_positive = bool((matched & (labels == class_id)).any())
    misclassified = not true_positive and bool(matched.any())
    hidden = not bool(((iou >= OVERLAP_IOU) & (labels == class_id)).any())
    best = int(iou.argmax())
    over = bool(iou[best] >= OVERLAP_IOU)
    return ObjectVerdict(
        true_positive,
        misclassified,
        hidden,
        int(labels[best]) if over else None,
        float(scores[best]) if over else 0.0,
    )
