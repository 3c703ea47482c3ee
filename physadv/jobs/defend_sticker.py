"""Does a defense stop this sticker? The same three numbers as for patches, on held-out views of the
sign (drawn from the sticker's own view range with a seed the optimisation never used):

- ``clean``: accuracy (classifier) or true-positive rate (detector) with the defense in front;
- ``non_adaptive``: with the given sticker, made against the bare model;
- ``adaptive``: with a sticker re-optimised through the defense from the given one (same mask).

A detection defense (MC dropout, a detector network, KD, LID) flags inputs: a flagged clean view
counts as an error (a false alarm), a flagged attacked view as a stopped attack. PatchCleanser also
reports the fraction of clean views it certifies. For a classifier, ``digital`` adds PGD and CW on
the same views (:mod:`physadv.jobs.defend_digital`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from physadv.artefact import Artefact
from physadv.attacks.checkpoint import run_with_progress
from physadv.attacks.rp2 import StickerAttack
from physadv.attacks.sticker_config import StickerConfig
from physadv.defenses.catalogue import FLAGGING, Choice, adaptive_paths, wrap
from physadv.distributed import Ranks
from physadv.eot.sign_views import render_views, scaled_boxes
from physadv.errors import PhysadvError
from physadv.harness.crops import model_inputs
from physadv.harness.metrics import Rate
from physadv.harness.sign_eval import SignGoal, judge_frames
from physadv.harness.sources import batched
from physadv.jobs.defend_digital import digital_columns, digital_inputs, digital_warnings, run_attack
from physadv.jobs.defend_ranks import Keep, save_picture, spread_rows
from physadv.jobs.sticker_config import StickerJob
from physadv.report.defense_table import masking_warnings, plot_rows, write_table

TITLE = "Defenses against an RP2 sticker"


def sticker_job(sidecar: dict) -> StickerJob | None:
    """The full settings a sticker was made with, where its ``sticker.json`` carries them."""
    if "settings" not in sidecar:
        return None  # made before stickers carried their settings
    return StickerJob.from_dict(sidecar["settings"], allow_derived=True)


def sticker_config(sidecar: dict, model) -> StickerConfig:
    """The attack settings a sticker was made with (its ``sticker.json``), checked against ``model``."""
    if sidecar.get("attack") != "rp2":
        raise PhysadvError("the artefact's sidecar does not describe an RP2 sticker")
    job = sticker_job(sidecar)
    if job is not None:
        config = job.attack
    else:
        keys = set(StickerConfig.keys())
        config = StickerConfig.from_dict({k: v for k, v in sidecar.items() if k in keys}, allow_derived=True)
    wants = "detector" if config.goal in ("hide", "relabel") else "classifier"
    if model.kind != wants:
        raise PhysadvError(
            f"the sticker was made to '{config.goal}' against a {wants}; --model is a {model.kind}"
        )
    for cls in (config.true_class, config.target):
        if cls is not None and not 0 <= cls < model.num_classes:
            raise PhysadvError(
                f"the sticker names class {cls}, which the model ({model.num_classes} classes) lacks"
            )
    return config


def _judge(model, attack: StickerAttack, face: torch.Tensor, views, goal: SignGoal) -> dict:
    """Per-view records, plus flags and certificates where the defense has them."""
    records, flagged, certified = [], [], []
    for chunk in batched(views, 32):
        with torch.no_grad():
            frames = render_views(face, chunk, attack.out_size)
        boxes = scaled_boxes(chunk, attack.out_size)
        records += judge_frames(model, frames, boxes, goal)
        inputs = model_inputs(model, frames, boxes)
        if hasattr(model, "flag"):
            flagged += model.flag(inputs).tolist()
        if hasattr(model, "certify"):
            certified += model.certify(inputs, torch.full((len(inputs),), goal.true_class)).tolist()
    return {"records": records, "flagged": flagged or [False] * len(records), "certified": certified}


def _calibration_inputs(attack: StickerAttack, views) -> torch.Tensor:
    with torch.no_grad():
        frames = render_views(attack.face, views, attack.out_size)
    return model_inputs(attack.model, frames, scaled_boxes(views, attack.out_size))


def _rates(judged: dict, attacked: bool) -> tuple[dict, dict]:
    """The metric (flags: errors when clean, stopped attacks when attacked) and attack success."""
    pairs = list(zip(judged["records"], judged["flagged"], strict=True))
    ok = sum((r["correct"] or f) if attacked else (r["correct"] and not f) for r, f in pairs)
    won = sum(r["success"] and not f for r, f in pairs)
    return Rate(ok, len(pairs)).as_dict(), Rate(won, len(pairs)).as_dict()


def measure_sticker_defense(
    attack: StickerAttack,
    defense: Choice | None,
    sticker: Artefact,
    views: list,
    steps: int,
    out: Path,
    digital: tuple | None = None,
    keep: Keep = save_picture,
) -> dict:
    """One row of the table (``defense`` None: the bare model); ``digital``: the clean crops, their
    labels and the digital attacks made on the bare model, for the PGD and CW columns; ``keep``: what
    becomes of the adaptive sticker's picture (saved at once by default)."""
    c = attack.config
    goal = SignGoal(c.goal, c.true_class, c.target)
    bare = attack.model
    defended = wrap(defense, bare, c.seed)
    if hasattr(defended, "calibrate"):  # on clean views the evaluation never sees
        defended.calibrate(_calibration_inputs(attack, attack.views(len(views), seed=3)))

    def stuck(art: Artefact) -> torch.Tensor:
        return attack.stuck_face(art.image.to(attack.device), art.alpha.to(attack.device)).detach()

    _judge(defended, attack, attack.face, views[:1], goal)  # warm-up: lazy set-up is not the defense's cost
    start = time.perf_counter()
    judged = {"clean": _judge(defended, attack, attack.face, views, goal)}
    ms = 1000 * (time.perf_counter() - start) / len(views)
    judged["non_adaptive"] = _judge(defended, attack, stuck(sticker), views, goal)
    if defense is None:  # the sticker was made against the bare model: that is the adaptive attack
        judged["adaptive"] = judged["non_adaptive"]
    else:
        checkpoint, picture = adaptive_paths(out, defended.name, sticker.image)
        config = dataclasses.replace(c, steps=steps)
        # in this process alone: under torchrun the ranks share the table's rows, not this attack's views
        again = StickerAttack(defended, config, attack.palette, attack.transfer, start=sticker, ranks=Ranks())
        adaptive, _ = run_with_progress(again, f"adaptive attack through {defended.name}", checkpoint, True)
        keep(adaptive, picture)
        judged["adaptive"] = _judge(defended, attack, stuck(adaptive), views, goal)
    row = {"defense": defended.name, "ms_per_frame": round(ms, 1), "success": {}}
    for key, j in judged.items():
        row[key], won = _rates(j, attacked=key != "clean")
        if key != "clean":
            row["success"][key] = won
    if hasattr(defended, "flag"):
        row["flagged"] = {k: Rate(sum(j["flagged"]), len(j["flagged"])).as_dict() for k, j in judged.items()}
    if judged["clean"]["certified"]:
        row["certified"] = Rate(sum(judged["clean"]["certified"]), len(views)).as_dict()
    row["warnings"] = masking_warnings(row)
    if digital:
        x, y, made = digital
        row["digital"] = digital_columns(defended, x, y, made, c.seed, bare=defense is None)
        row["warnings"] += digital_warnings(row["digital"])
    return row


