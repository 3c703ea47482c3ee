"""The defense table: one row per defense with the clean metric, the metric under the artefact made
against the bare model (non-adaptive) and under one re-made through the defense (adaptive), the
cost per frame, and — where a defense defines them — its certified fraction and how often it flags
inputs. Written as JSON, CSV and Markdown, with a bar chart."""

from __future__ import annotations

import csv
from pathlib import Path

from physadv.results import write_json

KEYS = ("clean", "non_adaptive", "adaptive")
DIGITAL_NAMES = {"pgd": "PGD", "cw_l2": "CW-L2"}
MASKING_MARGIN = 0.05  # adaptive metric this much above non-adaptive → warn


def masking_warnings(row: dict) -> list[str]:
    """Athalye et al.'s sign of gradient masking: the adaptive attack doing worse than the other."""
    if row["adaptive"]["rate"] > row["non_adaptive"]["rate"] + MASKING_MARGIN:
        return [
            "the adaptive attack did worse than the non-adaptive one: gradient masking, or too few "
            "--adaptive-steps; trust the lower number"
        ]
    return []


def strongest(row: dict) -> dict:
    """The lower of the two attacked numbers: what the defense is worth against the attacks tried."""
    return min(row["non_adaptive"], row["adaptive"], key=lambda r: r["rate"])


def _cell(rate: dict | None) -> str:
    if rate is None:
        return "—"
    low, high = rate["ci95"]
    return f"{100 * rate['rate']:.1f} % [{100 * low:.1f}, {100 * high:.1f}]"


def _pct(rate: dict | None) -> str:
    return "—" if rate is None else f"{100 * rate['rate']:.1f} %"


def write_table(rows: list[dict], out: Path, title: str, metric: str, intro: str) -> str:
    """defenses.json, defenses.csv and defenses.md (returned)."""
    for r in rows:
        r["strongest"] = strongest(r)
    write_json(out / "defenses.json", rows)
    certified = any(r.get("certified") for r in rows)
    flagged = any(r.get("flagged") for r in rows)
    success = any(r.get("success") for r in rows)
    digital = list(next((r["digital"] for r in rows if r.get("digital")), {}))
    with (out / "defenses.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["defense", *(f"{k}_{metric}" for k in KEYS), *(f"{k}_ci95" for k in KEYS), f"strongest_{metric}"]
            + ["certified", *(f"flagged_{k}" for k in KEYS), "success_non_adaptive", "success_adaptive"]
            + ["ms_per_frame", "warnings"]
            + [f"{a}_{k}" for a in digital for k in KEYS[1:]]
        )
        for r in rows:
            flags = r.get("flagged") or {}
            wins = r.get("success") or {}
            w.writerow(
                [
                    r["defense"],
                    *(r[k]["rate"] for k in KEYS),
                    *(r[k]["ci95"] for k in KEYS),
                    r["strongest"]["rate"],
                ]
                + [(r.get("certified") or {}).get("rate", "")]
                + [flags[k]["rate"] if k in flags else "" for k in KEYS]
                + [wins[k]["rate"] if k in wins else "" for k in KEYS[1:]]
                + [r["ms_per_frame"], "; ".join(r["warnings"])]
                + [r["digital"][a][k]["rate"] for a in digital for k in KEYS[1:]]
            )
    head = ["defense", "clean", "non-adaptive", "adaptive", "strongest attack"]
    head += ["certified"] * certified + ["flagged clean / non-adaptive / adaptive"] * flagged
    head += ["attack success non-adaptive → adaptive"] * success
    head += [f"{DIGITAL_NAMES.get(a, a)} non-adaptive → adaptive" for a in digital] + ["ms/frame"]
    lines = [f"# {title}", "", intro, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["defense"], _cell(r["clean"]), _cell(r["non_adaptive"])]
        cells.append(_cell(r["adaptive"]) + (" ⚠" if r["warnings"] else ""))
        cells.append(_pct(r["strongest"]))
        if certified:
            cells.append(_cell(r.get("certified")))
        if flagged:
            flags = r.get("flagged") or {}
            cells.append(" / ".join(_pct(flags.get(k)) for k in KEYS))
        if success:
            wins = r.get("success") or {}
            cells.append(f"{_pct(wins.get('non_adaptive'))} → {_pct(wins.get('adaptive'))}")
        for a in digital:
            c = r["digital"][a]
            cells.append(f"{_pct(c['non_adaptive'])} → {_pct(c['adaptive'])}")
        cells.append(f"{r['ms_per_frame']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {r['defense']}: {w}" for r in rows for w in r["warnings"]]
    text = "\n".join(lines + ([""] + notes if notes else [])) + "\n"
    (out / "defenses.md").write_text(text)
    return text


def plot_rows(rows: list[dict], path: Path, ylabel: str) -> Path:
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
    ax.set_xticks(x, [r["defense"] for r in rows], rotation=20 if len(rows) > 5 else 0)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
