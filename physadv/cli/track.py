"""``physadv track``: follow a marked sign through a recording → ground truth with corners and a
review video."""

from __future__ import annotations

from pathlib import Path

import typer

from physadv.cli.options import fps_option


def track(
    source: Path = typer.Argument(..., help="A video (mp4, avi, mov, mkv) or a folder of frames."),
    mark: list[str] = typer.Option(
        ...,
        help="The sign in one frame: 'x1,y1,x2,y2' (its box) or eight numbers (corners TL, TR, BR, BL), "
        "in frame 0 or 'FRAME:…'. Give it again for more key frames (corrections).",
    ),
    out: Path = typer.Option(..., help="Output folder: track.jsonl, review.mp4, track_summary.json."),
    sign: str = typer.Option("stop", help="The sign's class (its outline and size): stop, yield, …"),
    size_mm: str = typer.Option(
        None, help="The sign face's width,height in millimetres (default: its class's)."
    ),
    hfov_deg: float = typer.Option(
        60.0, help="The camera's horizontal field of view, degrees (for distances)."
    ),
    video: bool = typer.Option(True, help="Write the review video."),
    fps: float = fps_option(),
) -> None:
    """Follow the sign marked in SOURCE as a plane (a homography per frame: optical flow, RANSAC,
    ECC alignment; found again after occlusion) and write its corners, box, confidence and distance
    per frame as the ground-truth file `physadv eval --gt` reads."""
    from physadv.cli.eval import _check_fps, _numbers
    from physadv.errors import PhysadvError
    from physadv.harness.sign_track import SignSpec, parse_mark
    from physadv.jobs.track import run_track_job

    keys = dict(parse_mark(m) for m in mark)
    if len(keys) != len(mark):
        raise PhysadvError("two marks for the same frame: give one per frame")
    size = _numbers(size_mm, "--size-mm", 2) if size_mm else None
    if size is not None and min(size) <= 0:
        raise PhysadvError(f"--size-mm must be positive, got '{size_mm}'")
    _check_fps(fps, source, [])
    _, summary = run_track_job(source, keys, SignSpec.of(sign, hfov_deg, size), out, video, fps)
    typer.echo(
        f"the sign is placed in {summary['frames_tracked'] + summary['frames_key']} of {summary['frames']} "
        f"frames ({summary['frames_key']} marked, {summary['frames_tracked']} tracked; lost "
        f"{summary['frames_lost']}, outside the frame {summary['frames_outside']}; lowest confidence "
        f"{'—' if summary['lowest_confidence'] is None else summary['lowest_confidence']})"
    )
    typer.echo(
        f"wrote {out}/track.jsonl"
        + (f", {out}/review.mp4" if video else "")
        + f", {out}/track_summary.json; "
        f"check it, then: physadv eval {source} --gt {out}/track.jsonl …"
    )
