"""System-level results in words, tables and a plot: would the car have stopped for the sign, and
how long were people lost? (See :mod:`physadv.harness.system` for the definitions.)"""

from __future__ import annotations

from pathlib import Path

from physadv.report.document import Document, fmt_rate


def _where(point: dict | None) -> str:
    if point is None:
        return "never"
    if point["distance_m"] is None:
        return f"at {point['time_s']:.2f} s"
    return f"at {point['distance_m']:.1f} m ({point['time_s']:.2f} s)"


def sign_sentence(condition: str, system: dict) -> str:
    """One sentence per sign: acquired where, longest miss, in time to stop."""
    rules = system["rules"]
    parts = []
    for name, m in system["objects"].items():
        what = "the sign" if name in ("sign", "0") else f"sign {name}"
        text = (
            f"{condition}: {what} is first detected {_where(m['first_detected'])} and acquired (detected "
            f"in {rules['k']} of every {rules['n']} frames from then on) {_where(m['acquired'])}; the "
            f"longest run of missed frames lasts {m['longest_miss_s']:.2f} s."
        )
        if "in_time_to_stop" in m:
            verdict = "in time to stop" if m["in_time_to_stop"] else "NOT in time to stop"
            text += (
                f" At {rules['speed_kmh']:g} km/h a car needs {m['stopping_distance_m']:.1f} m to stop "
                f"({rules['reaction_s']:g} s reaction, {rules['deceleration_mps2']:g} m/s² braking): "
                f"{verdict}."
            )
        if m.get("fastest_stop_kmh") is not None:
            text += f" It would still have stopped from up to {m['fastest_stop_kmh']:.0f} km/h."
        parts.append(text)
    return " ".join(parts)


def people_sentence(condition: str, system: dict) -> str:
    lost = system["lost_share"]
    return (
        f"{condition}: of {system['people']} people, {lost['k']} were hidden for more than "
        f"{system['rules']['hidden_s']:g} s at a stretch ({fmt_rate(lost)}); on average a person was "
        f"detected in {100 * system['mean_detected_share']:.0f}% of their frames."
    )


def summary_sentences(conditions: dict) -> list[str]:
    """Plain words for every condition that has system-level metrics."""
    out = []
    for name, m in conditions.items():
        system = m.get("system")
        if system:
            out.append((sign_sentence if system["kind"] == "sign" else people_sentence)(name, system))
    return out


def _sign_rows(conditions: dict) -> list[list[str]]:
    rows = []
    for cond, m in conditions.items():
        for name, s in m["system"]["objects"].items():
            rows.append(
                [
                    cond,
                    name,
                    fmt_rate(s["detected_share"]),
                    _where(s["first_detected"]),
                    _where(s["acquired"]),
                    f"{s['longest_miss_s']:.2f} s",
                    {True: "yes", False: "no"}.get(s.get("in_time_to_stop"), "—"),
                    "—" if s["fastest_stop_kmh"] is None else f"{s['fastest_stop_kmh']:.0f} km/h",
                ]
            )
    return rows


def _people_rows(conditions: dict) -> list[list[str]]:
    rows = []
    for cond, m in conditions.items():
        for name, p in m["system"]["objects"].items():
            rows.append(
                [
                    cond,
                    name,
                    str(p["frames"]),
                    f"{100 * p['detected_share']:.0f}%",
                    f"{p['longest_hidden_s']:.2f} s",
                ]
            )
    return rows


def add_system_section(doc: Document, conditions: dict, plot: Path | None) -> None:
    """The section for a replay report (nothing if no condition has system-level metrics)."""
    with_system = {n: m for n, m in conditions.items() if m.get("system")}
    if not with_system:
        return
    kind = next(iter(with_system.values()))["system"]["kind"]
    doc.heading("Would the car have stopped?" if kind == "sign" else "How long were people lost?")
    for sentence in summary_sentences(with_system):
        doc.paragraph(sentence)
    if kind == "sign":
        doc.table(
            ["condition", "sign", "detected", "first detected", "acquired", "longest miss", "in time to stop",
             "fastest it stops from"],
            _sign_rows(with_system),
        )  # fmt: skip
    else:
        doc.table(["condition", "person", "frames", "detected", "longest hidden"], _people_rows(with_system))
    rules = next(iter(with_system.values()))["system"]["rules"]
    if kind != "sign":
        doc.paragraph(
            f"Hidden: a person's longest run of frames without a detection, in seconds; lost when that run "
            f"lasts more than {rules['hidden_s']:g} s. A person never detected counts as hidden for all "
            "their frames. Times come from the frames' timestamps."
        )
        doc.image(plot, "per object over time: detected (filled) and missed (open)")
        return
    doc.paragraph(
        f"Acquired: detected in at least {rules['k']} of every {rules['n']} consecutive frames from then on. "
        f"Stopping distance: AASHTO's stopping sight distance, {rules['reaction_s']:g} s brake reaction plus "
        f"braking at {rules['deceleration_mps2']:g} m/s²; the distance judged is the camera's straight-line "
        "distance to the sign. Times come from the frames' timestamps."
    )
    doc.image(plot, "per object over time: detected (filled) and missed (open)")
