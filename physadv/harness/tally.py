"""Streaming tallies of replay rows: overall, by distance bin, by angle bin and by named group
(RP2's lab poses), each rate with a Wilson interval. Memory stays flat however many frames: only
counts are kept (AP from a 1000-bin score histogram, exact to 0.001 in score).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from physadv.harness.metrics import Rate
from physadv.scene.spec import FT

AP_BINS = 1000


@dataclass
class Bins:
    """Bin edges (``distance`` in ``unit``, ``angle`` in degrees) and their labels."""

    distance: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0)
    unit: str = "ft"
    angle: tuple[float, ...] = (15.0, 30.0, 45.0)

    def distance_label(self, distance_m: float | None) -> str | None:
        if distance_m is None:
            return None
        value = distance_m / FT if self.unit == "ft" else distance_m
        return _label(value, self.distance, f" {self.unit}")

    def angle_label(self, angle_deg: float | None) -> str | None:
        return None if angle_deg is None else _label(abs(angle_deg), self.angle, "°")

    def distance_order(self) -> list[str]:
        return _labels(self.distance, f" {self.unit}")

    def angle_order(self) -> list[str]:
        return _labels(self.angle, "°")


def _labels(edges, unit: str) -> list[str]:
    out = [f"<{edges[0]:g}{unit}"]
    out += [f"{a:g}–{b:g}{unit}" for a, b in zip(edges, edges[1:], strict=False)]
    return out + [f"≥{edges[-1]:g}{unit}"]


def _label(value: float, edges, unit: str) -> str:
    return _labels(edges, unit)[int(np.searchsorted(np.asarray(edges), value, side="right"))]


RATE_FIELDS = {
    "detect": {
        "true_positive_rate": lambda r: r["verdict"] == "true_positive",
        "misclassification_rate": lambda r: r["verdict"] == "misclassified",
        "disappearance_rate": lambda r: r["verdict"] == "disappeared",
        "hidden_rate": lambda r: r["hidden"],
    },
    "detect_no_truth": {"detection_rate": lambda r: r["detected"]},
    "classify": {
        "accuracy": lambda r: r["correct"],
        "untargeted_success_rate": lambda r: r["untargeted_success"],
    },
}


class Tally:
    """Counts for one condition (clean, attacked, a recording)."""

    def __init__(self, kind: str, bins: Bins, targeted: bool):
        self.kind, self.bins = kind, bins
        self.fields = dict(RATE_FIELDS[kind])
        if targeted:
            self.fields["targeted_success_rate"] = lambda r: r.get("targeted_success", False)
        self.groups: dict[str, dict[str, dict[str, list[int]]]] = defaultdict(lambda: defaultdict(dict))
        self.frames = 0
        self.hallucinations = 0
        self.positives = 0
        self.ap_hist = np.zeros((2, AP_BINS + 1), dtype=np.int64)  # [false, true] positives by score bin

    def add_frame(
        self, rows: list[dict], hallucinations: int = 0, ap_scores=(), positives: int = 0, group=None
    ):
        self.frames += 1
        self.hallucinations += hallucinations
        self.positives += positives
        for score, hit in ap_scores:
            self.ap_hist[int(hit), min(AP_BINS, int(score * AP_BINS))] += 1
        for row in rows:
            keys = [("all", "all")]
            if (d := self.bins.distance_label(row.get("distance_m"))) is not None:
                keys.append(("distance", d))
            if (a := self.bins.angle_label(row.get("angle_deg"))) is not None:
                keys.append(("angle", a))
            if group is not None:
                keys.append(("group", group))
            for by, key in keys:
                counts = self.groups[by][key]
                for name, test in self.fields.items():
                    k, n = counts.get(name, (0, 0))
                    counts[name] = (k + int(bool(test(row))), n + 1)

    def counts(self) -> dict:
        """The plain counts, picklable (to send between ranks) and addable (:meth:`add`)."""
        groups = {by: {key: dict(c) for key, c in g.items()} for by, g in self.groups.items()}
        return {
            "frames": self.frames,
            "hallucinations": self.hallucinations,
            "positives": self.positives,
            "ap_hist": self.ap_hist.copy(),
            "groups": groups,
        }

    def add(self, counts: dict) -> None:
        """Add another tally's :meth:`counts` (recordings replayed apart, one table over all)."""
        self.frames += counts["frames"]
        self.hallucinations += counts["hallucinations"]
        self.positives += counts["positives"]
        self.ap_hist += counts["ap_hist"]
        for by, g in counts["groups"].items():
            for key, c in g.items():
                mine = self.groups[by][key]
                for name, (k, n) in c.items():
                    k0, n0 = mine.get(name, (0, 0))
                    mine[name] = (k0 + k, n0 + n)

    def ap50(self) -> float | None:
        """AP@0.5, all-point interpolated, from the score histogram (None without ground truth)."""
        if self.positives == 0:
            return None
        fp, tp = (np.cumsum(h[::-1]) for h in self.ap_hist)  # descending score
        recall = tp / self.positives
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        recall = np.concatenate([[0.0], recall])
        return float(np.sum((recall[1:] - recall[:-1]) * precision))

    def _rates(self, counts: dict) -> dict:
        return {name: Rate(*counts[name]).as_dict() for name in self.fields if name in counts}

    def as_dict(self) -> dict:
        out = {"frames": self.frames, **self._rates(self.groups["all"].get("all", {}))}
        if self.kind == "detect":
            out["hallucinations_per_frame"] = (
                round(self.hallucinations / self.frames, 4) if self.frames else None
            )
            out["ap50"] = None if (ap := self.ap50()) is None else round(ap, 4)
        order = {"distance": self.bins.distance_order(), "angle": self.bins.angle_order()}
        for by in ("distance", "angle", "group"):
            if by in self.groups:
                keys = [k for k in order.get(by, self.groups[by]) if k in self.groups[by]]
                out[f"by_{by}"] = {k: self._rates(self.groups[by][k]) for k in keys}
        return out
