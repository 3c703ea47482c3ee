"""The replay report: a verdict in plain words, the rates per condition, by distance, by angle and
by lab pose, the plots, and links to every file the replay wrote."""

from __future__ import annotations

from pathlib import Path

from physadv.report.document import Document, fmt_rate
from physadv.report.plots import detection_raster, rate_by_bin, timeline
from physadv.report.system_report import add_system_section, summary_sentences


def main_metric(result: dict) -> str:
    """The rate a reader looks at first: the attack's success if it has one, else correctness."""
    if result["task"] == "classify":
        return "targeted_success_rate" if result.get("target") else "accuracy"
    return "targeted_success_rate" if result.get("target") else "true_positive_rate"


def _pct(rate: dict | None) -> str:
    return "—" if not rate or not rate.get("n") else f"{100 * rate['rate']:.1f}%"


def verdict(result: dict) -> str:
    """One paragraph a newcomer can read."""
    conds, what = result["conditions"], result["true_class"]
    task, target = result["task"], result.get("target")
    clean, attacked = conds.get("clean"), conds.get("attacked")
    if task == "classify":
        if clean and attacked:
            if target:
                return (
                    f"With the artefact the '{what}' sign is read as '{target}' in "
                    f"{_pct(attacked.get('targeted_success_rate'))} of frames (without it: "
                    f"{_pct(clean.get('targeted_success_rate'))}); the classifier's accuracy falls from "
                    f"{_pct(clean.get('accuracy'))} to {_pct(attacked.get('accuracy'))}."
                )
            return (
                f"With the artefact the classifier's accuracy on the '{what}' sign falls from "
                f"{_pct(clean.get('accuracy'))} to {_pct(attacked.get('accuracy'))}."
            )
        ((name, only),) = list(conds.items())[:1]
        accuracy = _pct(only.get("accuracy"))
        return f"The classifier reads the '{what}' sign correctly in {accuracy} of {name} frames."
    if clean and attacked:
        c, a = clean.get("true_positive_rate"), attacked.get("true_positive_rate")
        drop = 100 * (c["rate"] - a["rate"]) if c and a and c.get("n") and a.get("n") else float("nan")
        # rates count objects: each '{what}' in each frame with ground truth is judged once
        if c and c.get("n") and c["rate"] < 0.05:
            return (
                f"⚠ Without the artefact the detector finds only {_pct(c)} of the '{what}' objects it is "
                f"shown: there is nothing for the artefact to hide, so the attacked figures ({_pct(a)} "
                "found) say nothing about it. Check --target-class, the ground truth or the tracked box, "
                "and the model."
            )
        return (
            f"With the artefact the detector finds {_pct(a)} of the '{what}' objects it is shown (a true "
            f"positive; each object in each frame counts once), against {_pct(c)} without it: {drop:.1f} "
            f"points fewer. {_pct(attacked.get('hidden_rate'))} of them are hidden outright (no '{what}' "
            "box overlapping them)."
        )
    name, only = next(iter(conds.items()))
    if "true_positive_rate" in only:
        return (
            f"The detector finds {_pct(only['true_positive_rate'])} of the '{what}' objects in the {name}'s "
            f"frames with ground truth (a true positive at confidence ≥ {result['conf']}; each object in "
            f"each frame counts once); "
            f"{only.get('hallucinations_per_frame', 0)} false '{what}' boxes per frame."
        )
    nt = only.get("without_ground_truth", {})
    return (
        f"No ground truth was given: the detector reports a '{what}' in {_pct(nt.get('detection_rate'))} "
        f"of frames (whether those boxes are right is not judged)."
    )


def _summary_rows(conds: dict) -> tuple[list[str], list[list[str]]]:
    fields = []
    for m in conds.values():
        fields += [k for k, v in m.items() if isinstance(v, dict) and "ci95" in v and k not in fields]
    header = ["condition", "frames", *[f.replace("_", " ") for f in fields]]
    rows = []
    for name, m in conds.items():
        extra = []
        if "hallucinations_per_frame" in m:
            ap50 = "—" if m.get("ap50") is None else m["ap50"]
            extra.append(f"halluc./frame {m['hallucinations_per_frame']}, AP50 {ap50}")
        rows.append([name, str(m["frames"]), *[fmt_rate(m.get(f)) for f in fields], *extra])
    if any("hallucinations_per_frame" in m for m in conds.values()):
        header.append("other")
    return header, rows


