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


def run_track_job(
    source_path: str | Path,
    keys: dict[int, np.ndarray],
    sign: SignSpec,
    out: Path,
    review: bool = True,
) -> tuple[GroundTruth, dict]:
    """Track the sign through ``source_path`` from the ``keys`` (frame → ``[4, 2]`` corners) and
    write ``out/track.jsonl``, ``out/review.mp4`` (with ``review``) and ``out/track_summary.json``.
    Returns the ground truth (lost frames left out) and the summary."""
    source = open_source(source_path)
    if isinstance(source, SceneSource):
        raise PhysadvError(
            "a rendered scene has exact ground truth already; track a video or a folder of frames"
        )
    _check_marks(keys, getattr(source, "size", None))
    with progress_bar("tracking the sign", source.expected) as advance:
        tracked = track_frames(source.frames(), keys, sign, advance)
    points, lines = [p for p, _ in tracked], [line for _, line in tracked]
    if not points:
        raise PhysadvError(f"no frame of '{source_path}' could be read")
    missing = sorted(k for k in keys if k > points[-1].index)
    if missing:  # before anything is written: a track without its key frame is no track
        raise PhysadvError(f"key frame {missing[0]} is past the video's last frame ({points[-1].index})")
    _say_unread(source)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "track.jsonl", "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
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
        "key_frames": sorted(keys),
        **summarise(points),
        "files": {"ground_truth": "track.jsonl", **({"review_video": "review.mp4"} if review else {})},
    }
    write_json(out / "track_summary.json", summary)
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


def _say_unread(source) -> None:
    """A counted warning for frames the reader could not decode (tracked across as lost)."""
    unread = getattr(source, "unread", None)
    if unread is not None and unread.count:
        why = f" ({unread.reasons[0]})" if unread.reasons else ""
        print(
            f"physadv: warning: {unread.count} frame(s) unreadable, the first bad frame is "
            f"{unread.first}{why}; the track skips them",
            file=sys.stderr,
            flush=True,
        )
