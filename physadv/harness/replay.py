"""Replay a source through a model: frames stream in batches through the model, each frame is
judged against its ground truth, and rows go to ``frames.csv``, the tallies and the annotated
video as they come, so memory stays flat however long the video.

Under ``torchrun`` (``Replay.ranks`` active) every rank reads the same frames, batches them the
same way and runs the model on every ``world``-th batch (rank r on batches r, r + world, …); the
predictions of each round of ``world`` batches are gathered on rank 0, which judges and writes
them in frame order through the same :meth:`Run.feed` as one process — so the files are the
single-process files (the same batches go through the same model).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from physadv.data.groundtruth import GroundTruth, GtObject, distance_from_box, focal_px
from physadv.distributed import Ranks
from physadv.harness.annotate import VideoOut, draw_frame
from physadv.harness.frame_judge import (
    AP_CONF,
    FrameResult,
    ReplayGoal,
    detections_without_truth,
    judge_crops,
    judge_detections,
)
from physadv.harness.sources import Frame, batched, prefetched
from physadv.harness.system import SystemRules, Timelines
from physadv.harness.tally import Bins, Tally

COLUMNS = [
    "condition", "frame", "time_s", "object", "gt_class", "x1", "y1", "x2", "y2", "distance_m",
    "distance_from", "angle_deg", "verdict", "hidden", "correct", "label", "score", "true_class_score",
    "targeted_success", "untargeted_success", "detected", "detections", "hallucinations", "tracked", "track",
]  # fmt: skip


@dataclass
class Truth:
    """Where ground truth comes from when the source has none: a file (or a sign tracked through
    the recording: ``tracked`` holds the tracker's summary). Distances missing from it are
    estimated from box height (``object_height_m``, ``hfov_deg``)."""

    file: GroundTruth | None = None
    tracked: dict | None = None
    people_linked: bool = False  # people are the model's own clean detections linked by ByteTrack
    object_height_m: float | None = None
    hfov_deg: float = 60.0
    notes: dict = field(default_factory=dict)  # how the file was read: classes mapped, boxes dropped
    estimated: bool = field(default=False, init=False)  # set once a distance was estimated


@dataclass
class Replay:
    model: object
    goal: ReplayGoal
    bins: Bins = field(default_factory=Bins)
    truth: Truth = field(default_factory=Truth)
    batch: int = 8
    crop_detector: object | None = None  # classify without ground truth: find the object with this detector
    crop_class: int | None = None
    system: SystemRules = field(default_factory=SystemRules)
    ranks: Ranks = field(default_factory=Ranks)  # torchrun: the ranks share the batches
    pipelined: bool = True  # decode ahead, draw and encode the video in threads of their own
    fps: float | None = None  # a recording's frame rate when its file's is wrong (--fps)


def _with_truth(frames: Iterable[Frame], truth: Truth) -> Iterator[tuple[Frame, bool]]:
    """Attach file or tracked ground truth; yields (frame, annotated) — frames a ground-truth file
    skips are replayed and drawn but not judged."""
    for frame in frames:
        if frame.truth is not None:
            yield frame, True
        elif truth.file is not None:
            objects = truth.file.get(frame.index)
            h, w = frame.image.shape[-2:]  # YOLO label folders give boxes as fractions of the frame
            frame.truth = None if objects is None else [o.in_pixels(w, h) for o in objects]
            yield frame, frame.truth is not None
        else:
            yield frame, False


class Run:
    """One condition of a replay (clean, attacked, or a recording)."""

    def __init__(
        self, replay: Replay, condition: str, writer: csv.DictWriter, video: VideoOut | None, group=None
    ):
        self.r, self.condition, self.writer, self.video, self.group = replay, condition, writer, video, group
        kind = replay.goal.task if replay.goal.task == "classify" else "detect"
        self.tally = Tally(kind, replay.bins, replay.goal.target is not None)
        self.untruthed = Tally("detect_no_truth", replay.bins, False) if kind == "detect" else None
        self.timelines = Timelines()
        self.focal: float | None = None
        self.last_index = -1  # the last frame replayed (ground truth past it was never seen)

    def _distance(self, obj: GtObject, frame: Frame) -> tuple[float | None, str]:
        if obj.distance_m is not None:
            return obj.distance_m, obj.distance_from
        if self.r.truth.object_height_m is None:
            return None, ""
        if self.focal is None:
            self.focal = focal_px(frame.image.shape[-1], self.r.truth.hfov_deg)
        self.r.truth.estimated = True
        return distance_from_box(obj.box, self.r.truth.object_height_m, self.focal), "box height"

    def _results(self, chunk: list[tuple[Frame, bool]]) -> list[FrameResult]:
        goal, model = self.r.goal, self.r.model
        if goal.task == "detect":
            images = torch.stack([f.image for f, _ in chunk])
            dets = model.predict(images, conf=min(AP_CONF, goal.conf))
            return [
                judge_detections(d, goal.judged(f.truth), f.difficult, goal)
                if judged
                else detections_without_truth(d, goal)
                for (f, judged), d in zip(chunk, dets, strict=True)
            ]
        return self._classify(chunk)

    def _classify(self, chunk: list[tuple[Frame, bool]]) -> list[FrameResult]:
        goal = self.r.goal
        if self.r.crop_detector is not None:
            found = self.r.crop_detector.predict(torch.stack([f.image for f, _ in chunk]), conf=goal.conf)
            for (f, judged), d in zip(chunk, found, strict=True):
                if not judged:
                    own = d.labels == self.r.crop_class
                    best = d.scores.where(own, torch.tensor(-1.0)).argmax() if own.any() else None
                    f.truth = [GtObject(None, tuple(d.boxes[best].tolist()))] if best is not None else []
        items = []
        for k, (f, _) in enumerate(chunk):
            if f.truth is not None:
                objs = goal.judged(f.truth)
            else:  # no ground truth at all: the frame is the crop; a frame a file skips: not judged
                objs = [None] if self.r.truth.file is None else []
            items += [(k, f.image, None if o is None else o.box) for o in objs]
        rows = (
            judge_crops(self.r.model, [i for _, i, _ in items], [b for _, _, b in items], goal)
            if items
            else []
        )
        per_frame = [FrameResult([]) for _ in chunk]
        for (k, _, _), row in zip(items, rows, strict=True):
            per_frame[k].rows.append(row)
        return per_frame

    def predict(self, chunk: list[tuple[Frame, bool]]) -> list[tuple[FrameResult, list | None]]:
        """The model's results on ``chunk`` with each frame's ground truth (the crop detector
        supplies it when classifying without any): what a rank sends to rank 0."""
        return [(r, f.truth) for (f, _), r in zip(chunk, self._results(chunk), strict=True)]

    def feed(
        self, chunk: list[tuple[Frame, bool]], advance: Callable | None = None, predicted: list | None = None
    ) -> None:
        """Judge, tally, write and draw ``chunk``; ``predicted``: its :meth:`predict` (computed
        here if None, or by another rank)."""
        names = self.r.model.names
        if chunk:
            self.last_index = max(self.last_index, chunk[-1][0].index)
        for (frame, judged), (result, truth) in zip(chunk, predicted or self.predict(chunk), strict=True):
            frame.truth = truth  # as the predicting rank saw it (the crop detector may have set it)
            objs = self.r.goal.judged(frame.truth) if frame.truth is not None else []
            group = self.group(frame.index) if self.group else None
            rows = []
            for k, row in enumerate(result.rows):
                obj = objs[k] if k < len(objs) else None
                full = {
                    "condition": self.condition,
                    "frame": frame.index,
                    "time_s": round(frame.time_s, 4),
                    **row,
                }
                if obj is not None:
                    distance, source = self._distance(obj, frame)
                    full.update(
                        object=k,
                        gt_class=obj.class_name or "",
                        angle_deg=obj.angle_deg,
                        distance_from=source,
                        track="" if obj.track_id is None else obj.track_id,
                    )
                    full.update(
                        dict(zip(("x1", "y1", "x2", "y2"), (round(v, 1) for v in obj.box), strict=True))
                    )
                    full["distance_m"] = None if distance is None else round(distance, 3)
                if "label" in row and row["label"] is not None:
                    full["label"] = names[row["label"]]
                full["tracked"] = "" if frame.tracked is None else frame.tracked
                rows.append(full)
            whole_frame = self.r.goal.task == "classify" and self.r.truth.file is None
            if judged:
                self.timelines.add_frame([_timeline_entry(r, frame.time_s) for r in rows if "object" in r])
            if judged or whole_frame:
                self.tally.add_frame(rows, result.hallucinations, result.ap_scores, result.positives, group)
                if self.r.goal.task == "detect" and rows:
                    rows[0]["hallucinations"] = result.hallucinations
            elif self.untruthed is not None:
                self.untruthed.add_frame(rows)
            self.writer.writerows(
                rows
                or [
                    {
                        "condition": self.condition,
                        "frame": frame.index,
                        "time_s": round(frame.time_s, 4),
                        "hallucinations": result.hallucinations,
                    }
                ]
            )
            if self.video is not None:  # nothing drawn on is changed after this: safe to draw later
                self.video.submit(
                    partial(draw_frame, frame, objs, result.rows, result.detections, names, self.r.goal.conf)
                )
            if advance:
                advance(1, self.status())

    def status(self) -> str:
        t = self.tally.groups["all"].get("all", {})
        name = "true_positive_rate" if "true_positive_rate" in t else "accuracy"
        if name not in t and self.untruthed is not None:
            t, name = self.untruthed.groups["all"].get("all", {}), "detection_rate"
        if name in t and t[name][1]:
            k, n = t[name]
            return f"{name.replace('_', ' ')} {100 * k / n:.0f}%"
        return ""

    def metrics(self) -> dict:
        out = self.tally.as_dict()
        if self.untruthed is not None and self.untruthed.frames:
            out["without_ground_truth"] = self.untruthed.as_dict()
        kind = (
            "people"
            if self.r.model.names.same(self.r.model.names[self.r.goal.true_class], "person")
            else "sign"
        )
        system = self.timelines.as_dict(kind, self.r.system)
        if system is not None:
            out["system"] = system
        return out


def _timeline_entry(row: dict, time_s: float) -> tuple[int | None, float, float | None, bool]:
    """(object id, time, distance, detected) of one judged row: detected is a true positive for a
    detector, the right reading for a classifier."""
    detected = row["verdict"] == "true_positive" if "verdict" in row else bool(row["correct"])
    track = row.get("track")
    return (None if track in ("", None) else int(track), time_s, row.get("distance_m"), detected)


def _predicted_chunks(run: Run, source) -> Iterator[tuple[list, list | None]]:
    """(chunk, its predictions) in frame order; one process leaves the predictions to
    :meth:`Run.feed` (None); under torchrun each round of ``world`` chunks is shared out, one
    chunk per rank, and the predictions arrive on rank 0 (other ranks get nothing to feed)."""
    chunks = batched(_with_truth(source.frames(), run.r.truth), run.r.batch)
    if run.r.pipelined:
        chunks = prefetched(chunks)  # the next batch decodes while the model runs on this one
    ranks = run.r.ranks
    if not ranks.active:
        yield from ((chunk, None) for chunk in chunks)
        return
    for round_ in batched(chunks, ranks.world):
        mine = round_[ranks.rank] if ranks.rank < len(round_) else []
        everyone = ranks.gather(run.predict(mine) if mine else [])
        if ranks.main:
            yield from zip(round_, everyone, strict=False)  # a last, short round: fewer chunks than ranks


def serve_source(replay: Replay, source, condition: str) -> None:
    """A rank other than 0 under torchrun: run the model on this rank's share of ``source`` and
    send the predictions to rank 0 (which writes everything)."""
    for _ in _predicted_chunks(Run(replay, condition, None, None), source):
        pass


def replay_source(
    replay: Replay, source, condition: str, out: Path, csv_file, advance=None, annotate=True, group=None
) -> dict:
    """Replay ``source`` for one condition; rows are appended to the open ``csv_file``, the
    annotated video goes to ``out/annotated[_CONDITION].mp4``. Returns the condition's metrics;
    on Ctrl-C, the metrics of the frames judged so far, marked ``interrupted``."""
    return run_source(replay, source, condition, out, csv_file, advance, annotate, group)[1]


def truth_past_the_end(truth: dict | None, last_index: int) -> str | None:
    """A warning when a ground-truth file annotates frames after the last one the video gave: frames
    were lost (at the start, when a damaged header makes FFmpeg read from the middle), so every frame
    may be matched with another frame's boxes. None when the file ends within the video."""
    unseen = sorted(i for i in (truth or {}) if i > last_index)
    if not unseen:
        return None
    return (
        f"the ground truth annotates {len(unseen)} frame(s) after the recording's last frame ({last_index}; "
        f"the file's go up to {unseen[-1]}): frames are missing, and if they were lost at the start "
        "(a damaged header) every frame is judged against another frame's boxes; check the recording"
    )


def run_source(
    replay: Replay, source, condition: str, out: Path, csv_file, advance=None, annotate=True, group=None
) -> tuple[Run, dict]:
    """:func:`replay_source`, also returning the :class:`Run` (its tallies, to add up over sources)."""
    writer = csv.DictWriter(csv_file, COLUMNS, extrasaction="ignore", restval="")
    name = "annotated.mp4" if condition in ("attacked", "recording") else f"annotated_{condition}.mp4"
    video = VideoOut(out / name, source.fps, replay.pipelined) if annotate else None
    run = Run(replay, condition, writer, video, group)
    interrupted = False
    try:
        for chunk, predicted in _predicted_chunks(run, source):
            run.feed(chunk, advance, predicted)
            csv_file.flush()  # rows judged so far are on disk: a crash keeps them, a user can follow them
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if video is not None:
            video.close()
    metrics = run.metrics()
    metrics["frames_replayed"] = run.tally.frames + (run.untruthed.frames if run.untruthed else 0)
    if source.unread.count:
        metrics["unread_frames"] = {
            "count": source.unread.count,
            "first": source.unread.first,
            "reasons": source.unread.reasons,
        }
    if getattr(source, "notes", None):  # what the reader noticed: rotation, variable frame rate, …
        metrics["source_notes"] = list(source.notes)
    warnings = [*getattr(source, "warnings", []), *filter(None, [source.unread.warning()])]
    if not interrupted and (unseen := truth_past_the_end(replay.truth.file, run.last_index)):
        warnings.append(unseen)
    if warnings:  # what makes this condition's numbers doubtful (the job gathers them for the report)
        metrics["warnings"] = warnings
    if video is not None and video.writer is not None:
        metrics["annotated_video"] = name
    if interrupted:
        metrics["interrupted"] = True
    return run, metrics
