"""The whole person-patch job: optimise (with checkpoints), write the printables, judge the patch
and its controls on held-out photos and rendered streets for every model, through physadv's
compositor and an independent one, and write pictures and ``summary.json`` (whose headline figures
are the independent compositor's)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from physadv import distributed
from physadv.artefact import Artefact
from physadv.attacks.checkpoint import CHECKPOINT_NAME, check_out, refuse_overwrite, run_with_progress
from physadv.attacks.person_patch import PatchAttack
from physadv.data.image_set import ImageSet
from physadv.data.images import LETTERBOX_FILL
from physadv.eot.person_scenes import ScenePeople
from physadv.errors import PhysadvError
from physadv.harness.annotate import GREEN, RED, WHITE, draw_box, draw_detections, draw_label
from physadv.harness.patch_eval import (
    INDEPENDENT,
    Judge,
    agreement,
    control_trials,
    evaluate_patch,
    headline,
    held_out_frames,
    physadv_view,
)
from physadv.jobs.patch_config import PatchJob
from physadv.progress import progress_bar
from physadv.results import write_json
from physadv.scene.video import to_bgr8

GRID_IMAGES = 6
MIN_TRAIN_PEOPLE = 30  # fewer people than this to train on: the patch will not generalise (say so)
MIN_HELD_OUT_PEOPLE = 20
NOISE_PNG = "noise_control.png"


def write_printables(patch: Artefact, out: Path, dpi: int, paper: str) -> list[str]:
    """patch.png (+ .json), patch.pdf (one page of exactly the patch's size) and a paper tiling."""
    from physadv.printing.export import save_pdf, save_png, save_sidecar

    save_png(patch, out / "patch.png", dpi)
    save_sidecar(patch, out / "patch.json", dpi=dpi)
    save_pdf(patch, out / "patch.pdf", dpi)
    save_pdf(patch, out / f"patch_{paper}.pdf", dpi, paper=paper, label="person patch")
    return ["patch.png", "patch.json", "patch.pdf", f"patch_{paper}.pdf"]


def write_noise_control(patch: torch.Tensor, seed: int, size_mm: tuple, out: Path, dpi: int) -> str:
    """noise_control.png: the noise patch the run judged beside the patch (same size, same pixels), to
    replay or print as the control (``physadv eval … --patch noise_control.png``)."""
    from physadv.printing.export import save_png

    noise = control_trials(patch, seed)["noise_control"].patch
    save_png(Artefact(noise, size_mm, provenance={"control": "noise", "seed": seed}), out / NOISE_PNG, dpi)
    return NOISE_PNG


def write_grid(
    attack: PatchAttack, held_out, patch: torch.Tensor, detections: dict, judge: Judge, path: Path, conf=0.25
) -> Path:
    """Before/after picture: the first held-out frames clean (top) and patched (bottom, as physadv's
    compositor judged them), with the first model's detections at ``conf``."""
    model, ids = attack.models[0], attack.class_ids[0]
    index = list(range(min(GRID_IMAGES, len(held_out))))
    frames = held_out_frames(held_out, index, "cpu", judge)
    trials = control_trials(patch, attack.config.seed)
    shown = {name: physadv_view(trials[name], frames, judge, None, None)[0] for name in ("clean", "patched")}
    y0, y1, x0, x1 = 0, frames.images.shape[-2], 0, frames.images.shape[-1]
    if isinstance(held_out, ImageSet):  # crop the letterbox padding shared by the shown images
        content = (held_out.images[index] != round(LETTERBOX_FILL * 255)).any(dim=0).any(dim=0)
        ys, xs = content.any(dim=1).nonzero().flatten(), content.any(dim=0).nonzero().flatten()
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    rows = []
    for name, x in shown.items():
        row = []
        for k, i in enumerate(index):
            panel = to_bgr8(x[k])
            people = frames.boxes[k][frames.valid[k]]
            for box in people:
                draw_box(panel, box, WHITE, 1)
            found = draw_detections(panel, detections[name][i], model.names, conf, ids, thickness=2)
            panel = panel[y0:y1, x0:x1].copy()
            colour = GREEN if name == "clean" else RED
            draw_label(panel, f"{name}: {found} found, {len(people)} labelled", (4, 16), colour)
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


def judge_for(attack: PatchAttack) -> Judge:
    """The held-out judgement for what ``attack`` made: its size, EOT, print and photo camera."""
    c = attack.config
    return Judge(c.size_mm / 1000, c.eot, attack.transfer, c.hfov_deg, c.person_height_m)


def evaluate(attack: PatchAttack, held_out, patch: torch.Tensor, batch: int, what: str) -> tuple[dict, dict]:
    """Per model: both compositors' metrics per condition and how well they agree; the detections of
    the first model through physadv's compositor (for the grid)."""
    judge, trials = judge_for(attack), control_trials(patch, attack.config.seed)
    independent = {k: v for k, v in trials.items() if k in INDEPENDENT}
    per_model, first_dets = {}, None
    total = len(attack.models) * (len(trials) + len(independent)) * len(held_out)
    with progress_bar(f"judging on held-out {what}", total) as advance:
        for k, (model, ids) in enumerate(zip(attack.models, attack.class_ids, strict=True)):
            ours, dets = evaluate_patch(model, ids, held_out, trials, judge, batch, advance)
            theirs, _ = evaluate_patch(model, ids, held_out, independent, judge, batch, advance, "opencv")
            per_model[attack.model_names[k]] = {
                "physadv": ours,
                "independent": theirs,
                "agreement": agreement(ours, theirs),
            }
            first_dets = first_dets or dets
    return per_model, first_dets


def training_warnings(attack: PatchAttack, held_out_people: int) -> list[str]:
    """What makes the result say little: too few people to learn from, or to count on."""
    out = []
    if attack.scenes is None and attack.images is not None and attack.images.objects < MIN_TRAIN_PEOPLE:
        out.append(
            f"only {attack.images.objects} people in {len(attack.images)} training photos: a patch made on "
            "so few overfits them and says little about other people: judge it on held-out photos only "
            "(a --val folder, or --holdout 0.25 or more), add photos, or train in a rendered street "
            "(--scene)"
        )
    if held_out_people < MIN_HELD_OUT_PEOPLE:
        out.append(
            f"only {held_out_people} held-out people: every rate below has a wide interval (a larger "
            "--holdout or a --val folder gives more)"
        )
    return out


def _headlines(per_model: dict, first: str) -> dict:
    """The first model's figures: the independent compositor's, then physadv's beside them."""
    m = per_model[first]
    ours = headline(m["physadv"])
    eot = m["physadv"].get("patched_eot", {}).get("true_positive_rate@0.25")
    return {
        **headline(m["independent"]),
        "tpr_patched_eot": None if eot is None else eot["rate"],
        "physadv_compositor": ours,
        "agreement_points": m["agreement"]["worst_points"],
        "compositors_agree": m["agreement"]["agree"],
    }


def run_patch_job(
    attack: PatchAttack,
    val: ImageSet | None,
    out: Path,
    size_mm: float | None = None,
    resume: bool = False,
    checkpoint_every: int = 25,
    dpi: int = 150,
    paper: str = "letter",
    eval_batch: int = 16,
    scene_val: ScenePeople | None = None,
    job: PatchJob | None = None,
) -> dict:
    """Optimise, write the printables, judge on the held-out photos (``val``) and rendered frames
    (``scene_val``) through both compositors, and write ``summary.json``. ``size_mm``: the printed
    side (default: the attack's); ``job``: the command's settings, written to ``config.yaml`` and into
    the patch's sidecar (so ``physadv defend`` judges the patch as it was made)."""
    size_mm = size_mm or attack.config.size_mm
    main = attack.ranks.main  # under torchrun, rank 0 alone writes files and judges
    held = {k: v for k, v in (("photos", val), ("scene", scene_val)) if v is not None}
    warnings = training_warnings(attack, sum(held_out_people(v) for v in held.values()))
    checkpoint = out / CHECKPOINT_NAME
    check_out(checkpoint, attack.config.as_dict(), resume, attack.may_change())  # before config.yaml
    if main:
        out.mkdir(parents=True, exist_ok=True)
        if job is not None:
            job.write_yaml(out / "config.yaml", "physadv patch: the resolved settings of this run")
        for line in warnings:
            print(f"physadv: warning: {line}", file=sys.stderr)
    patch, record = run_with_progress(attack, "optimising patch", checkpoint, resume, checkpoint_every)
    if not main:
        return {}
    made = {k: v for k, v in attack.config.as_dict().items() if k != "size_mm"}  # the artefact has it
    provenance = {"attack": "thys_patch", "models": attack.model_names, **made}
    if job is not None:
        provenance["settings"] = job.to_dict()
    artefact = Artefact(patch, (size_mm, size_mm), provenance=provenance)
    files = write_printables(artefact, out, dpi, paper)
    files.append(write_noise_control(patch, attack.config.seed, (size_mm, size_mm), out, dpi))
    (out / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in record["history"]))
    files.append("history.jsonl")
    files.append(write_history_plot(record["history"], out / "history.png").name)
    judged = {}
    for what, held_out in held.items():
        per_model, dets = evaluate(attack, held_out, patch, eval_batch, what)
        judged[what] = per_model
        if what == next(iter(held)):
            files.append(write_grid(attack, held_out, patch, dets, judge_for(attack), out / "grid.jpg").name)
    first_set, first_model = next(iter(held)), attack.model_names[0]
    primary = judged[first_set]
    summary = {
        "attack": "thys_patch",
        "classes": attack.config.classes,
        "judged_on": first_set,
        "figures_from": "the independent compositor (OpenCV resampling, 8-bit print, OpenCV JPEG)",
        **_headlines(primary, first_model),
        "steps": record["steps"],
        "seconds": record["seconds"],
        "skipped_steps": record["skipped_steps"],
        "device": str(attack.device),
        "amp": bool(getattr(attack.models[0], "amp", False)) and attack.models[0].device.type == "cuda",
        "size_mm": size_mm,
        "train_images": 0 if attack.images is None else len(attack.images),
        "train_objects": 0 if attack.images is None else attack.images.objects,
        "train_scene_frames": 0 if attack.scenes is None else attack.scenes.next_index,
        "heldout_images": len(held[first_set]),
        "heldout_objects": held_out_people(held[first_set]),
        "models": attack.model_names,
        "conditions": {name: m["physadv"] for name, m in primary.items()},
        "conditions_independent": {name: m["independent"] for name, m in primary.items()},
        "agreement": {name: m["agreement"] for name, m in primary.items()},
        "held_out": {what: _headlines(per_model, first_model) for what, per_model in judged.items()},
        "judged": judged,
        "warnings": warnings,
        "config": attack.config.as_dict(),
        "files": files,
    }
    write_json(out / "summary.json", summary)
    return summary