def _bin_table(conds: dict, by: str, metric: str) -> tuple[list[str], list[list[str]]]:
    keys: list[str] = []
    for m in conds.values():
        keys += [k for k in m.get(f"by_{by}", {}) if k not in keys]
    header = [by if by != "group" else "pose", *conds]
    rows = [
        [k, *[fmt_rate(m.get(f"by_{by}", {}).get(k, {}).get(metric)) for m in conds.values()]] for k in keys
    ]
    return header, rows


def write_report(result: dict, out: Path) -> tuple[Path, Path]:
    """``report.md`` and ``report.html`` in ``out`` (plots in ``out/plots``)."""
    conds, metric = result["conditions"], main_metric(result)
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    doc = Document(f"physadv replay: {Path(result['source']).name} through {result['model']}")
    doc.paragraph(" ".join([verdict(result), *summary_sentences(conds)]))
    if "interrupted" in result:
        doc.paragraph(f"Interrupted: {result['interrupted']}.")
    if result.get("warnings"):  # the run's warnings, as the terminal showed them
        doc.heading("Warnings")
        for line in result["warnings"]:
            doc.paragraph(f"⚠ {line}")
    judged = {name: m for name, m in conds.items() if m.get("frames")}  # frames with ground truth
    if judged:
        doc.heading("Rates (95 % Wilson intervals)")
        doc.table(*_summary_rows(judged))
    if any("by_group" in m for m in conds.values()):
        doc.heading("Lab table (RP2's poses)")
        doc.table(*_bin_table(conds, "group", metric))
    for by, title in (("distance", "By distance"), ("angle", "By viewing angle")):
        if any(f"by_{by}" in m for m in conds.values()):
            doc.heading(f"{title}: {metric.replace('_', ' ')}")
            doc.table(*_bin_table(conds, by, metric))
            doc.image(
                rate_by_bin(conds, by, metric, plots / f"{metric}_by_{by}.png", f"{title.lower()}"),
                f"{metric} by {by}",
            )
    if any("system" in m for m in conds.values()):
        raster = detection_raster(out / "frames.csv", result["task"], plots / "detected_over_time.png")
        add_system_section(doc, conds, raster)
    label = "true-class probability" if result["task"] == "classify" else f"'{result['true_class']}' score"
    doc.heading("Per frame")
    doc.image(
        timeline(out / "frames.csv", result["task"], plots / "timeline.png", result["conf"], label),
        "per-frame timeline",
    )
    doc.heading("How this was measured")
    doc.paragraph(_method(result))
    for name, m in conds.items():
        if "unread_frames" in m:
            u = m["unread_frames"]
            doc.paragraph(
                f"{name}: {u['count']} frames could not be read; the first bad frame is {u['first']} "
                f"({'; '.join(u['reasons'])}). Rates cover the frames that were read."
            )
    files = [
        ("metrics.json", "every rate, by distance, angle and pose"),
        ("frames.csv", "one row per frame and object"),
    ]
    files += [
        (m["annotated_video"], f"{n}: boxes, labels, scores and verdicts drawn")
        for n, m in conds.items()
        if "annotated_video" in m
    ]
    if result.get("annotated_both"):
        files.append((result["annotated_both"], "clean and attacked side by side"))
    for name, what in (
        ("track.jsonl", "the tracked sign: corners, box, confidence and distance per frame"),
        ("review.mp4", "the tracked sign drawn on every frame, to check the track"),
    ):
        if (out / name).is_file():
            files.append((name, what))
    files += [(f"plots/{p.name}", "plot") for p in sorted(plots.glob("*.png"))]
    doc.heading("Files")
    doc.links(files)
    return doc.write(out)


def _method(result: dict) -> str:
    parts = [
        f"Source: {result['source']} ({result['source_kind']}); model: {result['model']} ({result['task']}); "
        f"judged class: '{result['true_class']}'; confidence threshold {result['conf']}."
    ]
    parts.append(f"Ground truth: {result['ground_truth']}.")
    if result.get("distance_estimated"):
        parts.append(result["distance_estimated"])
    if result["task"] == "detect":
        parts.append(
            "True positive: a box of the right class with IoU > 0.5; misclassified: a matching box of "
            "another class; disappeared: neither (Armory's definitions). Hidden: no box of the class "
            "overlaps the object at all (IoU ≥ 0.1)."
        )
    else:
        parts.append(
            "Each object is cropped from the frame (square, the object filling 82 %) and classified, "
            "as RP2 classified its lab photos and drive-by frames."
        )
    parts.append(
        f"{result['frames_replayed']} frames in {result['seconds']:.1f} s on {result['device']} "
        f"({result['frames_per_second']:.1f} frames/s)."
    )
    return " ".join(parts)
