"""``physadv eval``: replay a video, a folder of frames or a scene through a model, and report per
frame and per distance/angle."""

from __future__ import annotations

from pathlib import Path

import typer

from physadv.cli.options import end2end_option, fps_option
from physadv.errors import Interrupted, PhysadvError
from physadv.scene.assumptions import PERSON_HEIGHT_M


def _numbers(text: str, what: str, count: int | None = None) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise PhysadvError(f"{what} must be comma-separated numbers, got '{text}'") from None
    if count is not None and len(values) != count:
        raise PhysadvError(f"{what} needs {count} numbers, got {len(values)} ('{text}')")
    if count is None and (not values or list(values) != sorted(set(values))):
        raise PhysadvError(f"{what} must be increasing numbers, got '{text}'")
    return values


def _judged_class(model, name: str | None, source: Path) -> int:
    if name is not None:
        return model.names.id(name)
    from physadv.scene.spec import load_spec

    # a scene spec says what it shows (its kind), whatever its file is called
    is_spec = source.suffix.lower() in (".yaml", ".yml") and source.is_file()
    guesses = ["person"] if is_spec and load_spec(source)["kind"] == "pedestrians" else []
    found = model.names.first_of(*guesses, "stop sign", "stop")
    if found is None:
        raise PhysadvError(
            "name the class to judge with --target-class (the model has no 'stop sign' or 'stop')"
        )
    return found


def _crop_class(detector, name: str) -> int:
    """The detector's class for the classifier's object ("stop" → "stop sign")."""
    for class_id, other in detector.names:
        if detector.names.same(other, name):
            return class_id
    return detector.names.id(name)  # raises, naming the nearest classes


def _gt_class(source: Path, judged: str, given: str | None) -> str:
    """Which ground-truth objects are the judged ones: the judged class unless told otherwise; a
    scene names its sign by the face ("stop")."""
    if given is not None:
        return given
    if source.suffix.lower() in (".yaml", ".yml") and judged != "person":
        from physadv.scene.spec import load_spec

        return load_spec(source)["sign"]["class"]
    return judged


def _defended(victim, spec: str, seed: int | None):
    """``victim`` behind the one defense ``spec`` names (the catalogue of ``physadv defend``)."""
    from physadv.defenses.catalogue import parse_defenses, wrap

    chosen = parse_defenses(spec, victim.kind)
    if len(chosen) != 1:
        raise PhysadvError(f"--defense takes one defense, got {len(chosen)} ('{spec}')")
    return wrap(chosen[0], victim, seed or 0)


def _system_rules(
    acquire: str, speed_kmh, reaction_s: float, deceleration: float, hidden_s: float, source: Path
):
    from physadv.harness.system import SystemRules

    k, _, n = acquire.partition("/")
    if not (k.isdigit() and n.isdigit() and 0 < int(k) <= int(n)):
        raise PhysadvError(f"--acquire must be K/N with 0 < K <= N, got '{acquire}'")
    if min(reaction_s, hidden_s) < 0 or deceleration <= 0 or (speed_kmh is not None and speed_kmh <= 0):
        raise PhysadvError("--speed-kmh and --deceleration must be positive, --reaction-s and --hidden-s ≥ 0")
    if speed_kmh is None and source.suffix.lower() in (".yaml", ".yml"):
        from physadv.scene.spec import load_spec

        spec = load_spec(source)
        speed_kmh = spec["driveby"]["speed_kmh"] if spec["kind"] == "driveby" else None
    return SystemRules(int(k), int(n), speed_kmh, reaction_s, deceleration, hidden_s)


def _track(source: Path, marks: list[str], sign: str, hfov_deg: float, out: Path, video: bool, fps=None):
    """The sign followed through the recording (``physadv track``), written into ``out``."""
    from physadv.harness.sign_track import SignSpec, parse_mark
    from physadv.jobs.track import run_track_job
    from physadv.scene.signs import SIGNS

    keys = dict(parse_mark(m) for m in marks)
    if len(keys) != len(marks):
        raise PhysadvError("two --track marks for the same frame: give one per frame")
    if not any(name in SIGNS for name in (sign.lower(), sign.lower().removesuffix(" sign"))):
        raise PhysadvError(
            f"--track follows a sign physadv knows ({', '.join(sorted(SIGNS)[:4])}, …), not '{sign}': give "
            "--gt, or track another sign with `physadv track --size-mm` and pass its track.jsonl as --gt"
        )
    try:
        return run_track_job(source, keys, SignSpec.of(sign, hfov_deg), out, video, fps)
    except KeyboardInterrupt as exc:  # stopped while tracking: nothing was judged yet
        raise Interrupted(
            "what the line above names; nothing was judged yet (run it again, or pass a written "
            "track.jsonl as --gt)"
        ) from exc


