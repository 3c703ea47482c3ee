"""System-level metrics: what a safety engineer asks of a whole recording, not of single frames.

Signs: the distance at which the sign is first detected, and at which it is *acquired* — detected
and kept detected (at least ``k`` of every ``n`` consecutive frames from there on) — the longest run
of missed frames in seconds, and whether it was acquired in time to stop: at ``speed_kmh`` a car
needs the stopping sight distance ``v·t + v²/(2a)``, AASHTO's Green Book model with a brake reaction
time ``t`` of 2.5 s and a deceleration ``a`` of 3.4 m/s² (AASHTO, *A Policy on Geometric Design of
Highways and Streets*, 2018, §3.2.2). The distance judged is the camera's straight-line distance to
the sign, which slightly over-states the distance along the road.

People: for each person (an object id, from ground truth or from detections linked by ByteTrack),
the share of their frames in which they are detected and the longest time they stay hidden; and the
share of people hidden for longer than ``hidden_s`` at a stretch.

Times come from each frame's timestamp (``Frame.time_s``), never from its index.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from physadv.harness.metrics import Rate


@dataclass
class SystemRules:
    """The rules and defaults of the system-level metrics (see the module docstring)."""

    k: int = 3  # acquired: detected in at least k …
    n: int = 5  # … of every n consecutive frames from then on
    speed_kmh: float | None = None  # the car's speed for "detected in time to stop" (None: not judged)
    reaction_s: float = 2.5  # AASHTO brake reaction time
    deceleration_mps2: float = 3.4  # AASHTO deceleration
    hidden_s: float = 1.0  # a person hidden longer than this at a stretch counts as lost

    def stopping_distance_m(self, speed_kmh: float) -> float:
        """Reaction distance plus braking distance, metres, at ``speed_kmh``."""
        v = speed_kmh / 3.6
        return v * self.reaction_s + v * v / (2 * self.deceleration_mps2)

    def fastest_stop_kmh(self, distance_m: float) -> float:
        """The highest speed (km/h) at which a car still stops within ``distance_m``."""
        t, a = self.reaction_s, self.deceleration_mps2
        return 3.6 * a * (-t + math.sqrt(t * t + 2 * distance_m / a))


def _runs(missed: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs (end exclusive) of runs of True."""
    edges = np.diff(np.concatenate([[0], missed.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def longest_miss_s(times: np.ndarray, detected: np.ndarray) -> float:
    """The longest stretch of missed frames, seconds: from the first missed frame to the next
    frame that is detected (to the end of the last frame, at the median frame interval, for a run
    that lasts to the end)."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    longest = 0.0
    for start, end in _runs(~detected):
        stop = times[end] if end < len(times) else times[-1] + step
        longest = max(longest, float(stop - times[start]))
    return round(longest, 4)


def acquired_at(detected: np.ndarray, k: int, n: int) -> int | None:
    """The first detected frame from which every ``n`` consecutive frames hold at least ``k``
    detected ones to the end (within the last ``n`` frames: at least ``min(k, frames left)``);
    None if there is none."""
    count = len(detected)
    windows = np.convolve(detected.astype(int), np.ones(n, int), "valid") >= k  # window starting at j
    good_after = np.ones(count + 1, bool)  # every full window from j on is good
    for j in range(len(windows) - 1, -1, -1):
        good_after[j] = windows[j] and good_after[j + 1]
    for i in np.flatnonzero(detected):
        if count - i >= n:
            if good_after[i]:
                return int(i)
        elif detected[i:].sum() >= min(k, count - i):
            return int(i)
    return None


def sign_metrics(times, distances, detected, rules: SystemRules) -> dict:
    """System-level numbers for one sign over its frames (times in seconds, distances in metres,
    ``detected`` booleans, all in time order)."""
    times, detected = np.asarray(times, float), np.asarray(detected, bool)
    distances = np.array([np.nan if d is None else d for d in distances], float)
    first = int(np.argmax(detected)) if detected.any() else None
    held = acquired_at(detected, rules.k, rules.n)

    def at(i):
        if i is None:
            return None
        d = distances[i]
        return {
            "time_s": round(float(times[i]), 4),
            "distance_m": None if np.isnan(d) else round(float(d), 3),
        }

    out = {
        "frames": int(len(detected)),
        "detected_share": Rate(int(detected.sum()), int(len(detected))).as_dict(),
        "first_detected": at(first),
        "acquired": at(held),
        "longest_miss_s": longest_miss_s(times, detected),
    }
    distance = out["acquired"]["distance_m"] if out["acquired"] else None
    out["fastest_stop_kmh"] = None if distance is None else round(rules.fastest_stop_kmh(distance), 1)
    if rules.speed_kmh is not None:
        need = rules.stopping_distance_m(rules.speed_kmh)
        out["stopping_distance_m"] = round(need, 2)
        out["in_time_to_stop"] = bool(distance is not None and distance >= need)
    return out


def person_metrics(times, detected) -> dict:
    """Per person: the share of their frames they are detected in and their longest time hidden."""
    times, detected = np.asarray(times, float), np.asarray(detected, bool)
    return {
        "frames": int(len(detected)),
        "detected_share": round(float(detected.mean()), 4),
        "longest_hidden_s": longest_miss_s(times, detected),
    }


class Timelines:
    """Per object (its id; None for the one object of a file without ids), the frames it is judged
    in: time, distance and whether it was detected. Small tuples only, so a long video stays cheap."""

    def __init__(self):
        self.objects: dict = defaultdict(list)
        self.unlinked = False  # several objects in a frame without ids: no per-object timelines

    def add_frame(self, entries: list[tuple[int | None, float, float | None, bool]]) -> None:
        if sum(track is None for track, *_ in entries) > 1:
            self.unlinked = True
        for track, time_s, distance, detected in entries:
            self.objects[track].append((time_s, distance, detected))

    def as_dict(self, kind: str, rules: SystemRules) -> dict | None:
        """``kind`` ``sign`` or ``people``; None when there is nothing to say."""
        if self.unlinked or not self.objects:
            return None
        series = {}
        for track, rows in sorted(self.objects.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
            rows.sort(key=lambda r: r[0])
            times, distances, detected = zip(*rows, strict=True)
            name = "sign" if track is None else str(track)
            if kind == "sign":
                series[name] = sign_metrics(times, distances, detected, rules)
            else:
                series[name] = person_metrics(times, detected)
        out = {"kind": kind, "rules": asdict(rules), "objects": series}
        if kind == "people":
            lost = sum(m["longest_hidden_s"] > rules.hidden_s for m in series.values())
            out["people"] = len(series)
            out["lost_share"] = Rate(lost, len(series)).as_dict()
            out["mean_detected_share"] = round(
                float(np.mean([m["detected_share"] for m in series.values()])), 4
            )
        return out
