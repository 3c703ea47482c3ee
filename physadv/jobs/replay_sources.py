"""``physadv eval --sources list.txt``: several recordings replayed into one report.

Each recording is a condition of its own, named after its file (its rates by distance and angle,
its system-level metrics, ``annotated_NAME.mp4``, and its rows in ``frames.csv`` under that
condition), and ``all recordings`` adds their tallies up (rates, AP50, hallucinations; the
system-level metrics stay per recording: they follow one drive in time). Under torchrun the
recordings are shared out between the ranks, whole (each rank decodes only its own), and rank 0
writes ``frames.csv``, ``metrics.json`` and the report in the list's order — the files one process
writes, except that each rank writes the annotated videos of its own recordings.
"""

from __future__ import annotations

import dataclasses
import io
import time
from dataclasses import dataclass
from pathlib import Path

from physadv.data.source_list import ListedSource
from physadv.distributed import Ranks
from physadv.errors import PhysadvError
from physadv.harness.replay import COLUMNS, Replay, Truth, run_source
from physadv.harness.sources import open_source
from physadv.harness.tally import Tally
from physadv.jobs.replay import for_inference, result_header, run_warnings
from physadv.progress import progress_bar
from physadv.report.replay_report import write_report
from physadv.results import Rate, write_json

ALL = "all recordings"


@dataclass
class Replayed:
    """One recording replayed (what a rank sends to rank 0): its metrics, its ``frames.csv`` rows
    (text, no header) and its tallies' counts."""

    index: int
    name: str
    metrics: dict
    rows: str
    tally: dict
    untruthed: dict | None
    estimated: bool


def _replay_one(replay: Replay, index: int, listed: ListedSource, truth: Truth, out: Path, annotate: bool):
    one = dataclasses.replace(replay, truth=truth, ranks=Ranks())  # the whole recording, here
    source = open_source(listed.path)
    rows = io.StringIO()
    with progress_bar(f"replaying {listed.name}", source.expected) as advance:
        run, metrics = run_source(one, source, listed.name, out, rows, advance, annotate)
    metrics = {"source": str(listed.path), **metrics}
    alarms = getattr(one.model, "alarms", None)  # a defense that detects patches (--defense)
    if alarms is not None:
        flags = alarms.take()
        metrics["flagged"] = Rate(sum(flags), len(flags)).as_dict()
    if truth.notes:
        metrics["ground_truth_read"] = truth.notes
    untruthed = run.untruthed.counts() if run.untruthed is not None else None
    tally, csv_rows = run.tally.counts(), rows.getvalue()
    return Replayed(index, listed.name, metrics, csv_rows, tally, untruthed, truth.estimated)


def _all(replay: Replay, done: list[Replayed]) -> dict:
    """The tallies of every recording added up, as one condition."""
    kind = replay.goal.task if replay.goal.task == "classify" else "detect"
    total = Tally(kind, replay.bins, replay.goal.target is not None)
    untruthed = Tally("detect_no_truth", replay.bins, False)
    for d in done:
        total.add(d.tally)
        if d.untruthed is not None:
            untruthed.add(d.untruthed)
    metrics = {"recordings": len(done), **total.as_dict()}
    if untruthed.frames:
        metrics["without_ground_truth"] = untruthed.as_dict()
    metrics["frames_replayed"] = total.frames + untruthed.frames
    return metrics


def run_sources_job(
    replay: Replay, listed: list[ListedSource], truths: list[Truth], out: Path, model_name: str, annotate=True
) -> dict | None:
    """Replay every listed recording (``truths[i]``: the ground truth of ``listed[i]``) into one
    report in ``out``; returns the result on rank 0 (None on other ranks).

    Raises:
        PhysadvError: a listed recording cannot be opened; no frame of any recording could be read.
    """
    for item in listed:  # every rank checks every recording before they are shared out, so a bad one
        open_source(item.path)  # is said once (rank 0), before anything is replayed
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    replay = for_inference(replay)
    ranks = replay.ranks
    mine = ranks.share(list(range(len(listed))))
    done = [_replay_one(replay, i, listed[i], truths[i], out, annotate) for i in mine]
    gathered = ranks.gather(done)
    if not ranks.main:
        return None
    done = sorted((d for part in gathered for d in part), key=lambda d: d.index)
    with open(out / "frames.csv", "w", newline="") as csv_file:
        csv_file.write(",".join(COLUMNS) + "\n")
        csv_file.writelines(d.rows for d in done)
    with_gt = sum(t.file is not None for t in truths)
    note = f"per recording, from the files the list names ({with_gt} of {len(listed)} recordings have one)"
    result = result_header(replay, str(listed[0].path.parent), "recordings", model_name, note)
    result["sources"] = [str(s.path) for s in listed]
    result["conditions"] = {ALL: _all(replay, done), **{d.name: d.metrics for d in done}}
    seconds = time.perf_counter() - started
    replayed = result["conditions"][ALL]["frames_replayed"]
    result.update(
        seconds=round(seconds, 2), frames_replayed=replayed, frames_per_second=round(replayed / seconds, 2)
    )
    if any(d.estimated for d in done):
        result["distance_estimated"] = (
            "Distances without ground truth are estimated from box height, assuming the object is "
            f"{replay.truth.object_height_m} m tall and a horizontal field of view of "
            f"{replay.truth.hfov_deg}° (pinhole camera; no tilt correction)."
        )
    result["warnings"] = run_warnings(result)
    write_json(out / "metrics.json", result)
    if replayed == 0:
        raise PhysadvError(f"no frame of the {len(listed)} recordings listed could be read")
    write_report(result, out)
    return result
