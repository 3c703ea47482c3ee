"""Does a defense stop this patch? Three numbers per defense, the credible way (Athalye et al. 2018;
Tramer et al. 2020):

- ``clean``: the true-positive rate on held-out photos with the defense in front (its cost);
- ``non_adaptive``: the same photos wearing the given patch, made against the bare model;
- ``adaptive``: wearing a patch re-optimised *through* the defense (gradients through it, BPDA
  where it has none, a fresh random draw every step), starting from the given one.

Plus the defense's cost in milliseconds per frame, and a warning where the adaptive attack does
worse than the non-adaptive one (a sign of gradient masking, or of too few adaptive steps). A defense
that detects patches (Jedi, SAC, Ad-YOLO) also gets the share of photos it raised an alarm on, in
each of the three conditions: on clean photos these are false alarms.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from physadv.artefact import Artefact
from physadv.attacks.checkpoint import run_with_progress
from physadv.attacks.person_patch import PatchAttack, PatchConfig
from physadv.data.image_set import ImageSet
from physadv.defenses.catalogue import Choice, adaptive_paths, wrap
from physadv.distributed import Ranks
from physadv.eot.colour import ColourTransfer
from physadv.harness.patch_eval import Judge, PatchTrial, evaluate_patch
from physadv.jobs.defend_ranks import Keep, save_picture, spread_rows
from physadv.jobs.patch_config import PatchJob
from physadv.report.defense_table import masking_warnings, plot_rows, write_table
from physadv.results import Rate

TITLE = "Defenses against a person-hiding patch"
CALIBRATION_IMAGES = 64  # clean training photos a defense may set its statistics on (Jedi)
INTRO = (
    "True-positive rate at confidence 0.25 on held-out photos (95 % Wilson intervals). A defense\n"
    "helps if its adaptive number stays close to its clean one. Defenses that detect patches also\n"
    "show the share of photos they flagged (clean: false alarms)."
)


def patch_job(sidecar: dict) -> PatchJob | None:
    """The full settings a patch was made with, where its ``patch.json`` carries them (``None``: made
    before patches carried their settings)."""
    if "settings" not in sidecar:
        return None
    return PatchJob.from_dict(sidecar["settings"], allow_derived=True)


def adaptive_config(sidecar: dict, classes: list[str], steps: int, batch: int, resolution: int, seed: int):
    """The attack settings for re-optimising a patch through a defense: as the patch was made (its
    size, EOT, losses, camera and people assumptions; the defaults for a patch without settings), with
    the ``classes``, ``steps``, ``batch`` (0: as made, or the device's), ``resolution`` and ``seed`` of
    this run. Returns the config and the job it came from (or ``None``)."""
    made = patch_job(sidecar)
    base = (
        made.attack
        if made is not None
        else PatchConfig(size_mm=float((sidecar.get("size_mm") or [400.0])[0]))
    )
    batch = batch or (base.batch if made is not None else 0)
    config = dataclasses.replace(
        base, classes=classes, steps=steps, batch=batch, resolution=resolution, seed=seed
    )
    return config, made


def _tpr(
    model, ids, val: ImageSet, patch: torch.Tensor | None, config: PatchConfig, transfer=None
) -> tuple[dict, float, dict | None]:
    """TPR@0.25 (rate dict), milliseconds per frame, and the share of photos flagged (rate dict, for
    defenses that raise alarms), the patch worn at its size on the torso, after a warm-up on one
    image (the first call pays for lazy initialisation and, on CUDA, kernel selection: not the
    defense's cost)."""
    judge = Judge(config.size_mm / 1000, config.eot, transfer, config.hfov_deg, config.person_height_m)
    evaluate_patch(model, ids, val.subset([0]), {"x": PatchTrial(patch)}, judge)
    alarms = getattr(model, "alarms", None)
    if alarms is not None:
        alarms.take()  # the warm-up's
    start = time.perf_counter()
    metrics, _ = evaluate_patch(model, ids, val, {"x": PatchTrial(patch)}, judge)
    ms = 1000 * (time.perf_counter() - start) / len(val)
    flags = alarms.take() if alarms is not None else None
    flagged = Rate(sum(flags), len(flags)).as_dict() if flags is not None else None
    return metrics["x"]["true_positive_rate@0.25"], ms, flagged


def measure_defense(
    model,
    ids: list[int],
    defense: Choice | None,
    patch: torch.Tensor,
    train: ImageSet,
    val: ImageSet,
    config: PatchConfig,
    palette: torch.Tensor,
    out: Path,
    transfer: ColourTransfer | None = None,
    keep: Keep = save_picture,
) -> dict:
    """One row of the table (``defense`` None: the bare model); ``transfer``: the printer calibration
    the patch was made with (the adaptive patch is optimised, and every patch judged, as printed);
    ``keep``: what becomes of the adaptive patch's picture (saved at once by default)."""
    defended = wrap(defense, model, config.seed)
    if hasattr(defended, "calibrate"):  # on the defender's own clean photos, never the judged ones
        defended.calibrate(train.images[:CALIBRATION_IMAGES].float() / 255)
    flagged = {}
    clean, ms, flagged["clean"] = _tpr(defended, ids, val, None, config, transfer)
    non_adaptive, _, flagged["non_adaptive"] = _tpr(defended, ids, val, patch, config, transfer)
    row = {
        "defense": defended.name,
        "clean": clean,
        "non_adaptive": non_adaptive,
        "ms_per_frame": round(ms, 1),
    }
    if defense is None:  # the patch was made against the bare model: that is the adaptive attack
        row["adaptive"] = non_adaptive
        flagged["adaptive"] = flagged["non_adaptive"]
    else:
        checkpoint, picture = adaptive_paths(out, defended.name, patch)
        # in this process alone: under torchrun the ranks share the table's rows, not this attack's photos
        attack = PatchAttack([defended], config, train, palette, transfer, start=patch, ranks=Ranks())
        adaptive_patch, _ = run_with_progress(
            attack, f"adaptive attack through {defended.name}", checkpoint, True
        )
        keep(Artefact(adaptive_patch, (100.0, 100.0)), picture)
        row["adaptive"], _, flagged["adaptive"] = _tpr(defended, ids, val, adaptive_patch, config, transfer)
    if flagged["clean"] is not None:
        row["flagged"] = flagged
    row["warnings"] = masking_warnings(row)
    return row


def run_patch_defenses(
    model,
    ids: list[int],
    defenses: list[Choice],
    patch: torch.Tensor,
    train: ImageSet,
    val: ImageSet,
    config: PatchConfig,
    palette: torch.Tensor,
    out: Path,
    transfer: ColourTransfer | None = None,
) -> tuple[list[dict], str] | None:
    """The table's rows, the bare model first. Under torchrun the ranks share the rows
    (:mod:`physadv.jobs.defend_ranks`): None on ranks other than 0."""
    out.mkdir(parents=True, exist_ok=True)
    choices = [None, *defenses]

    def measure(k: int, keep: Keep) -> dict:
        return measure_defense(
            model, ids, choices[k], patch, train, val, config, palette, out, transfer, keep
        )

    names = [d.name if d else "none" for d in choices]
    rows = spread_rows(
        model.device, names, config.seed, measure, lambda rows: write_table(rows, out, TITLE, "tpr", INTRO)
    )
    if rows is None:
        return None
    plot_rows(rows, out / "defenses.png", "true-positive rate @0.25 (%)")
    return rows, write_table(rows, out, TITLE, "tpr", INTRO)
