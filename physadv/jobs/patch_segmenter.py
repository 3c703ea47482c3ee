"""``physadv train patch-segmenter``: train SAC's patch segmenter on the user's photos of people with
patches put on them, and judge it on held-out photos — how often it raises an alarm on clean photos
(false alarms) and on photos with each given patch held straight, and how much of the patch its
completed squares cover."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from physadv.data.image_set import ImageSet
from physadv.defenses.sac import SegmentAndComplete
from physadv.defenses.segmenter import save_segmenter
from physadv.progress import progress_bar
from physadv.results import Rate
from physadv.training.patch_wear import wear_on_people
from physadv.training.segmenter import train_segmenter
from physadv.training.segmenter_config import SegmenterTraining

JUDGED_MM = 400.0  # the patch's printed side on held-out people (the attack's default)


def _judge_patch(sac: SegmentAndComplete, val: ImageSet, patch: torch.Tensor | None, batch: int = 16) -> dict:
    """Alarm rate on ``val`` with ``patch`` held straight on every person (``None``: clean), and the
    share of patch pixels the completed squares cover."""
    flagged, covered, total = 0, 0.0, 0.0
    for start in range(0, len(val), batch):
        index = list(range(start, min(start + batch, len(val))))
        images, boxes, valid = val.batch(index, sac.device)
        if patch is not None:
            images, _, cover = wear_on_people(images, boxes, valid, patch, JUDGED_MM / 1000, None)
            truth = cover > 0.5
        mask = sac.locate(images)
        flagged += int(mask.flatten(1).any(dim=1).sum())
        if patch is not None:
            covered += float((mask & truth).sum())
            total += float(truth.sum())
    out = {"flagged": Rate(flagged, len(val)).as_dict()}
    if patch is not None:
        out["patch_pixels_covered"] = round(covered / max(total, 1.0), 4)
    return out


def run_patch_segmenter(
    detector,
    train: ImageSet,
    val: ImageSet,
    patches: dict[str, torch.Tensor],
    settings: SegmenterTraining,
    out: Path,
    resume: bool = False,
) -> dict:
    """Train, write ``out`` (the segmenter) and ``out``'s ``.json`` summary; returns the summary."""
    with progress_bar("training the patch segmenter", settings.steps) as advance:
        net, record = train_segmenter(
            train, list(patches.values()), settings, out, detector.device, resume, advance
        )
    record.update(settings=settings.to_dict(), patches=list(patches), training_images=len(train))
    save_segmenter(out, net, record)
    sac = SegmentAndComplete(detector, out)
    judged = {"clean": _judge_patch(sac, val, None)}
    for name, patch in patches.items():
        judged[name] = _judge_patch(sac, val, patch)
    summary = {
        "segmenter": str(out),
        "steps": settings.steps,
        "seconds": record["seconds"],
        "device": str(detector.device),
        "training_images": len(train),
        "held_out_images": len(val),
        "final_loss": sum(record["loss"][-20:]) / max(1, len(record["loss"][-20:])),
        "held_out": judged,
    }
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    return summary
