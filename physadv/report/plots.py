"""Plots for replay reports (matplotlib, written as PNG): a rate against distance or angle bins with
Wilson intervals, and the per-frame timeline."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLOURS = {"clean": "#2b8a3e", "attacked": "#c92a2a", "recording": "#1c7ed6"}


def _colour(condition: str, k: int) -> str:
    return COLOURS.get(condition, plt.cm.tab10(k % 10))


def rate_by_bin(conditions: dict[str, dict], by: str, metric: str, path: Path, title: str) -> Path | None:
    """``metric`` per ``by_<by>`` bin for each condition, with 95 % Wilson intervals; None if no bins."""
    series = {c: m.get(f"by_{by}", {}) for c, m in conditions.items()}
    labels: list[str] = []
    for bins in series.values():
        labels += [b for b in bins if b not in labels and metric in bins[b]]
    if not labels:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    for k, (condition, bins) in enumerate(series.items()):
        rates = [bins.get(b, {}).get(metric) for b in labels]
        value = np.array([r["rate"] if r else np.nan for r in rates]) * 100
        low = np.array([r["ci95"][0] if r else np.nan for r in rates]) * 100
        high = np.array([r["ci95"][1] if r else np.nan for r in rates]) * 100
        pos = x + (k - (len(series) - 1) / 2) * width
        ax.bar(pos, value, width, color=_colour(condition, k), alpha=0.85, label=condition)
        ax.errorbar(pos, value, yerr=[value - low, high - value], fmt="none", ecolor="black", capsize=3, lw=1)
    first = next(iter(series.values()))
    ax.set_xticks(x, [f"{b}\nn={first[b][metric]['n']}" if b in first else b for b in labels])
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncol=len(series))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _timeline_rows(frames_csv: Path, task: str) -> dict[str, tuple[list, list, list]]:
    score_field = "true_class_score" if task == "classify" else "score"
    ok_field = "correct" if task == "classify" else "verdict"
    data: dict[str, tuple[list, list, list]] = {}
    with open(frames_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["object"] in ("", "0") and row[score_field] != "":
                t, s, ok = data.setdefault(row["condition"], ([], [], []))
                t.append(float(row["time_s"]))
                s.append(float(row[score_field]))
                ok.append(row[ok_field] in ("True", "true_positive"))
    return data


def timeline(frames_csv: Path, task: str, path: Path, conf: float, label: str) -> Path | None:
    """Per frame: the judged object's score (detector: its best-overlapping box; classifier: the
    true class's probability) over time, one line per condition; dots mark frames judged wrong."""
    data = _timeline_rows(frames_csv, task)
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 3.2), dpi=110)
    for k, (condition, (t, s, ok)) in enumerate(data.items()):
        t, s, ok = np.array(t), np.array(s), np.array(ok)
        colour = _colour(condition, k)
        ax.plot(t, s, color=colour, lw=1, label=condition)
        ax.scatter(t[~ok], s[~ok], color=colour, s=6, marker="x")
    if task == "detect":
        ax.axhline(conf, color="grey", ls="--", lw=0.8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(label)
    ax.set_title("per frame (× = not correct)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def detection_raster(frames_csv: Path, task: str, path: Path) -> Path | None:
    """Per condition and object (its id), one row of marks over time: filled where it was detected
    (a true positive; a classifier: read right), open where it was missed."""
    rows: dict[tuple[str, str], tuple[list, list]] = {}
    with open(frames_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["object"] == "":
                continue
            ok = row["correct"] == "True" if task == "classify" else row["verdict"] == "true_positive"
            t, hit = rows.setdefault((row["condition"], row["track"] or row["object"]), ([], []))
            t.append(float(row["time_s"]))
            hit.append(ok)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 0.6 + 0.32 * len(rows)), dpi=110)
    conditions = list(dict.fromkeys(c for c, _ in rows))
    for y, ((condition, _), (t, hit)) in enumerate(rows.items()):
        colour = _colour(condition, conditions.index(condition))
        t, hit = np.array(t), np.array(hit)
        ax.scatter(t[hit], np.full(hit.sum(), y), color=colour, s=9, marker="s")
        ax.scatter(t[~hit], np.full((~hit).sum(), y), facecolors="none", edgecolors=colour, s=9, marker="s")
    ax.set_yticks(range(len(rows)), [f"{c} {o}" for c, o in rows], fontsize=7)
    ax.set_xlabel("time (s)")
    ax.set_title("detected (filled) and missed (open), per object", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
