"""The whole sticker job: optimise (with checkpoints), judge on held-out views, the lab table and a
drive-by, and write the printables and ``summary.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from physadv.artefact import Artefact
from physadv.attacks.checkpoint import CHECKPOINT_NAME, run_with_progress
from physadv.attacks.rp2 import StickerAttack
from physadv.harness.sign_eval import SignGoal, evaluate_scene, evaluate_views, summarise
from physadv.progress import progress_bar
from physadv.scene.render import count_frames
from physadv.scene.spec import SHIPPED_SCENES, load_spec


@dataclass
class Evaluation:
    views: int = 200  # held-out EOT draws
    lab: Path | None = SHIPPED_SCENES / "lab_rp2.yaml"
    driveby: Path | None = SHIPPED_SCENES / "driveby_stop.yaml"
    conf: float = 0.25


def write_printables(attack: StickerAttack, sticker: Artefact, out: Path, paper: str, dpi: int) -> list[str]:
    """sticker.png (+ .json), the sticker sheet and placement guide, and the full-sign poster."""
    from physadv.printing.export import save_pdf, save_png, save_sidecar
    from physadv.printing.stickers import save_placement_guide, save_sticker_sheet
    from physadv.scene.geometry import stop_sign_outline_mm

    save_png(sticker, out / "sticker.png", dpi)
    save_sidecar(sticker, out / "sticker.json", dpi=dpi)
    outline = stop_sign_outline_mm(sticker.size_mm[0]) if attack.config.sign == "stop" else None
    save_sticker_sheet(sticker, out / "sticker_sheet.pdf", paper, dpi)
    save_placement_guide(sticker, out / "placement_guide.pdf", outline, paper, min(dpi, 150))
    face = attack.stuck_face(sticker.image.to(attack.device), sticker.alpha.to(attack.device)).cpu()
    poster = Artefact(face[:3], sticker.size_mm, face[3:], provenance=sticker.provenance)
    save_png(poster, out / "poster.png", dpi)
    save_pdf(poster, out / f"poster_{paper}.pdf", dpi, paper=paper, label="sign with stickers")
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
        views = attack.views(plan.views, seed=2)  # never used in optimisation (seed 1)
        clean = evaluate_views(attack.model, attack.face, views, attack.out_size, goal)
        stuck = evaluate_views(attack.model, face, views, attack.out_size, goal)
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
        "amp": bool(getattr(model, "amp", False)),
        "config": c.as_dict(),
        "files": files,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def run_sticker_job(
    attack: StickerAttack,
    out: Path,
    plan: Evaluation,
    resume: bool = False,
    checkpoint_every: int = 25,
    paper: str = "letter",
    dpi: int = 300,
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / CHECKPOINT_NAME
    sticker, record = run_with_progress(attack, "optimising sticker", checkpoint, resume, checkpoint_every)
    sticker.provenance.update({"attack": "rp2", **attack.config.as_dict()})
    files = write_printables(attack, sticker, out, paper, dpi)
    (out / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in record["history"]))
    conditions, frames = evaluate(attack, sticker, plan)
    with (out / "eval_frames.jsonl").open("w") as f:
        for name, records in frames.items():
            f.writelines(json.dumps({"condition": name, **r}) + "\n" for r in records)
    return write_summary(out, attack, record, conditions, files)
