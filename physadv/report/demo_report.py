"""The demo's one report: a verdict in plain words, then the sticker, the patch and the defenses
with their pictures, plots and tables, and links to every file the demo made."""

from __future__ import annotations

from pathlib import Path

from physadv.report.document import Document, fmt_rate
from physadv.report.system_report import summary_sentences


def _pct(rate: dict | None) -> str:
    return "—" if not rate or not rate.get("n") else f"{100 * rate['rate']:.0f}%"


def _cond(result: dict, name: str) -> dict:
    return result.get("conditions", {}).get(name, {})


def verdict(r: dict) -> str:
    sticker, lab, drive = r["sticker"], r["lab"], r["driveby"]
    patch = r["patch"]
    patch_metrics = patch["conditions_independent"]["default"]
    side_mm = patch["config"]["size_mm"]
    ped_clean, ped_attacked = _cond(r["pedestrians"], "clean"), _cond(r["pedestrians"], "attacked")
    ped_noise = _cond(r["pedestrians"], "noise_control")
    parts = [
        f"A graffiti sticker covering {100 * sticker['sticker_area_fraction']:.0f}% of a stop sign made the "
        f"embedded sign classifier read it as 'speed limit 45' in "
        f"{_pct(_cond(lab, 'attacked').get('targeted_success_rate'))} of RP2's lab-table shots and "
        f"{_pct(_cond(drive, 'attacked').get('targeted_success_rate'))} of drive-by frames (without it: "
        f"{_pct(_cond(drive, 'clean').get('targeted_success_rate'))}); the classifier read the sign "
        f"correctly in "
        f"{_pct(_cond(drive, 'clean').get('accuracy'))} of clean drive-by frames and "
        f"{_pct(_cond(drive, 'attacked').get('accuracy'))} with the sticker.",
        f"A {side_mm / 10:g} cm patch worn on the torso, printed, cut the embedded YOLO's person "
        f"true-positive rate on held-out photos from "
        f"{_pct(patch_metrics['clean']['true_positive_rate@0.25'])} to "
        f"{_pct(patch_metrics['patched']['true_positive_rate@0.25'])} (a noise patch of the same size: "
        f"{_pct(patch_metrics['noise_control']['true_positive_rate@0.25'])}; pasted by an independent "
        f"compositor, OpenCV, not the one it was optimised through); in the rendered street replay, from "
        f"{_pct(ped_clean.get('true_positive_rate'))} to {_pct(ped_attacked.get('true_positive_rate'))} "
        f"(noise patch: {_pct(ped_noise.get('true_positive_rate'))}).",
    ]
    defended = [row for row in r["defenses"] if row["defense"] != "none"]
    if defended:
        best = min(defended, key=lambda row: -row["adaptive"]["rate"])
        listing = ", ".join(f"{row['defense']} {_pct(row['adaptive'])}" for row in defended)
        parts.append(
            f"Against a patch re-made through each defense (the adaptive attack), the person was still found "
            f"in: {listing}; {best['defense']} helped most."
        )
    stop = summary_sentences(r["driveby"].get("conditions", {}))
    if stop:
        parts.append("Would the car have stopped? " + " ".join(stop))
    parts.append(
        "To print: sticker/sticker_sheet.pdf (each sticker at true size) with sticker/placement_guide.pdf, "
        f"and patch/patch.pdf (one {side_mm:g} × {side_mm:g} mm page)."
    )
    if r.get("quick"):
        parts.append(
            "This was a --quick run: every part ran, with far too few steps for the numbers to mean much."
        )
    return " ".join(parts)


def _sticker_section(doc: Document, out: Path, r: dict) -> None:
    doc.heading("Sticker (RP2) against the sign classifier")
    doc.image(out / "sticker" / "poster.png", "The stop sign with the optimised stickers")
    rows = []
    held = r["sticker"]["conditions"].get("eot_heldout")
    if held:
        rows.append(
            [
                "held-out EOT views",
                fmt_rate(held["clean_success_rate"]),
                fmt_rate(held["targeted_success_rate"]),
                f"{_pct(held['clean_accuracy'])} → {_pct(held['attacked_accuracy'])}",
            ]
        )
    for name, key in (("RP2's lab table", "lab"), ("drive-by", "driveby")):
        clean, attacked = _cond(r[key], "clean"), _cond(r[key], "attacked")
        rows.append(
            [
                name,
                fmt_rate(clean.get("targeted_success_rate")),
                fmt_rate(attacked.get("targeted_success_rate")),
                f"{_pct(clean.get('accuracy'))} → {_pct(attacked.get('accuracy'))}",
            ]
        )
    doc.table(
        ["condition", "read as 'speed limit 45', clean", "with the sticker", "accuracy clean → sticker"], rows
    )
    groups = _cond(r["lab"], "attacked").get("by_group", {})
    doc.table(
        ["lab pose", "read as 'speed limit 45' with the sticker"],
        [[pose, fmt_rate(m.get("targeted_success_rate"))] for pose, m in groups.items()],
    )
    plot = out / "replay_driveby" / "plots" / "targeted_success_rate_by_distance.png"
    doc.image(
        plot if plot.is_file() else None, "Drive-by: read as 'speed limit 45', by distance (95% intervals)"
    )


