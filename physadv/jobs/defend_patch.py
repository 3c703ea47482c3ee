"""Does a defense stop this patch? Three numbers per defense, the credible way (Athalye et al. 2018;
Tramer et al. 2020):

- ``clean``: the true-positive rate on held-out photos with the defense in front (its cost);
- ``non_adaptive``: the same photos wearing the given patch, made against the bare model;
- ``adaptive``: wearing a patch re-optimised *through* the defense (gradients through it, BPDA
  where it has none, a fresh random draw every step), starting from the given one.

Plus the defense's cost in milliseconds per frame, and a warning where the adaptive attack does
worse than the non-adaptive one (a sign of gradient masking, or of too few adaptive steps).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from physadv.attacks.checkpoint import run_with_progress
from physadv.attacks.person_patch import PatchAttack, PatchConfig
from physadv.data.image_set import ImageSet
from physadv.defenses.catalogue import Choice, adaptive_paths, wrap
from physadv.harness.patch_eval import Judge, PatchTrial, evaluate_patch
from physadv.report.defense_table import masking_warnings, plot_rows, write_table

TITLE = "Defenses against a person-hiding patch"
INTRO = (
    "True-positive rate at confidence 0.25 on held-out photos (95 % Wilson intervals). A defense\n"
    "helps if its adaptive number stays close to its clean one."
)


def _tpr(model, ids, val: ImageSet, patch: torch.Tensor | None, config: PatchConfig) -> tuple[dict, float]:
    """TPR@0.25 (rate dict) and milliseconds per frame, the patch worn at its size on the torso, after
    a warm-up on one image (the first call pays for lazy initialisation and, on CUDA, kernel
    selection: not the defense's cost)."""
    judge = Judge(config.size_mm / 1000, config.eot, None, config.hfov_deg, config.person_height_m)
    evaluate_patch(model, ids, val.subset([0]), {"x": PatchTrial(patch)}, judge)
    start = time.perf_counter()
    metrics, _ = evaluate_patch(model, ids, val, {"x": PatchTrial(patch)}, judge)
    ms = 1000 * (time.perf_counter() - start) / len(val)
    return metrics["x"]["true_positive_rate@0.25"], ms


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
) -> dict:
    """One row of the table (``defense`` None: the bare model)."""
    from physadv.artefact import Artefact
    from physadv.printing.export import save_png

    defended = wrap(defense, model, config.seed)
    clean, ms = _tpr(defended, ids, val, None, config)
    non_adaptive, _ = _tpr(defended, ids, val, patch, config)
    row = {
        "defense": defended.name,
        "clean": clean,
        "non_adaptive": non_adaptive,
        "ms_per_frame": round(ms, 1),
    }
    if defense is None:  # the patch was made against the bare model: that is the adaptive attack
        row["adaptive"] = non_adaptive
    else:
        checkpoint, picture = adaptive_paths(out, defended.name, patch)
        attack = PatchAttack([defended], config, train, palette, start=patch)
        adaptive_patch, _ = run_with_progress(
            attack, f"adaptive attack through {defended.name}", checkpoint, True
        )
        save_png(Artefact(adaptive_patch, (100.0, 100.0)), picture, 72)
        row["adaptive"], _ = _tpr(defended, ids, val, adaptive_patch, config)
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
) -> tuple[list[dict], str]:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for defense in [None, *defenses]:
        rows.append(measure_defense(model, ids, defense, patch, train, val, config, palette, out))
        write_table(rows, out, TITLE, "tpr", INTRO)  # a crash keeps what was done
    plot_rows(rows, out / "defenses.png", "true-positive rate @0.25 (%)")
    return rows, write_table(rows, out, TITLE, "tpr", INTRO)
