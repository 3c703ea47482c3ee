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

import csv
import hashlib
import json
import time
from pathlib import Path

import torch

from physadv.attacks.checkpoint import run_with_progress
from physadv.attacks.person_patch import PatchAttack, PatchConfig
from physadv.defenses.defended import Defended
from physadv.defenses.transforms import Defense
from physadv.harness.image_set import ImageSet
from physadv.harness.patch_eval import PatchTrial, evaluate_patch

MASKING_MARGIN = 0.05  # adaptive TPR this much above non-adaptive → warn


def _tpr(model, ids, val: ImageSet, patch: torch.Tensor | None, eot) -> tuple[dict, float]:
    """TPR@0.25 (rate dict) and milliseconds per frame."""
    start = time.perf_counter()
    metrics, _ = evaluate_patch(model, ids, val, {"x": PatchTrial(patch)}, eot)
    ms = 1000 * (time.perf_counter() - start) / len(val)
    return metrics["x"]["true_positive_rate@0.25"], ms


def _slug(name: str) -> str:
    return name.replace(":", "_").replace(".", "p").replace("+", "_")


def measure_defense(
    model,
    ids: list[int],
    defense: Defense | None,
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

    defended = Defended(model, [defense] if defense else [], seed=config.seed)
    clean, ms = _tpr(defended, ids, val, None, config.eot)
    non_adaptive, _ = _tpr(defended, ids, val, patch, config.eot)
    row = {
        "defense": defended.name,
        "clean": clean,
        "non_adaptive": non_adaptive,
        "ms_per_frame": round(ms, 1),
    }
    if defense is None:  # the patch was made against the bare model: that is the adaptive attack
        row["adaptive"] = non_adaptive
    else:
        # the checkpoint's name carries the starting patch, so a new artefact never resumes an old run
        digest = hashlib.sha1(patch.float().cpu().numpy().tobytes()).hexdigest()[:8]
        checkpoint = out / f"adaptive_{_slug(defended.name)}_{digest}.pt"
        attack = PatchAttack([defended], config, train, palette, start=patch)
        adaptive_patch, _ = run_with_progress(
            attack, f"adaptive attack through {defended.name}", checkpoint, True
        )
        save_png(Artefact(adaptive_patch, (100.0, 100.0)), out / f"adaptive_{_slug(defended.name)}.png", 72)
        row["adaptive"], _ = _tpr(defended, ids, val, adaptive_patch, config.eot)
    row["warnings"] = []
    if row["adaptive"]["rate"] > row["non_adaptive"]["rate"] + MASKING_MARGIN:
        row["warnings"].append(
            "the adaptive attack did worse than the non-adaptive one: gradient masking, or too few "
            "--adaptive-steps; trust the lower number"
        )
    return row


def write_table(rows: list[dict], out: Path, title: str) -> str:
    """defenses.json, defenses.csv and defenses.md (returned) — TPR@0.25, lower is a stronger attack."""
    (out / "defenses.json").write_text(json.dumps(rows, indent=2))
    keys = ("clean", "non_adaptive", "adaptive")
    with (out / "defenses.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["defense", *(f"{k}_tpr" for k in keys), *(f"{k}_ci95" for k in keys), "ms_per_frame", "warnings"]
        )
        for r in rows:
            w.writerow(
                [
                    r["defense"],
                    *(r[k]["rate"] for k in keys),
                    *(r[k]["ci95"] for k in keys),
                    r["ms_per_frame"],
                ]
                + ["; ".join(r["warnings"])]
            )

    def cell(rate: dict) -> str:
        low, high = rate["ci95"]
        return f"{100 * rate['rate']:.1f} % [{100 * low:.1f}, {100 * high:.1f}]"

    lines = [
        f"# {title}",
        "",
        "True-positive rate at confidence 0.25 on held-out photos (95 % Wilson intervals). A defense",
        "helps if its adaptive number stays close to its clean one.",
        "",
        "| defense | clean | non-adaptive patch | adaptive patch | ms/frame |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        flag = " ⚠" if r["warnings"] else ""
        lines.append(
            f"| {r['defense']} | {cell(r['clean'])} | {cell(r['non_adaptive'])} | "
            f"{cell(r['adaptive'])}{flag} | {r['ms_per_frame']:.1f} |"
        )
    notes = [f"- {r['defense']}: {w}" for r in rows for w in r["warnings"]]
    text = "\n".join(lines + ([""] + notes if notes else [])) + "\n"
    (out / "defenses.md").write_text(text)
    return text


def run_patch_defenses(
    model,
    ids: list[int],
    defenses: list[Defense],
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
        write_table(rows, out, "Defenses against a person-hiding patch")  # a crash keeps what was done
    plot_rows(rows, out / "defenses.png")
    return rows, write_table(rows, out, "Defenses against a person-hiding patch")


def plot_rows(rows: list[dict], path: Path) -> Path:
    import numpy as np

    from physadv.report.plots import plt

    keys = (("clean", "#2b8a3e"), ("non_adaptive", "#f08c00"), ("adaptive", "#c92a2a"))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(rows), 3.6), dpi=110)
    x = np.arange(len(rows))
    for k, (key, colour) in enumerate(keys):
        value = np.array([r[key]["rate"] for r in rows]) * 100
        low = np.array([r[key]["ci95"][0] for r in rows]) * 100
        high = np.array([r[key]["ci95"][1] for r in rows]) * 100
        pos = x + (k - 1) * 0.27
        ax.bar(pos, value, 0.27, color=colour, label=key.replace("_", "-"))
        ax.errorbar(pos, value, yerr=[value - low, high - value], fmt="none", ecolor="black", capsize=2, lw=1)
    ax.set_xticks(x, [r["defense"] for r in rows])
    ax.set_ylabel("true-positive rate @0.25 (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
