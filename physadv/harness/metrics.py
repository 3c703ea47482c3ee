"""Rates with Wilson intervals, and per-object verdicts for detectors (Armory's definitions).

For one ground-truth object and one image's detections:

- *true positive*: a detection of the right class with IoU > 0.5 and score ≥ the threshold;
- *misclassified*: no true positive, but a detection of another class with IoU > 0.5;
- *disappeared*: neither (so disappearance rate = 1 − TPR − misclassification rate);
- *hidden*: no detection of the object's class overlaps it at all (IoU ≥ 0.1) — what a hiding
  attack wants; stricter than "not a true positive".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from physadv.boxes import box_iou
from physadv.models.detector import Detections

MATCH_IOU = 0.5
OVERLAP_IOU = 0.1


@dataclass
class Rate:
    """``k`` of ``n``, with a 95 % Wilson score interval."""

    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n)

    def as_dict(self) -> dict:
        low, high = self.interval
        return {
            "rate": round(self.value, 4),
            "k": self.k,
            "n": self.n,
            "ci95": [round(low, 4), round(high, 4)],
        }

    def __str__(self) -> str:
        return format_rate(self.k, self.n)


def format_rate(k: int, n: int) -> str:
    """``k`` of ``n`` as every physadv output writes a rate: ``83.3% [70.1, 91.4] (50/60)``, the
    95 % Wilson interval computed from the counts (never from rounded figures, so 5/5 reads
    ``[56.6, 100.0]`` in every report and terminal)."""
    if not n:
        return "—"
    low, high = wilson_interval(k, n)
    return f"{100 * k / n:.1f}% [{100 * low:.1f}, {100 * high:.1f}] ({k}/{n})"


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k/n`` (``(nan, nan)`` when ``n`` is 0)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


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
