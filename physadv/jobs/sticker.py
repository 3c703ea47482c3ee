"""The whole sticker job: optimise (with checkpoints), judge on held-out views, the lab table and a
drive-by, and write the printables and ``summary.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from physadv import distributed
from physadv.artefact import Artefact
from physadv.attacks.checkpoint import CHECKPOINT_NAME, check_out, refuse_overwrite, run_with_progress
from physadv.attacks.rp2 import StickerAttack
from physadv.errors import PhysadvError
from physadv.harness.sign_eval import SignGoal, evaluate_scene, evaluate_views, summarise
from physadv.jobs.sticker_config import StickerJob
from physadv.progress import progress_bar
from physadv.results import write_json
from physadv.scene.render import count_frames
from physadv.scene.spec import SHIPPED_SCENES, load_spec


@dataclass
class Evaluation:
    views: int = 200  # held-out EOT draws
    lab: Path | None = SHIPPED_SCENES / "lab_rp2.yaml"
    driveby: Path | None = SHIPPED_SCENES / "driveby_stop.yaml"
    conf: float = 0.25


def write_printables(
    attack: StickerAttack, sticker: Artefact, out: Path, paper: str, dpi: int, advance=lambda: None
) -> list[str]:
    """sticker.png (+ .json), the sticker sheet and placement guide, and the full-sign poster;
    ``advance()`` after each of the 5 files (tens of seconds at 300 dpi on a CPU)."""
    from physadv.printing.export import save_pdf, save_png, save_sidecar
    from physadv.printing.stickers import save_placement_guide, save_sticker_sheet
    from physadv.scene.geometry import stop_sign_outline_mm

    save_png(sticker, out / "sticker.png", dpi)
    save_sidecar(sticker, out / "sticker.json", dpi=dpi)
    advance()
    outline = stop_sign_outline_mm(sticker.size_mm[0]) if attack.config.sign == "stop" else None
    save_sticker_sheet(sticker, out / "sticker_sheet.pdf", paper, dpi)
    advance()
    save_placement_guide(sticker, out / "placement_guide.pdf", outline, paper, min(dpi, 150))
    advance()
    face = attack.stuck_face(sticker.image.to(attack.device), sticker.alpha.to(attack.device)).cpu()
    poster = Artefact(face[:3], sticker.size_mm, face[3:], provenance=sticker.provenance)
    save_png(poster, out / "poster.png", dpi)
    advance()
    save_pdf(poster, out / f"poster_{paper}.pdf", dpi, paper=paper, label="sign with stickers")
    advance()
    return ["sticker.png", "sticker_sheet.pdf", "placement_guide.pdf", "poster.png", f"poster_{paper}.pdf"]


def evaluate(attack: StickerAttack, sticker: Artefact, plan: Evaluation) -> tuple[dict, dict]:
    """Rates per condition and the per-frame records behind them."""
    c = attack.config
    goal = SignGoal(c.goal, c.true_class, c.target, plan.conf)
    printed = attack.artefact(sticker.image, sticker.alpha, printed=True)
    face = attack.stuck_face(sticker.image.to(attack.device), sticker.alpha.to(attack.device)).detach()
    detector = attack.detector
    conditions, frames = {}, {}
    if plan.views:
        with progress_bar("judging held-out views", 2 * plan.views) as advance:
            views = attack.views(plan.views, seed=2)  # never used in optimisation (seed 1)
            clean = evaluate_views(attack.model, attack.face, views, attack.out_size, goal, progress=advance)
            stuck = evaluate_views(attack.model, face, views, attack.out_size, goal, progress=advance)
        conditions["eot_heldout"], frames["eot_heldout"] = summarise(clean, stuck, detector), stuck
    for name, path in (("lab_table", plan.lab), ("driveby", plan.driveby)):
        if path is None:
            continue
        spec = load_spec(path)
        spec["sign"]["class"] = c.sign
        with progress_bar(f"replaying {path.name}", 2 * count_frames(spec)) as advance:
            clean = evaluate_scene(attack.model, spec, goal, None, progress=advance)
            stuck = evaluate_scene(attack.model, spec, goal, printed, progress=advance)
        conditions[name], frames[name] = summarise(clean, stuck, detector), stuck
    return conditions, frames


def write_summary(out: Path, attack: StickerAttack, record: dict, conditions: dict, files: list[str]) -> dict:
    c, model = attack.config, attack.model
    summary = {
        "attack": "rp2_sticker",
        "goal": c.goal,
        "true_class": model.names[c.true_class],
        "target": None if c.target is None else model.names[c.target],
        "mask": c.mask,
        "model_kind": model.kind,
        "targeted_success_rate": {k: v["targeted_success_rate"]["rate"] for k, v in conditions.items()},
        "conditions": conditions,
        "sticker_area_fraction": record["sticker_area_fraction"],
        "steps": record["steps"],
        "seconds": record["seconds"],
        "device": str(attack.device),
        "amp": bool(getattr(model, "amp", False)) and model.device.type == "cuda",  # used, not asked for
        "config": c.as_dict(),
        "files": files,
    }
    write_json(out / "summary.json", summary)
    return summary


def _class_ids(model, job: StickerJob) -> tuple[str, int, int | None]:
    """The goal and the class ids of the sign and the target, from the names in ``job``."""
    if job.true_class is not None:
        true_class = model.names.id(job.true_class)
    else:
        true_class = model.names.first_of("stop sign", "stop")
        if true_class is None:
            raise PhysadvError(
                "the model has no 'stop sign' or 'stop' class: name the sign's class with --true-class"
            )
    target = model.names.id(job.target) if job.target else None
    if target is not None and target == true_class:
        raise PhysadvError(
            f"the target is the true class ('{model.names[true_class]}'): a sticker cannot make the sign "
            "read as what it already is; pick another --target, or --untargeted"
        )
    if job.untargeted and job.target:
        raise PhysadvError("give either --target or --untargeted, not both")
    if model.kind == "detector":
        if job.untargeted:
            raise PhysadvError("--untargeted is for classifiers; a detector without --target hides the sign")
        return ("relabel" if target is not None else "hide"), true_class, target
    if job.untargeted:
        return "untargeted", true_class, None
    if target is None:
        raise PhysadvError("a classifier attack needs --target CLASS (e.g. 'speed limit 45') or --untargeted")
    return "targeted", true_class, target


def build_attack(job: StickerJob) -> StickerAttack:
    """The model, the class ids, the palette and the colour transfer that ``job`` names, as an attack."""
    from physadv.attacks.masks import MASK_NAMES
    from physadv.eot.colour import ColourTransfer
    from physadv.models import load_model
    from physadv.printing.palette import Palette

    mask = job.attack.mask
    if mask not in MASK_NAMES and not Path(mask).is_file():
        raise PhysadvError(f"unknown mask '{mask}': use {', '.join(MASK_NAMES)}, or a mask image file")
    victim = load_model(job.model, task=job.task, device=job.device, amp=job.amp, end2end=job.end2end)
    goal, true_class, target = _class_ids(victim, job)
    config = job.attack.merged({"goal": goal, "true_class": true_class, "target": target})
    colours = (Palette.load(job.palette) if job.palette else Palette.default()).colours
    transfer = ColourTransfer.load(job.calibration) if job.calibration else None
    return StickerAttack(victim, config, colours, transfer)


def run_sticker(job: StickerJob, out: Path, resume: bool = False) -> dict:
    """``physadv sticker``: build the attack ``job`` describes, run it, write everything to ``out``
    (with the resolved settings in ``config.yaml``) and return the summary."""
    if not resume:  # before the model loads: a rerun into a finished or interrupted run's folder
        refuse_overwrite(out / CHECKPOINT_NAME)
    attack = build_attack(job)
    ranks = distributed.start(attack.device)  # under torchrun: the ranks share each step's views
    plan = Evaluation(views=job.eval_views)
    if not job.scenes:
        plan.lab = plan.driveby = None
    else:
        plan.lab, plan.driveby = job.lab or plan.lab, job.driveby or plan.driveby
    try:
        summary = run_sticker_job(attack, out, plan, resume, job.checkpoint_every, job.paper, job.dpi, job)
    finally:
        distributed.stop()
    return summary if ranks.main else None


def run_sticker_job(
    attack: StickerAttack,
    out: Path,
    plan: Evaluation,
    resume: bool = False,
    checkpoint_every: int = 25,
    paper: str = "letter",
    dpi: int = 300,
    job: StickerJob | None = None,
) -> dict:
    """Optimise, write the printables, judge, and write ``summary.json``; ``job``: the settings that
    built ``attack``, written resolved to ``config.yaml`` and into the sticker's sidecar."""
    main = attack.ranks.main  # under torchrun, rank 0 alone writes files and judges
    checkpoint = out / CHECKPOINT_NAME
    check_out(checkpoint, attack.config.as_dict(), resume, attack.may_change())  # before config.yaml
    if main:
        out.mkdir(parents=True, exist_ok=True)
    if job is not None and main:
        job = job.merged({"attack": attack.config.to_dict()})  # batch and class ids as resolved
        job.write_yaml(out / "config.yaml", "physadv sticker: the resolved settings of this run")
    sticker, record = run_with_progress(attack, "optimising sticker", checkpoint, resume, checkpoint_every)
    if not main:
        return {}
    sticker.provenance.update({"attack": "rp2", **attack.config.as_dict()})
    if job is not None:
        sticker.provenance["settings"] = job.to_dict()
    with progress_bar(f"writing the printables ({dpi} dpi)", 5) as advance:
        files = write_printables(attack, sticker, out, paper, dpi, advance)
    (out / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in record["history"]))
    conditions, frames = evaluate(attack, sticker, plan)
    with (out / "eval_frames.jsonl").open("w") as f:
        for name, records in frames.items():
            f.writelines(json.dumps({"condition": name, **r}) + "\n" for r in records)
    return write_summary(out, attack, record, conditions, files)
