"""The whole person-patch job: optimise (with checkpoints), write the printables, judge the patch
and its controls on held-out photos for every model, and write pictures and ``summary.json``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from physadv.artefact import Artefact
from physadv.attacks.checkpoint import CHECKPOINT_NAME, run_with_progress
from physadv.attacks.person_patch import PatchAttack
from physadv.data.image_set import ImageSet
from physadv.data.images import LETTERBOX_FILL
from physadv.harness.annotate import GREEN, RED, WHITE, draw_box, draw_detections, draw_label
from physadv.harness.patch_eval import CONDITIONS, apply_trial, control_trials, evaluate_patch, headline
from physadv.progress import progress_bar
from physadv.scene.video import to_bgr8

GRID_IMAGES = 6


def write_printables(patch: Artefact, out: Path, dpi: int, paper: str) -> list[str]:
    """patch.png (+ .json), patch.pdf (one page of exactly the patch's size) and a paper tiling."""
    from physadv.printing.export import save_pdf, save_png, save_sidecar

    save_png(patch, out / "patch.png", dpi)
    save_sidecar(patch, out / "patch.json", dpi=dpi)
    save_pdf(patch, out / "patch.pdf", dpi)
    save_pdf(patch, out / f"patch_{paper}.pdf", dpi, paper=paper, label="person patch")
    return ["patch.png", "patch.json", "patch.pdf", f"patch_{paper}.pdf"]


def write_grid(
    attack: PatchAttack, val: ImageSet, patch: torch.Tensor, detections: dict, path: Path, conf: float = 0.25
) -> Path:
    """Before/after picture: the first held-out images clean (top) and patched (bottom), with the
    first model's detections at ``conf``."""
    model, ids = attack.models[0], attack.class_ids[0]
    index = list(range(min(GRID_IMAGES, len(val))))
    images, boxes, valid = val.batch(index, "cpu")
    trials = control_trials(patch, attack.config.seed)
    patched = apply_trial(trials["patched"], images, boxes, valid, attack.config.eot, attack.transfer, None)
    # crop the letterbox padding shared by the shown images
    content = (val.images[index] != round(LETTERBOX_FILL * 255)).any(dim=0).any(dim=0)  # [S, S]
    ys, xs = content.any(dim=1).nonzero().flatten(), content.any(dim=0).nonzero().flatten()
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    rows = []
    for name, frames in (("clean", images), ("patched", patched)):
        row = []
        for i in index:
            panel = to_bgr8(frames[i])
            for box in val.boxes[i]:
                draw_box(panel, box, WHITE, 1)
            found = draw_detections(panel, detections[name][i], model.names, conf, ids, thickness=2)
            panel = panel[y0:y1, x0:x1].copy()
            colour = GREEN if name == "clean" else RED
            draw_label(panel, f"{name}: {found} found, {len(val.boxes[i])} labelled", (4, 16), colour)
            row.append(panel)
        rows.append(np.hstack(row))
    cv2.imwrite(str(path), np.vstack(rows))
    return path


def write_history_plot(history: list[dict], path: Path) -> Path:
    """Detection loss and the share of persons still detected, step by step."""
    from physadv.report.plots import plt

    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=110)
    ax.plot(steps, [h["det"] for h in history], lw=0.8, color="#c92a2a", label="detection score (loss term)")
    window = max(1, min(20, len(history)))
    rate = np.convolve([h["detected"] for h in history], np.ones(window), "valid") / np.maximum(
        np.convolve([h["objects"] for h in history], np.ones(window), "valid"), 1
    )
    ax.plot(
        steps[window - 1 :], rate, lw=1.2, color="#1c7ed6", label=f"still detected ≥0.25 ({window}-step mean)"
    )
    ax.set_xlabel("step")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluate(attack: PatchAttack, val: ImageSet, patch: torch.Tensor, batch: int) -> tuple[dict, dict]:
    """Metrics per model and condition; detections of the first model (for the grid)."""
    trials = control_trials(patch, attack.config.seed)
    per_model, first_dets = {}, None
    total = len(attack.models) * len(CONDITIONS) * len(val)
    with progress_bar("judging on held-out images", total) as advance:
        for k, (model, ids) in enumerate(zip(attack.models, attack.class_ids, strict=True)):
            metrics, dets = evaluate_patch(
                model, ids, val, trials, attack.config.eot, attack.transfer, batch, advance
            )
            per_model[attack.model_names[k]] = metrics
            first_dets = first_dets or dets
    return per_model, first_dets


def run_patch_job(
    attack: PatchAttack,
    val: ImageSet,
    out: Path,
    size_mm: float,
    resume: bool = False,
    checkpoint_every: int = 25,
    dpi: int = 150,
    paper: str = "letter",
    eval_batch: int = 16,
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / CHECKPOINT_NAME
    patch, record = run_with_progress(attack, "optimising patch", checkpoint, resume, checkpoint_every)
    provenance = {"attack": "thys_patch", "models": attack.model_names, **attack.config.as_dict()}
    artefact = Artefact(patch, (size_mm, size_mm), provenance=provenance)
    files = write_printables(artefact, out, dpi, paper)
    (out / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in record["history"]))
    files.append(write_history_plot(record["history"], out / "history.png").name)
    per_model, dets = evaluate(attack, val, patch, eval_batch)
    files.append(write_grid(attack, val, patch, dets, out / "grid.jpg").name)
    first = per_model[attack.model_names[0]]
    summary = {
        "attack": "thys_patch",
        "classes": attack.config.classes,
        **headline(first),
        "steps": record["steps"],
        "seconds": record["seconds"],
        "skipped_steps": record["skipped_steps"],
        "device": str(attack.device),
        "amp": bool(getattr(attack.models[0], "amp", False)),
        "size_mm": size_mm,
        "train_images": len(attack.images),
        "train_objects": attack.images.objects,
        "heldout_images": len(val),
        "heldout_objects": val.objects,
        "models": attack.model_names,
        "conditions": per_model,
        "config": attack.config.as_dict(),
        "files": files,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