def _patch_section(doc: Document, out: Path, r: dict) -> None:
    doc.heading("Patch (Thys et al.) against the person detector")
    doc.image(
        out / "patch" / "grid.jpg",
        "Held-out photos: clean (top) and with the patch (bottom); cyan: detections",
    )
    ours, theirs = r["patch"]["conditions"]["default"], r["patch"]["conditions_independent"]["default"]
    doc.paragraph(
        "Held-out photos, judged twice: pasted by an independent compositor (OpenCV resampling, 8-bit print, "
        "OpenCV's JPEG) and by physadv's own, which the patch was optimised through. The figures that count "
        f"are the independent ones; the two agree within {r['patch']['agreement_points']:.1f} points."
    )
    doc.table(
        ["held-out condition", "true-positive rate @0.25 (independent)", "@0.5", "physadv's compositor"],
        [
            [
                name.replace("_", " "),
                fmt_rate(theirs[name]["true_positive_rate@0.25"]) if name in theirs else "—",
                fmt_rate(theirs[name]["true_positive_rate@0.5"]) if name in theirs else "—",
                fmt_rate(m["true_positive_rate@0.25"]),
            ]
            for name, m in ours.items()
        ],
    )
    rows = []
    for name in ("clean", "attacked", "noise_control"):
        m = _cond(r["pedestrians"], name)
        if m:
            rows.append(
                [
                    {"attacked": "patch"}.get(name, name).replace("_", " "),
                    fmt_rate(m.get("true_positive_rate")),
                ]
            )
    doc.table(["rendered street replay", "true-positive rate @0.25"], rows)
    plot = out / "replay_pedestrians" / "plots" / "true_positive_rate_by_distance.png"
    doc.image(
        plot if plot.is_file() else None, "Rendered pedestrians: person found, by distance (95% intervals)"
    )


def _defense_section(doc: Document, out: Path, r: dict) -> None:
    doc.heading("Defenses against the patch")
    doc.paragraph(
        "Each defense is measured three ways: clean (its cost), against the patch made on the bare model "
        "(non-adaptive), and against a patch re-made through it (adaptive: gradients through the defense, "
        "BPDA where it has none). Only the adaptive number says what the defense is worth."
    )
    doc.image(out / "defenses" / "defenses.png", "Person true-positive rate @0.25 with each defense")
    doc.table(
        ["defense", "clean", "non-adaptive patch", "adaptive patch", "ms/frame"],
        [
            [
                row["defense"],
                fmt_rate(row["clean"]),
                fmt_rate(row["non_adaptive"]),
                fmt_rate(row["adaptive"]),
                f"{row['ms_per_frame']:.1f}",
            ]
            for row in r["defenses"]
        ],
    )
    for row in r["defenses"]:
        for warning in row["warnings"]:
            doc.paragraph(f"Warning ({row['defense']}): {warning}")


def _system_section(doc: Document, out: Path, r: dict) -> None:
    """Would the car have stopped (drive-by, clean and with the sticker), and how long were the
    rendered pedestrians lost (clean and with the patch)?"""
    sentences = [
        s for key in ("driveby", "pedestrians") for s in summary_sentences(r[key].get("conditions", {}))
    ]
    if not sentences:
        return
    doc.heading("System level: would the car have stopped, were people lost?")
    for sentence in sentences:
        doc.paragraph(sentence)
    for key, caption in (("replay_driveby", "drive-by"), ("replay_pedestrians", "pedestrians")):
        plot = out / key / "plots" / "detected_over_time.png"
        doc.image(
            plot if plot.is_file() else None, f"{caption}: detected (filled) and missed (open) over time"
        )


def write_demo_report(out: Path, r: dict) -> tuple[Path, Path]:
    doc = Document("physadv demo: printable attacks on the embedded world")
    doc.paragraph(verdict(r))
    _sticker_section(doc, out, r)
    _patch_section(doc, out, r)
    _system_section(doc, out, r)
    _defense_section(doc, out, r)
    doc.heading("Files")
    listed = [
        ("sticker/sticker_sheet.pdf", "the stickers at true size, labelled with where they go"),
        ("sticker/placement_guide.pdf", "full-size guide for placing them on a real sign"),
        ("sticker/poster_letter.pdf", "the whole sign with stickers, tiled at true size"),
        ("sticker/summary.json", "the sticker job's numbers"),
        ("patch/patch.pdf", f"the patch, one page of {r['patch']['config']['size_mm']:g} mm square"),
        ("patch/patch_letter.pdf", "the patch tiled on letter paper with cut marks"),
        ("patch/summary.json", "the patch job's numbers"),
        ("replay_lab/report.html", "the lab-table replay, frame by frame"),
        ("replay_driveby/report.html", "the drive-by replay, by distance"),
        ("replay_pedestrians/report.html", "the pedestrian replay, by distance"),
        ("defenses/defenses.md", "the defense table (also .csv, .json)"),
        ("demo.json", "everything in this report, as numbers"),
    ]
    doc.links([(name, what) for name, what in listed if (out / name).is_file()])
    parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in r.get("timings", {}).items())
    doc.paragraph(f"Made in {r['seconds']:.0f} s on {r['device']} ({parts}).")
    return doc.write(out)
