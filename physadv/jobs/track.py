"""``physadv track`` and ``eval --track``: follow a marked sign through a recording and write its
ground truth (``track.jsonl``, the format ``eval --gt`` reads, with corners), a review video and a
summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from physadv.data.groundtruth import GroundTruth
from physadv.errors import PhysadvError
from physadv.harness.annotate import VideoOut
from physadv.harness.sign_track import SignSpec, as_ground_truth, draw_track, summarise, track_frames
from physadv.harness.sources import SceneSource, open_source
from physadv.progress import progress_bar
from physadv.results import write_json

SKIPPED = (
    "the backward refinement of the small, early frames was skipped (Ctrl-C): track.jsonl holds the "
    "forward pass's track, complete but with the mark's error carried through those frames"
)


def run_track_job(
    source_path: str | Path,
    keys: dict[int, np.ndarray],
    sign: SignSpec,
    out: Path,
    review: bool = True,
    fps: float | None = None,
) -> tuple[GroundTruth, dict]:
    """Track the sign through ``source_path`` from the ``keys`` (frame → ``[4, 2]`` corners) and
    write ``out/track.jsonl``, ``out/review.mp4`` (with ``review``) and ``out/track_summary.json``.
    ``fps``: the recording's frame rate when its file's is wrong (``--fps``).
    Returns the ground truth (lost frames left out) and the summary. A Ctrl-C during the backward
    refinement writes the forward pass's track and summary (no review video), then raises
    ``KeyboardInterrupt``; before it, nothing is written."""
    source = open_source(source_path, fps=fps)
    if isinstance(source, SceneSource):
        raise PhysadvError(
            "a rendered scene has exact ground truth already; track a video or a folder of frames"
        )
    _check_marks(keys, getattr(source, "size", None))
    try:
        with progress_bar("tracking the sign", source.expected) as advance:
            track = track_frames(
                source.frames(),
                keys,
                sign,
                advance,
                lambda n: progress_bar("refining the early frames backwards", n),
            )
    except KeyboardInterrupt:  # the forward pass (the backward one is caught inside): no track yet
        print("physadv: stopped while tracking forwards: nothing was written", file=sys.stderr, flush=True)
        raise
    tracked = track.tracked
    points, lines = [p for p, _ in tracked], [line for _, line in tracked]
    if not points:
        raise PhysadvError(f"no frame of '{source_path}' could be read")
    missing = sorted(k for k in keys if k > points[-1].index)
    if missing:  # before anything is written: a track without its key frame is no track
        raise PhysadvError(f"key frame {missing[0]} is past the video's last frame ({points[-1].index})")
    warnings = _warnings(source)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "track.jsonl", "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    review = review and track.refined  # interrupted: the user wants to stop, not wait for a second reading
    if review and points:  # a second reading of the video: the corners are final only after the whole pass
        by_index = {p.index: (p, line) for p, line in tracked}
        video = VideoOut(out / "review.mp4", source.fps)
        try:
            with progress_bar("writing the review video", len(points)) as advance:
                for frame in source.frames():
                    if frame.index in by_index:
                        video.write(draw_track(frame, *by_index[frame.index]))
                        advance(1)
        finally:
            video.close()
    summary = {
        "source": str(source_path),
        "sign": sign.class_name,
        "size_m": [sign.width_m, sign.height_m],
        "hfov_deg": sign.hfov_deg,
        "fps": source.fps,  # the rate every time_s assumes: --fps if given, else the file's
        "fps_given": fps,
        "key_frames": sorted(keys),
        **summarise(points),
        "backward_refinement": track.refinement,
        "warnings": warnings,
        "files": {"ground_truth": "track.jsonl", **({"review_video": "review.mp4"} if review else {})},
    }
    write_json(out / "track_summary.json", summary)
    if not track.refined:
        print(f"physadv: {SKIPPED}; wrote {out}/track.jsonl, track_summary.json", file=sys.stderr, flush=True)
        raise KeyboardInterrupt
    return as_ground_truth(lines), summary


def _check_marks(keys: dict[int, np.ndarray], size: tuple[int, int] | None) -> None:
    """Every mark must overlap the picture (``size``: width, height; unknown: not checked)."""
    if not size or min(size) <= 0:
        return
    w, h = size
    for frame, corners in sorted(keys.items()):
        (x1, y1), (x2, y2) = corners.min(axis=0), corners.max(axis=0)
        if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
            raise PhysadvError(
                f"the mark for frame {frame} ({x1:g},{y1:g},{x2:g},{y2:g}) lies outside the {w}×{h} picture"
            )


def _warnings(source) -> list[str]:
    """The source's warnings (an untrusted frame rate; frames the reader could not decode, tracked
    across as lost), said on stderr; they also go into ``track_summary.json``."""
    unread = source.unread.warning()
    lines = [*getattr(source, "warnings", []), *([f"{unread}; the track skips them"] if unread else [])]
    for line in lines:
        print(f"physadv: warning: {line}", file=sys.stderr, flush=True)
    return lines
