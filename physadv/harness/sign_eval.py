"""Judge a sign attack: held-out EOT views and rendered scenes (RP2's lab table, a drive-by), clean
and with the sticker, through a classifier (on crops of the sign, as RP2 did) or a detector.

Every frame gets a record: ``correct`` (clean-style: top-1 right for a classifier, a true positive
for a detector) and ``success`` (what the attack wanted: the target class, any wrong class, the
sign hidden, or relabelled). Rates come with Wilson intervals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from physadv.eot.sign_views import SignView, render_views, scaled_boxes
from physadv.harness.crops import model_inputs
from physadv.harness.metrics import Rate, judge_object
from physadv.harness.sources import batched
from physadv.scene.render import render_scene


@dataclass
class SignGoal:
    """``goal``: targeted | untargeted (classifiers), hide | relabel (detectors)."""

    goal: str
    true_class: int
    target: int | None = None
    conf: float = 0.25  # detector score threshold


@torch.no_grad()
def judge_frames(model, frames: torch.Tensor, boxes: torch.Tensor, goal: SignGoal) -> list[dict]:
    """One record per frame (``frames [B, 3, H, W]``, the sign's ``boxes [B, 4]`` xyxy pixels)."""
    records = []
    if model.kind == "classifier":
        labels, probs = model.predict(model_inputs(model, frames, boxes))
        for label, p in zip(labels.tolist(), probs, strict=True):
            success = label == goal.target if goal.goal == "targeted" else label != goal.true_class
            records.append(
                {
                    "label": model.names[label],
                    "score": round(float(p[label]), 4),
                    "correct": label == goal.true_class,
                    "success": success,
                }
            )
        return records
    for dets, box in zip(model.predict(frames, conf=goal.conf), boxes, strict=True):
        v = judge_object(dets, box, goal.true_class, goal.conf)
        success = v.hidden if goal.goal == "hide" else v.relabelled_as(goal.target)
        records.append(
            {
                "label": None if v.label is None else model.names[v.label],
                "score": round(v.score, 4),
                "correct": v.true_positive,
                "success": success,
            }
        )
    return records


def evaluate_views(
    model,
    face: torch.Tensor,
    views: list[SignView],
    out_size: tuple[int, int],
    goal: SignGoal,
    batch: int = 32,
    progress: Callable | None = None,
) -> list[dict]:
    """Records for ``face`` (``[4, h, w]``, clean or stuck) seen through each held-out view;
    ``progress(n)`` is called with the number of views judged in each batch."""
    records = []
    for chunk in batched(views, batch):
        with torch.no_grad():
            frames = render_views(face, chunk, out_size)
        boxes = scaled_boxes(chunk, out_size)
        for v, r in zip(chunk, judge_frames(model, frames, boxes, goal), strict=True):
            records.append({"distance_m": round(v.distance_m, 3), "angle_deg": round(v.angle_deg, 2), **r})
        if progress:
            progress(len(chunk))
    return records


def evaluate_scene(
    model, spec: dict, goal: SignGoal, sticker=None, batch: int = 16, progress: Callable | None = None
) -> list[dict]:
    """Records for every frame of a rendered scene in which the sign is seen (``sticker``: the
    printed sticker artefact on the sign, or None for clean)."""
    sign = spec["sign"]["class"]

    def frames():
        for frame, truth in render_scene(spec, sticker=sticker):
            if progress:
                progress()
            objs = [o for o in truth.objects if o.class_name == sign and o.visible >= 0.5]
            if objs:
                yield frame, truth, objs[0]

    records = []
    for chunk in batched(frames(), batch):
        images = torch.stack([f for f, _, _ in chunk])
        boxes = torch.tensor([o.box for _, _, o in chunk])
        for (_, truth, obj), r in zip(chunk, judge_frames(model, images, boxes, goal), strict=True):
            records.append(
                {
                    "frame": truth.index,
                    "time_s": truth.time_s,
                    "distance_m": obj.distance_m,
                    "angle_deg": obj.angle_deg,
                    **r,
                }
            )
    return records


def summarise(clean: list[dict], attacked: list[dict], detector: bool) -> dict:
    """A condition's rates: ``targeted_success_rate`` (attacked), and accuracy or true-positive rate
    clean and attacked, each with a Wilson interval."""
    key = "true_positive_rate" if detector else "accuracy"

    def rate(records, field):
        return Rate(sum(bool(r[field]) for r in records), len(records)).as_dict()

    return {
        "frames": len(attacked),
        "targeted_success_rate": rate(attacked, "success"),
        f"clean_{key}": rate(clean, "correct"),
        f"attacked_{key}": rate(attacked, "correct"),
        "clean_success_rate": rate(clean, "success"),  # how often the goal holds without a sticker
    }
