"""A whole replay job: the conditions to replay (a recording; or a rendered scene clean and, with
an artefact, attacked, from the same draws), ``frames.csv``, ``metrics.json`` and the report."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from physadv.errors import PhysadvError
from physadv.harness.annotate import side_by_side
from physadv.harness.insertion import InsertedSource
from physadv.harness.replay import COLUMNS, Replay, replay_source, serve_source
from physadv.harness.sources import MIN_VISIBLE, SceneSource, open_source
from physadv.models.classes import ClassNames
from physadv.progress import progress_bar
from physadv.report.replay_report import write_report
from physadv.results import Rate, write_json


def default_object_height_m(class_name: str) -> float | None:
    """Physical height of well-known objects, for distances estimated from box height."""
    from physadv.scene.signs import SIGNS

    key = class_name.lower().strip()
    if key == "person":
        return 1.7
    for name in (key, key.removesuffix(" sign")):
        if name in SIGNS:
            return SIGNS[name].height_m
    return None


def lab_pose_of(spec: dict):
    """Frame index → "5 ft 0°" for a lab-table spec (frames are rendered pose by pose)."""
    poses, per = spec["lab"]["poses"], spec["lab"]["draws_per_pose"]
    labels = [f"{p['distance_ft']:g} ft {p['angle_deg']:g}°" for p in poses]
    return lambda index: labels[min(index // per, len(labels) - 1)]


def sign_name(gt_class: str | None) -> str:
    """The embedded sign a ground-truth class names ("stop sign" and "stop" → "stop")."""
    from physadv.scene.signs import SIGNS

    key = (gt_class or "stop").lower().strip()
    for name in (key, key.removesuffix(" sign")):
        if name in SIGNS:
            return name
    return "stop"


def _people_for_patch(replay: Replay, source_path) -> tuple[dict, str]:
    """Where the patch goes on a recording: the ground truth's people, or the model's own clean
    detections linked over time (which then also become the ground truth both conditions are judged on)."""
    from physadv.harness.people import link_people

    truth = replay.truth.file
    if truth and any(ClassNames.same(o.class_name or "", "person") for objs in truth.values() for o in objs):
        return truth, "people from the ground truth"
    person = replay.model.names.first_of("person")
    if person is None or replay.goal.task != "detect":
        raise PhysadvError(
            "--patch on a recording without people in --gt needs a detector with a 'person' class"
        )
    source = open_source(source_path, fps=replay.fps)
    with progress_bar("linking people (ByteTrack)", source.expected) as advance:
        linked = link_people(source.frames(), replay.model, person, source.fps, replay.batch, advance)
    replay.truth.file = linked
    replay.truth.people_linked = True
    return linked, "the model's own clean detections linked over time by ByteTrack"


def _conditions(replay: Replay, source_path, sticker, patch, seed, controls=None) -> tuple[list, str | None]:
    """The conditions to replay, and (recordings with a patch) where the people came from.
    ``controls`` (scenes only): more patches worn as conditions of their own."""
    first = open_source(source_path, sticker, patch, seed, replay.fps)
    if isinstance(first, SceneSource):
        if sticker is None and patch is None:
            return [("clean", first)], None
        more = [(name, open_source(source_path, None, art, seed)) for name, art in (controls or {}).items()]
        return [("clean", open_source(source_path, seed=seed)), ("attacked", first), *more], None
    if sticker is None and patch is None:
        return [("recording", first)], None
    truth = replay.truth.file
    if sticker is not None and not (truth and any(o.corners for objs in truth.values() for o in objs)):
        raise PhysadvError(
            "--artefact on a recording needs the sign's corners in each frame: give --track (the sign marked "
            "in one frame) or --gt with corners (as `physadv track` writes them)"
        )
    people, placed = _people_for_patch(replay, source_path) if patch is not None else (None, None)
    attacked = InsertedSource(
        open_source(source_path, fps=replay.fps),
        truth,
        sticker,
        sign_name(replay.goal.gt_class),
        patch,
        people,
    )
    return [("clean", first), ("attacked", attacked)], placed


def _ground_truth_note(replay: Replay, source, gt_file: Path | None) -> str:
    if isinstance(source, SceneSource):
        return (
            f"rendered with the scene (exact boxes of what is seen; objects less than {MIN_VISIBLE:.0%} "
            "visible are neither required nor counted as hallucinations)"
        )
    if gt_file is not None:
        return f"from {gt_file} (frames it omits are replayed and drawn but not judged)"
    if replay.truth.tracked is not None:
        t = replay.truth.tracked
        return (
            f"the sign marked in frame(s) {', '.join(map(str, t['key_frames']))} followed as a plane through "
            "the video (a homography per frame: optical flow, RANSAC, ECC; independent of the model), "
            f"written to track.jsonl with a review video; {t['frames_lost']} frames where the tracker lost "
            "the sign are replayed but not judged"
        )
    if replay.truth.people_linked:
        return (
            "none given: the people are the model's own detections on the clean recording, linked over time "
            "by ByteTrack (so the clean condition finds them by construction; the attacked one is judged "
            "against them)"
        )
    return "none given: detections are reported, not judged"


def _alarms(replay: Replay) -> list | None:
    """The alarms a patch-detecting defense raised on the condition just replayed (None without such
    a defense); under torchrun every rank's, on rank 0 (each rank's model saw only its batches)."""
    alarms = getattr(replay.model, "alarms", None)
    if alarms is None:
        return None
    every = replay.ranks.gather(alarms.take())
    return None if every is None else [flag for flags in every for flag in flags]


def for_inference(replay: Replay) -> Replay:
    """``replay`` with its detectors' BatchNorms folded into their convolutions (as Ultralytics'
    ``predict``; :mod:`physadv.models.fused`): the same detections, a faster forward."""
    from physadv.models.fused import fused_for_inference

    return dataclasses.replace(
        replay,
        model=fused_for_inference(replay.model),
        crop_detector=fused_for_inference(replay.crop_detector),
    )


def run_warnings(result: dict) -> list[str]:
    """Every warning of a replay, one line each, for ``metrics.json``, the report and the terminal:
    what was dropped from the ground truth and, per condition, what its source warned of (unread
    frames, an untrusted frame rate). A warning several conditions share (clean and attacked read the
    same recording) is given once, naming them all."""
    out, by_text = [], {}
    gt = result.get("ground_truth_read", {}).get("boxes", {}).get("summary")
    if gt:
        out.append(gt)
    for name, m in result["conditions"].items():
        gt = m.get("ground_truth_read", {}).get("boxes", {}).get("summary")
        for text in ([gt] if gt else []) + m.get("warnings", []):
            by_text.setdefault(text, []).append(name)
    out += [f"{', '.join(names)}: {text}" for text, names in by_text.items()]
    return out


def result_header(replay: Replay, source: str, kind: str, model_name: str, ground_truth: str) -> dict:
    """What ``metrics.json`` says before its conditions: the source, the model, what is judged and how."""
    names = replay.model.names
    return {
        "source": source,
        "source_kind": kind,
        "model": model_name,
        "task": replay.goal.task,
        "true_class": names[replay.goal.true_class],
        "target": None if replay.goal.target is None else names[replay.goal.target],
        "conf": replay.goal.conf,
        "ground_truth": ground_truth,
        **({"ground_truth_read": replay.truth.notes} if replay.truth.notes else {}),
        "bins": {
            "distance": list(replay.bins.distance),
            "unit": replay.bins.unit,
            "angle_deg": list(replay.bins.angle),
        },
        "device": str(getattr(replay.model, "device", "cpu")),
        "conditions": {},
    }


def run_replay_job(
    replay: Replay,
    source_path: str,
    out: Path,
    model_name: str,
    sticker=None,
    patch=None,
    seed: int | None = None,
    gt_file: Path | None = None,
    annotate: bool = True,
    controls: dict | None = None,
) -> dict | None:
    """Replay every condition, write ``frames.csv``, ``metrics.json``, ``report.md``/``.html`` in
    ``out`` and return the result. ``controls``: more patches to wear in a scene, by condition name
    (e.g. a noise patch of the same size: ``{"noise_control": artefact}``). Raises when no frame at
    all could be read; on Ctrl-C, writes the files for the frames judged so far, then raises
    ``KeyboardInterrupt``. Under torchrun the ranks share the batches and rank 0 alone writes and
    returns the result (None elsewhere)."""
    replay = for_inference(replay)
    conditions, placed = _conditions(replay, source_path, sticker, patch, seed, controls)
    if not replay.ranks.main:
        for condition, source in conditions:
            serve_source(replay, source, condition)
            _alarms(replay)  # sent to rank 0
        return None
    out.mkdir(parents=True, exist_ok=True)
    group = (
        lab_pose_of(conditions[0][1].spec)
        if isinstance(conditions[0][1], SceneSource) and conditions[0][1].spec["kind"] == "lab"
        else None
    )
    result = result_header(
        replay, str(source_path), conditions[0][1].kind, model_name,
        _ground_truth_note(replay, conditions[0][1], gt_file),
    )  # fmt: skip
    started = time.perf_counter()
    with open(out / "frames.csv", "w", newline="") as csv_file:
        csv_file.write(",".join(COLUMNS) + "\n")
        for condition, source in conditions:
            with progress_bar(f"replaying {condition}", source.expected) as advance:
                metrics = replay_source(replay, source, condition, out, csv_file, advance, annotate, group)
            flags = _alarms(replay)  # a defense that detects patches (--defense)
            if flags is not None:
                metrics["flagged"] = Rate(sum(flags), len(flags)).as_dict()
            result["conditions"][condition] = metrics
            if isinstance(source, InsertedSource):
                metrics["insertion"] = {**source.summary(), **({"people": placed} if placed else {})}
            if metrics.get("interrupted"):
                result["interrupted"] = (
                    f"stopped by the user during '{condition}'; rates cover the frames judged"
                )
                break
    seconds = time.perf_counter() - started
    if annotate and isinstance(conditions[-1][1], InsertedSource):
        both = side_by_side(
            out / "annotated_clean.mp4", out / "annotated.mp4", out / "annotated_both.mp4",
            conditions[0][1].fps, ("clean", "attacked"),
        )  # fmt: skip
        if both is not None:
            result["annotated_both"] = both.name
    replayed = sum(m["frames_replayed"] for m in result["conditions"].values())
    result.update(
        seconds=round(seconds, 2), frames_replayed=replayed, frames_per_second=round(replayed / seconds, 2)
    )
    if replay.truth.estimated:
        result["distance_estimated"] = (
            "Distances are estimated from box height, assuming the object is "
            f"{replay.truth.object_height_m} m tall and a horizontal field of view of "
            f"{replay.truth.hfov_deg}° (pinhole camera; no tilt correction)."
        )
    result["warnings"] = run_warnings(result)
    write_json(out / "metrics.json", result)
    if replayed == 0:
        first = next(iter(result["conditions"].values())).get("unread_frames", {})
        raise PhysadvError(
            f"no frame of '{source_path}' could be read ({'; '.join(first.get('reasons', []))})"
        )
    write_report(result, out)
    if "interrupted" in result:
        raise KeyboardInterrupt
    return result


def lab_rows(result: dict, metric: str) -> list[str]:
    """RP2's table as text lines: one per pose, each condition's ``metric``."""
    conds = result["conditions"]
    poses = next(iter(conds.values())).get("by_group", {})
    lines = [f"{'pose':>12}  " + "  ".join(f"{c:>28}" for c in conds)]
    for pose in poses:
        cells = []
        for m in conds.values():
            r = m.get("by_group", {}).get(pose, {}).get(metric)
            cells.append(f"{100 * r['rate']:5.1f}% ({r['k']}/{r['n']})".rjust(28) if r else " " * 28)
        lines.append(f"{pose:>12}  " + "  ".join(cells))
    return lines
