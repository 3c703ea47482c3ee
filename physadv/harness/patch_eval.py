"""Judge a person patch on held-out people — photos or rendered streets — through two compositors.

Conditions (each frame judged once per condition, every person with Armory's verdicts):

- ``clean``: the frames as they are;
- ``patched``: the patch, printed (the calibration, or the typical print), held straight on every
  torso (:mod:`physadv.scene.wear`);
- ``patched_eot``: the patch under one fixed draw of the physical EOT (a harsher check; physadv's
  compositor only);
- ``noise_control``: a uniform random-noise patch, printed and placed as ``patched``;
- ``grey_control``: a mid-grey patch, printed and placed as ``patched``.

Every frame then goes through a camera's JPEG (quality :data:`JUDGE_JPEG`). The judgement runs twice:
through physadv's compositor (the one the attack optimised through) and through an independent one
(:mod:`physadv.harness.opencv_paste`: OpenCV resampling, 8-bit print, OpenCV's JPEG). A patch that only
works through physadv's own pixels shows up as a gap between the two. A control shows how much of the
drop any print of that size causes; the patch only counts for what it does beyond the controls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from physadv.data.image_set import ImageSet
from physadv.eot.colour import ColourTransfer
from physadv.eot.person_eot import PersonEOT, draw, straight
from physadv.eot.person_scenes import ScenePeople
from physadv.eot.person_views import PersonFrames, photo_frames, views, wear
from physadv.harness import opencv_paste
from physadv.harness.frame_judge import AP_CONF, match_for_ap
from physadv.harness.metrics import Rate, judge_object
from physadv.harness.tally import Bins, Tally
from physadv.models.detector import Detections
from physadv.scene.effects import apply_effects, jpeg_each
from physadv.scene.wear import DEFAULT_HFOV_DEG, PERSON_HEIGHT_M

CONDITIONS = ("clean", "patched", "patched_eot", "noise_control", "grey_control")
INDEPENDENT = ("clean", "patched", "noise_control", "grey_control")
THRESHOLDS = (0.25, 0.5)
HEIGHT_BINS_PX = (24.0, 48.0, 96.0, 192.0)
JUDGE_JPEG = 85
AGREEMENT_POINTS = 10.0  # the two compositors must agree this well on every condition


@dataclass
class PatchTrial:
    """What is put on the people: an artefact (or none), and how it is placed."""

    patch: torch.Tensor | None  # [3, P, P] intended colours
    eot_seed: int | None = None  # None: held straight


@dataclass
class Judge:
    """How patches are put on held-out people: the patch's physical size, the EOT of ``patched_eot``,
    the print (``transfer``: a calibration; None: the typical print), and the camera assumed for
    photos (``hfov_deg``, ``person_height_m``; see :func:`physadv.scene.wear.planes_from_boxes`)."""

    size_m: float
    eot: PersonEOT
    transfer: ColourTransfer | None = None
    hfov_deg: float = DEFAULT_HFOV_DEG
    person_height_m: float = PERSON_HEIGHT_M
    jpeg: int = JUDGE_JPEG

    @property
    def print_transfer(self) -> ColourTransfer:
        return self.transfer or ColourTransfer.typical_print()


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


def held_out_frames(held_out: ImageSet | ScenePeople, index: list[int], device, judge: Judge) -> PersonFrames:
    if isinstance(held_out, ScenePeople):
        return held_out.frames(index, device)
    images, boxes, valid = held_out.batch(index, device)
    return photo_frames(images, boxes, valid, judge.hfov_deg, judge.person_height_m)


def _world(x: torch.Tensor, frames: PersonFrames) -> torch.Tensor:
    """Rendered frames: each frame's own light and camera (the renderer's effects, fixed per frame)."""
    if frames.effects is None:
        return x
    return torch.cat(
        [
            apply_effects(x[i : i + 1], e, torch.Generator().manual_seed(i))
            for i, e in enumerate(frames.effects)
        ]
    )


def physadv_view(
    trial: PatchTrial, frames: PersonFrames, judge: Judge, imgsz, gen
) -> tuple[torch.Tensor, torch.Tensor]:
    """A condition through physadv's compositor; returns the frames and the judged boxes."""
    n, b = len(frames.planes), len(frames.images)
    if trial.eot_seed is not None:
        params = draw(judge.eot, n, b, gen)
        return views(trial.patch, frames, params, judge.eot, judge.size_m, imgsz, judge.transfer, gen)
    x = frames.images
    if trial.patch is not None:
        params = straight(n, b)
        x = wear(trial.patch, frames, params, judge.eot, judge.size_m, judge.print_transfer)
    x = _world(x, frames)
    return torch.cat(jpeg_each([x.clamp(0, 1)], [judge.jpeg])), frames.boxes