def eval_command(
    source: Path = typer.Argument(
        None, help="A video (mp4, avi, mov, mkv), a folder of frames, or a scene spec (.yaml)."
    ),
    sources: Path = typer.Option(
        None,
        help="Instead of SOURCE: a text file listing recordings, one a line, each optionally followed by its "
        "ground truth; replayed into one report, a condition per recording (docs/replay.md).",
    ),
    out: Path = typer.Option(
        ..., help="Output folder: metrics.json, frames.csv, annotated.mp4, plots/, report.md/html."
    ),
    model: str = typer.Option("default", help="A detector or classifier file, a model yaml, or 'default'."),
    task: str = typer.Option("detect", help="detect (YOLO) or classify (crops of the object, as RP2)."),
    target_class: str = typer.Option(
        None, help="The class that should be seen (default: 'stop sign', or 'person' for pedestrian scenes)."
    ),
    target: str = typer.Option(None, help="What an attack wants the object read as (targeted success)."),
    gt: Path = typer.Option(
        None,
        help="Ground truth for a recording: JSON lines or CSV of per-frame boxes, or a folder of YOLO "
        "label files (one .txt per frame; docs/inputs.md).",
    ),
    gt_class: str = typer.Option(
        None,
        help="The judged objects' class as the ground truth names it (default: its classes map to the "
        "model's by name: 'pedestrian' → person, 'stop' → stop sign).",
    ),
    class_map: str = typer.Option(
        None,
        help="Ground-truth classes → model classes, 'ped=person,car=ignore' or a YAML/JSON file.",
    ),
    track: list[str] = typer.Option(
        None,
        help="Instead of --gt: the sign in the first frame, 'x1,y1,x2,y2' or eight corner numbers (TL, TR, "
        "BR, BL), followed as a plane through the video (as `physadv track`); 'FRAME:…' and more --track "
        "for key frames.",
    ),
    artefact: Path = typer.Option(
        None,
        help="A sticker image spanning the sign face (RGBA), replayed clean and attacked: rendered into a "
        "scene, or put into a recording on the sign's corners (--track or --gt with corners), relit to each "
        "frame.",
    ),
    patch: Path = typer.Option(
        None,
        help="A patch image worn by every person: rendered into a scene, or put into a recording on the "
        "people of --gt or on the model's own clean detections linked by ByteTrack.",
    ),
    patch_mm: float = typer.Option(
        400.0, help="The patch's longer printed side, millimetres (the other follows its aspect ratio)."
    ),
    conf: float = typer.Option(0.25, min=0.0, max=1.0, help="Detector confidence threshold."),
    bins: str = typer.Option("5,10,20,40", help="Distance bin edges."),
    unit: str = typer.Option("ft", help="Unit of the distance bins: ft or m."),
    angle_bins: str = typer.Option("15,30,45", help="Viewing-angle bin edges, degrees."),
    object_height_m: float = typer.Option(
        None,
        help="Object height for distances estimated from box height (default: known signs, person 1.7 m).",
    ),
    hfov_deg: float = typer.Option(60.0, help="Camera's horizontal field of view, for estimated distances."),
    defense: str = typer.Option(
        None,
        help="One defense in front of the model, as in 'physadv defend --defenses' (jpeg:75, lgs, "
        "objectseeker:3, jedi, sac, adyolo, …); defenses that detect patches also count their alarms.",
    ),
    crop_model: str = typer.Option(
        None, help="classify without ground truth: a detector that finds the object to crop."
    ),
    batch: int = typer.Option(0, min=0, help="Frames per batch (0: 8 on CPU, 32 on CUDA)."),
    seed: int = typer.Option(None, help="Scene specs: override the spec's seed."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    amp: bool = typer.Option(True, help="Mixed precision on CUDA."),
    speed_kmh: float = typer.Option(
        None, help="The car's speed for 'detected in time to stop' (default: a drive-by scene's own speed)."
    ),
    acquire: str = typer.Option("3/5", help="K/N: a sign is acquired once detected in K of every N frames."),
    reaction_s: float = typer.Option(2.5, help="Brake reaction time, seconds (AASHTO)."),
    deceleration: float = typer.Option(3.4, help="Braking deceleration, m/s² (AASHTO)."),
    hidden_s: float = typer.Option(1.0, help="A person hidden longer than this, seconds, counts as lost."),
    person_height_m: float = typer.Option(
        PERSON_HEIGHT_M, help="Recordings with --patch: assumed height of a person, metres (as 'patch')."
    ),
    end2end: bool = end2end_option(),
    video: bool = typer.Option(True, help="Write the annotated video(s)."),
    fps: float = fps_option(),
) -> None:
    """Replay SOURCE through a model: per-frame verdicts, rates by distance and angle with Wilson
    intervals, an annotated video and a report. A scene spec with --artefact/--patch is replayed
    clean and attacked from the same draws (scenes/lab_rp2.yaml gives RP2's lab table). Under
    `torchrun --nproc-per-node N -m physadv eval …` the ranks share the frames (or the --sources)."""
    from physadv import distributed
    from physadv.harness.frame_judge import ReplayGoal
    from physadv.harness.replay import Replay, Truth
    from physadv.harness.tally import Bins
    from physadv.jobs.ground_truth import load_file_truth
    from physadv.jobs.replay import default_object_height_m, run_replay_job
    from physadv.models import load_model
    from physadv.printing.export import load_sized_artefact

    if task not in ("detect", "classify"):
        raise PhysadvError(f"unknown task '{task}': use detect or classify")
    if unit not in ("ft", "m"):
        raise PhysadvError(f"unknown unit '{unit}': use ft or m")
    if gt is not None and track:
        raise PhysadvError("give either --gt or --track, not both")
    listed = _listed_sources(source, sources, gt, track, artefact, patch)
    source = listed[0].path if listed else source
    if not source.exists():
        raise PhysadvError(
            f"source '{source}' does not exist (a video file, a folder of frames or a scene spec)"
        )
    _check_fps(fps, source, listed)
    truth = Truth(hfov_deg=hfov_deg)
    rules = _system_rules(acquire, speed_kmh, reaction_s, deceleration, hidden_s, source)
    victim = load_model(model, task=task, device=device, amp=amp, end2end=end2end)
    if victim.kind != ("detector" if task == "detect" else "classifier"):
        raise PhysadvError(
            f"--task {task} needs a {'detector' if task == 'detect' else 'classifier'}; "
            f"'{model}' is a {victim.kind}"
        )
    if defense:
        victim = _defended(victim, defense, seed)
    judged = _judged_class(victim, target_class, source)
    judged_name = victim.names[judged]
    if gt is not None:
        truth.file, truth.notes = load_file_truth(gt, source, victim, judged_name, gt_class, class_map)
    goal = ReplayGoal(
        task,
        judged,
        judged_name if gt is not None or listed else _gt_class(source, judged_name, gt_class),
        victim.names.id(target) if target else None,
        conf,
    )
    truth.object_height_m = object_height_m or default_object_height_m(goal.gt_class or judged_name)
    ranks = distributed.start(victim.device)  # under torchrun: the ranks share the frames or recordings
    try:
        if track:  # rank 0 tracks (and writes track.jsonl); every rank judges against its result
            truth.file, truth.tracked = ranks.broadcast(
                _track(source, track, goal.gt_class or judged_name, hfov_deg, out, video, fps)
                if ranks.main
                else None
            )
        sticker_art = patch_art = None
        if artefact is not None:
            from physadv.scene.signs import SIGNS

            sign = SIGNS.get(goal.gt_class or "stop", SIGNS["stop"])
            sticker_art, size = load_sized_artefact(artefact, f"{sign.width_mm}x{sign.height_mm}")
            _say(ranks, f"artefact spans the sign's face: {size.note}")
        if patch is not None:
            patch_art, size = load_sized_artefact(patch, patch_mm)
            _say(ranks, f"patch: {size.note}")
        cropper = load_model(crop_model, task="detect", device=device, amp=amp) if crop_model else None
        replay = Replay(
            victim,
            goal,
            Bins(_numbers(bins, "--bins"), unit, _numbers(angle_bins, "--angle-bins")),
            truth,
            batch or (32 if victim.device.type == "cuda" else 8),
            cropper,
            _crop_class(cropper, judged_name) if cropper else None,
            rules,
            ranks,
            fps=fps,
        )
        if patch_art is not None:
            patch_art.provenance["person_height_m"] = person_height_m
        shown = f"{model} behind {victim.name}" if defense else model
        if listed:
            from physadv.jobs.replay_sources import run_sources_job

            truths = [_listed_truth(s, truth, victim, judged_name, gt_class, class_map) for s in listed]
            result = run_sources_job(replay, listed, truths, out, shown, video)
        else:
            result = run_replay_job(replay, str(source), out, shown, sticker_art, patch_art, seed, gt, video)
    finally:
        distributed.stop()
    if result is not None:  # rank 0 (or the one process) reports
        _echo_result(result, out, video)


def _check_fps(fps: float | None, source: Path, listed: list) -> None:
    """``--fps`` names one recording's rate: not for a scene (its spec has one) or a list."""
    if fps is None:
        return
    if listed:
        raise PhysadvError("--fps sets one recording's frame rate: not with --sources")
    if source.suffix.lower() in (".yaml", ".yml"):
        raise PhysadvError("--fps is for recordings: a scene spec sets its own frame rate")
    from physadv.data.video import check_fps

    check_fps(fps)


def _say(ranks, text: str) -> None:
    if ranks.main:
        typer.echo(text)


def _listed_sources(source, sources, gt, track, artefact, patch) -> list:
    """The recordings ``--sources`` lists ([] without it), after checking what goes with it."""
    if sources is None:
        if source is None:
            raise PhysadvError("give SOURCE (a video, a folder of frames or a scene spec) or --sources LIST")
        return []
    if source is not None:
        raise PhysadvError("give either SOURCE or --sources, not both")
    if gt is not None or track or artefact is not None or patch is not None:
        raise PhysadvError(
            "--sources replays recordings as they are: give each one's ground truth in the list, "
            "not --gt, --track, --artefact or --patch"
        )
    from physadv.data.source_list import read_source_list

    listed = read_source_list(sources)
    scenes = [s.path for s in listed if s.path.suffix.lower() in (".yaml", ".yml")]
    if scenes:
        raise PhysadvError(f"--sources lists recordings, not scene specs ('{scenes[0]}')")
    return listed


def _listed_truth(listed, like, victim, judged_name: str, gt_class, class_map):
    """A recording's own ground truth (its file from the list, if any), judged as ``like`` says."""
    import dataclasses

    from physadv.jobs.ground_truth import load_file_truth

    truth = dataclasses.replace(like, notes={})
    if listed.gt is not None:
        truth.file, truth.notes = load_file_truth(
            listed.gt, listed.path, victim, judged_name, gt_class, class_map
        )
    return truth


def _echo_result(result: dict, out: Path, video: bool) -> None:
    """What the replay found, in a few lines (the report has the rest)."""
    from physadv.jobs.replay import lab_rows
    from physadv.report.document import fmt_rate
    from physadv.report.replay_report import main_metric, verdict

    metric = main_metric(result)
    typer.echo(verdict(result))
    for name, m in result["conditions"].items():
        if m["frames"] or metric in m:  # frames with ground truth: the metric is judged on them
            replayed = m.get("frames_replayed", m["frames"])
            also = f" ({replayed} replayed)" if replayed != m["frames"] else ""
            judged = f"{m['frames']} frames with ground truth{also}"
            typer.echo(f"{name:>10}: {metric.replace('_', ' ')} {fmt_rate(m.get(metric))} over {judged}")
        if "without_ground_truth" in m:  # nothing to judge against: only whether something was seen
            seen = m["without_ground_truth"]
            typer.echo(
                f"{name:>10}: no ground truth for {seen['frames']} frames (not judged); "
                f"a '{result['true_class']}' detected in {fmt_rate(seen.get('detection_rate'))} of them"
            )
        if "flagged" in m:
            typer.echo(f"{name:>10}: the defense raised an alarm on {fmt_rate(m['flagged'])} of the frames")
        for note in m.get("source_notes", []):
            typer.echo(f"{name:>10}: {note}")
    for line in result.get("warnings", []):  # also in report.md and metrics.json
        typer.echo(f"physadv: warning: {line}", err=True)
    if any("by_group" in m for m in result["conditions"].values()):
        typer.echo(f"lab table ({metric.replace('_', ' ')}):")
        for line in lab_rows(result, metric):
            typer.echo(line)
    typer.echo(
        f"wrote {out}/report.html, report.md, metrics.json, frames.csv"
        + (", annotated video" if video else "")
    )
