"""Judge a person patch on held-out photos: clean, patched, and two controls placed the same way.

Conditions (each image judged once per condition, every object with Armory's verdicts):

- ``clean``: the photos as they are;
- ``patched``: the patch held straight on every person (:meth:`PatchEOT.fixed`);
- ``patched_eot``: the patch under random EOT draws (one fixed seed), a harsher physical check;
- ``noise_control``: a uniform random-noise patch, placed as ``patched``;
- ``grey_control``: a mid-grey patch, placed as ``patched``.

A control shows how much of the drop any occluder of that size causes; the patch only counts for
what it does beyond the controls.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from physadv.data.image_set import ImageSet
from physadv.eot.colour import ColourTransfer
from physadv.eot.patch_eot import PatchEOT, place_patches
from physadv.harness.frame_judge import AP_CONF, match_for_ap
from physadv.harness.metrics import Rate, judge_object
from physadv.harness.tally import Bins, Tally
from physadv.models.detector import Detections

CONDITIONS = ("clean", "patched", "patched_eot", "noise_control", "grey_control")
THRESHOLDS = (0.25, 0.5)


@dataclass
class PatchTrial:
    """What is put on the people: an artefact (or none), and how it is placed."""

    patch: torch.Tensor | None  # [3, P, P] intended colours
    eot_seed: int | None = None  # None: held straight


def control_trials(patch: torch.Tensor, seed: int) -> dict[str, PatchTrial]:
    """The five conditions for ``patch``; the noise control is drawn from ``seed``."""
    noise = torch.rand(patch.shape, generator=torch.Generator().manual_seed(seed + 7919))
    return {
        "clean": PatchTrial(None),
        "patched": PatchTrial(patch),
        "patched_eot": PatchTrial(patch, eot_seed=seed + 104729),
        "noise_control": PatchTrial(noise),
        "grey_control": PatchTrial(torch.full_like(patch, 0.5)),
    }


def apply_trial(
    trial: PatchTrial,
    images: torch.Tensor,
    boxes: torch.Tensor,
    valid: torch.Tensor,
    eot: PatchEOT,
    transfer: ColourTransfer | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    if trial.patch is None:
        return images
    p = trial.patch.shape[-1]
    params = (
        eot.draw(valid.numel(), generator, p) if trial.eot_seed is not None else eot.fixed(valid.numel(), p)
    )
    return place_patches(images, trial.patch.to(images.device), boxes, valid, params, eot, transfer)


class PatchTally:
    """Verdict counts at each confidence threshold, and AP@0.5 per attacked class."""

    def __init__(self, num_classes: int):
        self.rates = {t: Tally("detect", Bins(), targeted=False) for t in THRESHOLDS}
        self.ap = [Tally("detect", Bins(), targeted=False) for _ in range(num_classes)]

    def add_image(
        self, dets: Detections, boxes: torch.Tensor, labels: torch.Tensor, ids: list[int]
    ) -> list[dict]:
        """Judge one image's objects (``labels`` index ``ids``, the model's class ids)."""
        rows_at = {t: [] for t in THRESHOLDS}
        for box, label in zip(boxes, labels.tolist(), strict=True):
            for t in THRESHOLDS:
                v = judge_object(dets, box, ids[label], t)
                verdict = (
                    "true_positive"
                    if v.true_positive
                    else "misclassified"
                    if v.misclassified
                    else "disappeared"
                )
                rows_at[t].append({"verdict": verdict, "hidden": v.hidden, "score": round(v.score, 4)})
        for t, rows in rows_at.items():
            self.rates[t].add_frame(rows)
        for c, tally in enumerate(self.ap):
            own = boxes[labels == c]
            tally.add_frame([], ap_scores=match_for_ap(dets, own, ids[c]), positives=len(own))
        return rows_at[THRESHOLDS[0]]

    def as_dict(self) -> dict:
        at = {t: self.rates[t].as_dict() for t in THRESHOLDS}
        aps = [a.ap50() for a in self.ap if a.positives]
        first = at[THRESHOLDS[0]]
        return {
            "objects": sum(a.positives for a in self.ap),
            **{f"true_positive_rate@{t:g}": at[t].get("true_positive_rate") for t in THRESHOLDS},
            "misclassification_rate": first.get("misclassification_rate"),
            "disappearance_rate": first.get("disappearance_rate"),
            "hidden_rate": first.get("hidden_rate"),
            "ap50": round(sum(aps) / len(aps), 4) if aps else None,
        }


@torch.no_grad()
def evaluate_patch(
    model,
    ids: list[int],
    image_set: ImageSet,
    trials: dict[str, PatchTrial],
    eot: PatchEOT,
    transfer: ColourTransfer | None = None,
    batch: int = 16,
    progress=None,
) -> tuple[dict[str, dict], dict[str, list]]:
    """Metrics per condition, and per condition the detections of each image (for pictures)."""
    metrics, detections = {}, {}
    for name, trial in trials.items():
        tally = PatchTally(len(ids))
        gen = torch.Generator().manual_seed(trial.eot_seed) if trial.eot_seed is not None else None
        seen = []
        for start in range(0, len(image_set), batch):
            index = list(range(start, min(start + batch, len(image_set))))
            images, boxes, valid = image_set.batch(index, model.device)
            frames = apply_trial(trial, images, boxes, valid, eot, transfer, gen)
            for i, dets in zip(index, model.predict(frames, conf=AP_CONF), strict=True):
                dets = Detections(dets.boxes.cpu(), dets.scores.cpu(), dets.labels.cpu())
                tally.add_image(dets, image_set.boxes[i], image_set.labels[i], ids)
                seen.append(dets)
            if progress:
                progress(len(index))
        metrics[name], detections[name] = tally.as_dict(), seen
    return metrics, detections


def headline(metrics: dict[str, dict]) -> dict:
    """summary.json's top-level numbers: TPR at confidence 0.25 per condition, and AP@0.5."""

    def tpr(name: str) -> float | None:
        r = metrics.get(name, {}).get("true_positive_rate@0.25")
        return None if r is None else r["rate"]

    return {
        "tpr_clean": tpr("clean"),
        "tpr_patched": tpr("patched"),
        "tpr_patched_eot": tpr("patched_eot"),
        "tpr_noise_control": tpr("noise_control"),
        "tpr_grey_control": tpr("grey_control"),
        "ap50_clean": metrics.get("clean", {}).get("ap50"),
        "ap50_patched": metrics.get("patched", {}).get("ap50"),
    }


def rate_line(metrics: dict) -> str:
    """``TPR@0.25 …, TPR@0.5 …, AP50 …`` for the terminal."""
    parts = []
    for t in THRESHOLDS:
        r = metrics.get(f"true_positive_rate@{t:g}")
        if r is not None:
            parts.append(f"TPR@{t:g} {Rate(r['k'], r['n'])}")
    if metrics.get("ap50") is not None:
        parts.append(f"AP50 {metrics['ap50']:.3f}")
    return ",  ".join(parts)