def run_sticker_defenses(
    attack: StickerAttack,
    defenses: list[Choice],
    sticker: Artefact,
    out: Path,
    views: int,
    steps: int,
    digital: tuple[str, ...] = (),
) -> tuple[list[dict], str] | None:
    """The table's rows, the bare model first; ``digital``: attacks (pgd, cw_l2) for extra columns.
    Under torchrun the ranks share the rows (:mod:`physadv.jobs.defend_ranks`): None on ranks other
    than 0."""
    out.mkdir(parents=True, exist_ok=True)
    metric = "tpr" if attack.detector else "accuracy"
    label = "True-positive rate of the sign" if attack.detector else "Top-1 accuracy on the sign"
    flags = any(d.name.split(":")[0] in FLAGGING for d in defenses)
    intro = (
        f"{label} in {views} held-out views (95 % Wilson intervals)"
        + (
            "; a flagged view counts as an error\nwhen clean and as a stopped attack when attacked"
            if flags
            else ""
        )
        + ". A defense helps if its adaptive number stays\nclose to its clean one."
    )
    held_out = attack.views(views, seed=2)  # the optimisation drew from seed 1
    cases = None
    if digital:
        x, y = digital_inputs(attack, held_out)
        cases = (x, y, {name: run_attack(name, attack.model, x, y, attack.config.seed) for name in digital})
        intro += f"\n{', '.join(digital)}: the same views, made on the bare model (non-adaptive → adaptive)."
    choices = [None, *defenses]

    def measure(k: int, keep: Keep) -> dict:
        return measure_sticker_defense(attack, choices[k], sticker, held_out, steps, out, cases, keep)

    names = [d.name if d else "none" for d in choices]
    rows = spread_rows(
        attack.device,
        names,
        attack.config.seed,
        measure,
        lambda rows: write_table(rows, out, TITLE, metric, intro),
    )
    if rows is None:
        return None
    plot_rows(rows, out / "defenses.png", f"{metric.replace('tpr', 'true-positive rate')} (%)")
    return rows, write_table(rows, out, TITLE, metric, intro)
