"""Judge one replayed frame: a row per ground-truth object with its verdict, plus what the frame
adds to AP and to the hallucination count.

Detectors (Armory's definitions, see :mod:`physadv.harness.metrics`): a ground-truth object is a
true positive, misclassified or disappeared; *hallucinations* are detections of the judged class
at or above the threshold that match (IoU > 0.5) no object of the frame, seen or barely seen.
Classifiers (RP2's protocol): each object is cropped from the frame and classified; without
ground truth the whole frame is classified (a folder of crops).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from physadv.boxes import box_iou
from physadv.data.groundtruth import GtObject
from physadv.harness.crops import crop_object
from physadv.harness.metrics import MATCH_IOU, judge_object
from physadv.models.classes import ClassNames
from physadv.models.detector import Detections

AP_CONF = 0.01  # detections down to this score feed AP@0.5


@dataclass
class ReplayGoal:
    """What is judged: ``true_class`` (the model's id of the object, e.g. "stop sign"), which
    ground-truth objects are it (``gt_class``, see :meth:`ClassNames.same`; None: all), and what an
    attack wants (``target``: a class id, or None)."""

    task: str  # detect | classify
    true_class: int
    gt_class: str | None = None
    target: int | None = None
    conf: float = 0.25

    def judged(self, objects: list[GtObject]) -> list[GtObject]:
        """The ground-truth objects that are the judged class (unnamed objects always are)."""
        if self.gt_class is None:
            return list(objects)
        return [o for o in objects if not o.class_name or ClassNames.same(o.class_name, self.gt_class)]


@dataclass
class FrameResult:
    rows: list[dict]  # one per judged object (one with object = None if the frame has none)
    hallucinations: int = 0
    ap_scores: list[tuple[float, bool]] = field(default_factory=list)  # (score, true positive)
    positives: int = 0  # judged objects (AP's denominator)
    detections: Detections | None = None  # what the model saw (to draw)


def match_for_ap(dets: Detections, boxes: torch.Tensor, true_class: int) -> list[tuple[float, bool]]:
    """Greedy matching by score, as VOC/COCO AP: each object matches at most one detection."""
    own = dets.labels == true_class
    scores, cand = dets.scores[own], dets.boxes[own]
    order = scores.argsort(descending=True)
    taken = torch.zeros(len(boxes), dtype=torch.bool)
    pairs = []
    iou = box_iou(cand[:, None], boxes.to(cand)[None]) if len(boxes) and len(cand) else None
    for i in order.tolist():
        hit = False
        if iou is not None:
            row = iou[i].clone()
            row[taken] = 0
            j = int(row.argmax())
            if row[j] > MATCH_IOU:
                taken[j], hit = True, True
        pairs.append((float(scores[i]), hit))
    return pairs


def judge_detections(
    dets: Detections, judged: list[GtObject], ignored: list[GtObject], goal: ReplayGoal
) -> FrameResult:
    """Rows and counts for one frame's detections (``dets`` kept down to :data:`AP_CONF`)."""
    rows = []
    for obj in judged:
        v = judge_object(dets, torch.tensor(obj.box), goal.true_class, goal.conf)
        verdict = (
            "true_positive" if v.true_positive else "misclassified" if v.misclassified else "disappeared"
        )
        row = {"verdict": verdict, "hidden": v.hidden, "label": v.label, "score": round(v.score, 4)}
        if goal.target is not None:
            row["targeted_success"] = v.relabelled_as(goal.target)
        rows.append(row)
    everything = judged + ignored
    keep = (dets.scores >= goal.conf) & (dets.labels == goal.true_class)
    hallucinations = int(keep.sum())
    if everything and hallucinations:
        iou = box_iou(
            dets.boxes[keep][:, None], torch.tensor([o.box for o in everything]).to(dets.boxes)[None]
        )
        hallucinations = int((iou.max(dim=1).values <= MATCH_IOU).sum())
    boxes = torch.tensor([o.box for o in judged]).reshape(-1, 4)
    return FrameResult(rows, hallucinations, match_for_ap(dets, boxes, goal.true_class), len(judged), dets)


def detections_without_truth(dets: Detections, goal: ReplayGoal) -> FrameResult:
    """A frame with no ground truth: whether the judged class is detected at all, and how surely."""
    own = (dets.labels == goal.true_class) & (dets.scores >= goal.conf)
    top = float(dets.scores[own].max()) if own.any() else 0.0
    return FrameResult(
        [{"detected": bool(own.any()), "score": round(top, 4), "detections": int(own.sum())}], 0, [], 0, dets
    )


@torch.no_grad()
def judge_crops(model, images: list[torch.Tensor], boxes: list, goal: ReplayGoal) -> list[dict]:
    """Classify each object crop (``boxes`` None: the whole image) — one row per crop."""
    crops = torch.stack(
        [
            crop_object(image, box, model.input_size)
            if box is not None
            else crop_object(image, _whole(image), model.input_size, fill=1.0)
            for image, box in zip(images, boxes, strict=True)
        ]
    )
    labels, probs = model.predict(crops)
    rows = []
    for label, p in zip(labels.tolist(), probs, strict=True):
        row = {
            "label": label,
            "score": round(float(p[label]), 4),
            "true_class_score": round(float(p[goal.true_class]), 4),
            "correct": label == goal.true_class,
            "untargeted_success": label != goal.true_class,
        }
        if goal.target is not None:
            row["targeted_success"] = label == goal.target
        rows.append(row)
    return rows


def _whole(image: torch.Tensor) -> tuple[float, float, float, float]:
    return (0.0, 0.0, float(image.shape[-1]), float(image.shape[-2]))