def run_patch(job: PatchJob, out: Path, resume: bool = False) -> dict | None:
    """``physadv patch`` from its settings: load the detectors, the photos and/or the street, optimise
    and judge (:func:`run_patch_job`); the resolved settings go to ``OUT/config.yaml``. Under torchrun
    the ranks share each step's photos and rank 0 alone writes and judges (the others return None).

    Raises:
        PhysadvError: no people to train on, a classifier given as a detector, an unknown class.
    """
    from physadv.data.class_map import parse_class_map
    from physadv.eot.colour import ColourTransfer
    from physadv.jobs.patch_data import class_names, load_scenes, load_train_val
    from physadv.models import load_model
    from physadv.printing.palette import Palette

    if job.images is None and job.scene is None:
        raise PhysadvError("give --images (photos of people), --scene (a pedestrians scene spec), or both")
    if job.scene is not None and distributed.ranks_from_env().active:  # before the street is rendered
        raise PhysadvError("--scene under torchrun is not supported yet: train on photos, or in one process")
    if not resume:  # before the models and photos load: a rerun into a finished or interrupted run
        refuse_overwrite(out / CHECKPOINT_NAME)
    victims = [
        load_model(m, task="detect", device=job.device, amp=job.amp, imgsz=job.imgsz, end2end=job.end2end)
        for m in job.model
    ]
    for spec, victim in zip(job.model, victims, strict=True):
        if victim.kind != "detector":
            raise PhysadvError(f"'{spec}' is a classifier; patches attack detectors")
    names = class_names(victims[0], job.classes)
    config = dataclasses.replace(job.attack, classes=names)
    train_set = val_set = None
    if job.images is not None:
        train_set, val_set = load_train_val(
            victims[0], names, job.images, job.labels, job.val, job.val_labels, job.holdout,
            job.pseudo_conf, job.min_box, config.seed, parse_class_map(job.class_map),
        )  # fmt: skip
    scenes = scene_held_out = None
    if job.scene is not None:
        if "person" not in names:
            raise PhysadvError(
                f"--scene trains on rendered people: --classes must include person, not {names}"
            )
        scenes, scene_held_out = load_scenes(
            job.scene, job.scene_frames, job.scene_refresh, job.scene_val, config.seed, victims[0].imgsz
        )
    colours = (Palette.load(job.palette) if job.palette else Palette.default()).colours
    transfer = ColourTransfer.load(job.calibration) if job.calibration else None
    attack = PatchAttack(
        victims, config, train_set, colours, transfer, model_names=list(job.model), scenes=scenes
    )
    job = dataclasses.replace(job, attack=attack.config)  # classes and batch as resolved
    ranks = distributed.start(attack.device)  # under torchrun: the ranks share each step's photos
    try:
        summary = run_patch_job(
            attack, val_set, out, config.size_mm, resume, job.checkpoint_every, job.dpi, job.paper,
            scene_val=scene_held_out, job=job,
        )  # fmt: skip
    finally:
        distributed.stop()
    return summary if ranks.main else None


def held_out_people(held_out) -> int:
    return held_out.objects