def opencv_view(trial: PatchTrial, frames: PersonFrames, judge: Judge) -> torch.Tensor:
    """A condition through the independent compositor (same print, same place, other pixels)."""
    images = (frames.images.cpu().permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    if trial.patch is not None and len(frames.planes):
        t = judge.print_transfer
        printed = opencv_paste.print_patch(
            trial.patch.cpu().permute(1, 2, 0).numpy(), t.matrix.numpy(), t.bias.numpy()
        )
        quads = frames.planes.quads(judge.size_m).cpu().numpy()
        owner = frames.owner.cpu().tolist()
        for k, (i, quad) in enumerate(zip(owner, quads, strict=True)):
            visible = None
            if frames.rank_map is not None:
                visible = (frames.rank_map[i] <= frames.ranks[k]).cpu().numpy().astype(np.float32)
            images[i] = opencv_paste.paste(images[i], printed, quad, visible)
    x = _world(torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255), frames)
    pixels = (x.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    coded = np.stack([opencv_paste.jpeg(p, judge.jpeg) for p in pixels])
    return torch.from_numpy(coded).permute(0, 3, 1, 2).float().div(255).to(frames.images.device)


class PatchTally:
    """Verdict counts at each confidence threshold, by person height, and AP@0.5 per attacked class."""

    def __init__(self, num_classes: int):
        self.rates = {t: Tally("detect", Bins(), targeted=False) for t in THRESHOLDS}
        self.heights = Tally("detect", Bins(), targeted=False)
        self.ap = [Tally("detect", Bins(), targeted=False) for _ in range(num_classes)]

    def add_image(
        self, dets: Detections, boxes: torch.Tensor, labels: torch.Tensor, ids: list[int], heights=None
    ) -> list[dict]:
        """Judge one image's objects (``labels`` index ``ids``, the model's class ids); ``heights``:
        each person's height in photo pixels (for :data:`HEIGHT_BINS_PX`)."""
        rows_at = {t: [] for t in THRESHOLDS}
        for k, (box, label) in enumerate(zip(boxes, labels.tolist(), strict=True)):
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
            if heights is not None:
                label = _height_label(float(heights[k]))
                self.heights.add_frame([rows_at[THRESHOLDS[0]][-1]], group=label)
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
        by_height = self.heights.as_dict().get("by_group", {})
        order = [lab for lab in _height_labels() if lab in by_height]
        return {
            "objects": sum(a.positives for a in self.ap),
            **{f"true_positive_rate@{t:g}": at[t].get("true_positive_rate") for t in THRESHOLDS},
            "misclassification_rate": first.get("misclassification_rate"),
            "disappearance_rate": first.get("disappearance_rate"),
            "hidden_rate": first.get("hidden_rate"),
            "ap50": round(sum(aps) / len(aps), 4) if aps else None,
            "true_positive_rate_by_height_px": {lab: by_height[lab]["true_positive_rate"] for lab in order},
        }


def _height_labels() -> list[str]:
    return Bins(HEIGHT_BINS_PX, "px").distance_order()


def _height_label(height_px: float) -> str:
    labels = _height_labels()
    return labels[int(np.searchsorted(np.asarray(HEIGHT_BINS_PX), height_px, side="right"))]


def _labels_of(held_out, i: int, n: int) -> torch.Tensor:
    return held_out.labels[i] if isinstance(held_out, ImageSet) else torch.zeros(n, dtype=torch.long)


def _photo_scale(held_out, i: int) -> float:
    scales = getattr(held_out, "scales", None)
    return float(scales[i]) if scales is not None else 1.0


@torch.no_grad()
def evaluate_patch(
    model,
    ids: list[int],
    held_out: ImageSet | ScenePeople,
    trials: dict[str, PatchTrial],
    judge: Judge,
    batch: int = 16,
    progress=None,
    compositor: str = "physadv",
) -> tuple[dict[str, dict], dict[str, list]]:
    """Metrics per condition through ``compositor`` (``physadv`` or ``opencv``), and per condition the
    detections of each frame (for pictures)."""
    metrics, detections = {}, {}
    for name, trial in trials.items():
        tally = PatchTally(len(ids))
        gen = torch.Generator().manual_seed(trial.eot_seed) if trial.eot_seed is not None else None
        seen = []
        for start in range(0, len(held_out), batch):
            index = list(range(start, min(start + batch, len(held_out))))
            frames = held_out_frames(held_out, index, model.device, judge)
            if compositor == "opencv":
                x, boxes = opencv_view(trial, frames, judge), frames.boxes
            else:
                x, boxes = physadv_view(trial, frames, judge, model.imgsz, gen)
            for row, (dets, i) in enumerate(zip(model.predict(x, conf=AP_CONF), index, strict=True)):
                dets = Detections(dets.boxes.cpu(), dets.scores.cpu(), dets.labels.cpu())
                own = boxes[row][frames.valid[row]].cpu()
                heights = (own[:, 3] - own[:, 1]) / _photo_scale(held_out, i)
                tally.add_image(dets, own, _labels_of(held_out, i, len(own)), ids, heights)
                seen.append(dets)
            if progress:
                progress(len(index))
        metrics[name], detections[name] = tally.as_dict(), seen
    return metrics, detections


def agreement(physadv: dict[str, dict], independent: dict[str, dict]) -> dict:
    """How far the two compositors' true-positive rates (@0.25) are apart, per shared condition, in points."""
    gaps = {}
    for name, m in independent.items():
        a, b = physadv.get(name, {}).get("true_positive_rate@0.25"), m.get("true_positive_rate@0.25")
        if a is not None and b is not None:
            gaps[name] = round(100 * abs(a["rate"] - b["rate"]), 1)
    worst = max(gaps.values(), default=0.0)
    return {"points": gaps, "worst_points": worst, "agree": worst <= AGREEMENT_POINTS}


def headline(metrics: dict[str, dict]) -> dict:
    """summary.json's top-level numbers: TPR at confidence 0.25 per condition, and AP@0.5."""

    def tpr(name: str) -> float | None:
        r = metrics.get(name, {}).get("true_positive_rate@0.25")
        return None if r is None else r["rate"]

    return {
        "tpr_clean": tpr("clean"),
        "tpr_patched": tpr("patched"),
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
