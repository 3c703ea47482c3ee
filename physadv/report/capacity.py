"""The capacity study's outputs (Madry et al. 2018, Fig. 4 for MNIST): accuracy on clean, FGSM and PGD
inputs against the network's width, one panel per training (natural, PGD); JSON, CSV, Markdown and a
PNG."""

from __future__ import annotations

import csv
from pathlib import Path

from physadv.results import write_json

ATTACKS = ("clean", "fgsm", "pgd")
LABELS = {"none": "natural training", "pgd": "PGD training"}
COLOURS = {"clean": "#2b8a3e", "fgsm": "#f08c00", "pgd": "#c92a2a"}


def write_capacity(rows: list[dict], out: Path, title: str, intro: str) -> str:
    """capacity.json, capacity.csv and capacity.md (returned); ``rows`` hold ``width``, ``training``,
    ``parameters``, ``train_seconds`` and a Rate dict per attack."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "capacity.json", rows)
    with (out / "capacity.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["width", "training", "parameters", "train_seconds", *ATTACKS, *(f"{a}_ci95" for a in ATTACKS)]
        )
        for r in rows:
            w.writerow(
                [r["width"], r["training"], r["parameters"], r["train_seconds"]]
                + [r[a]["rate"] for a in ATTACKS]
                + [r[a]["ci95"] for a in ATTACKS]
            )
    lines = [f"# {title}", "", intro, "", "| width | training | parameters | clean | FGSM | PGD | train s |"]
    lines.append("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [
            f"{100 * r[a]['rate']:.1f} % [{100 * r[a]['ci95'][0]:.1f}, {100 * r[a]['ci95'][1]:.1f}]"
            for a in ATTACKS
        ]
        seconds = "—" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        head = f"| {r['width']} | {LABELS[r['training']]} | {r['parameters']:,}"
        lines.append(f"{head} | {' | '.join(cells)} | {seconds} |")
    text = "\n".join(lines) + "\n"
    (out / "capacity.md").write_text(text)
    return text


def plot_capacity(rows: list[dict], path: Path, eps_255: float) -> Path:
    """Two panels (natural, PGD training): accuracy (%) against width, with 95 % Wilson intervals."""
    import numpy as np

    from physadv.report.plots import plt

    trainings = [t for t in LABELS if any(r["training"] == t for r in rows)]
    fig, axes = plt.subplots(1, len(trainings), figsize=(4.2 * len(trainings), 3.4), dpi=110, squeeze=False)
    for ax, training in zip(axes[0], trainings, strict=True):
        mine = sorted((r for r in rows if r["training"] == training), key=lambda r: r["width"])
        widths = np.array([r["width"] for r in mine])
        for attack in ATTACKS:
            value = np.array([r[attack]["rate"] for r in mine]) * 100
            low = np.array([r[attack]["ci95"][0] for r in mine]) * 100
            high = np.array([r[attack]["ci95"][1] for r in mine]) * 100
            label = attack if attack == "clean" else f"{attack.upper()} ε={eps_255:g}/255"
            ax.errorbar(widths, value, yerr=[value - low, high - value], marker="o", capsize=3,
                        color=COLOURS[attack], label=label)  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.set_xlabel("capacity (width scale; 8 = LISA-CNN)")
        ax.set_ylim(0, 102)
        ax.set_title(LABELS[training], fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("top-1 accuracy (%)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
