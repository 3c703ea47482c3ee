"""Video files as people record them, read frame by frame (flat memory however long the video).

OpenCV (its FFmpeg backend) decodes; this module decides what each frame is called and when it was
seen, because containers are often not what their headers say:

- **time** is each frame's own timestamp (``CAP_PROP_POS_MSEC`` after the read), so a phone's
  variable frame rate is timed right; index ÷ frame rate is used only for a frame without a
  usable timestamp (none, or not after the previous one), and counted;
- **index**: while the timestamps sit on the grid of the header's frame rate (a constant-rate
  video), a frame is numbered by its timestamp, ``first + round((t − t_first) · fps)``, so frames
  lost to damage (a failed read, or a chunk the decoder skipped without a word) leave a gap of the
  right size and ground truth keyed by index stays aligned; once a timestamp falls off that grid
  (a variable-rate video) frames are numbered in decoding order, a failed read counting as one
  lost frame. The grid is not trusted when the header's rate is implausible (not 1–240 fps) or
  when the first two frames already skip one;
- **frame count**: the header's count only sizes the progress bar; reading goes on until the
  decoder gives up (:data:`MAX_FAILED_READS` failed reads in a row), and a count that disagrees
  with what was read is reported (fewer: counted as unread, "read 58 of the 60 frames …");
- **an untrusted frame rate** is a warning naming the rate used and ``--fps``: a header without
  one, one outside 1–240 fps, or FFmpeg's guess: OpenCV does not say whether a rate was guessed,
  but a file that states no frame count or duration (a damaged header, or a raw stream) read at
  exactly 25 fps, the rate FFmpeg assumes for a stream without timing, is taken to be one (measured:
  a 30 fps MP4 whose first bytes were zeroed). A rate the user gives (``fps``) times every frame at
  index ÷ rate, the file's timestamps unused;
- **rotation**: phone video stores a display rotation; OpenCV applies it (``CAP_PROP_ORIENTATION_AUTO``)
  and the rotation is reported, so frames and ground truth are in the upright picture's pixels;
- **odd sizes** are read as they are (the detector pads to its stride); frames OpenCV decodes at
  another size than the stream's first are scaled by OpenCV to that size.

What could not be read is counted in :class:`Unread`; what was noticed about the file (rotation,
variable rate, a wrong header) in :attr:`VideoSource.notes`; what makes its numbers doubtful (an
untrusted frame rate) in :attr:`VideoSource.warnings`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from physadv.data.groundtruth import GtObject
from physadv.errors import PhysadvError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
MAX_FAILED_READS = 10  # consecutive unreadable frames after which the decoder is taken to have given up
GRID_TOLERANCE = 0.25  # a timestamp within this many frame periods of the header's grid is "on" it
PLAUSIBLE_FPS = (1.0, 240.0)  # header frame rates outside this are not used to number frames
DEFAULT_FPS = 30.0
# FFmpeg's rate for a stream that carries no timing (its raw demuxers' default): what a file whose
# header is lost is timed at (measured: a 30 fps MP4 with its first bytes zeroed reads at 25 fps)
FFMPEG_GUESSED_FPS = 25.0
PLAUSIBLE_COUNT = 10**8  # a header frame count above this (~38 days at 30 fps) is garbage, not a count

# What could not be read is said once, by physadv (a one-line error, or counted in Unread); FFmpeg's own
# lines ("moov atom not found", "error while decoding MB …") would print above it in every run.
# OpenCV reads this when it first opens a file; to see FFmpeg's errors set it yourself (16).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


@dataclass
class Frame:
    """One frame: ``image`` ``[3, H, W]`` RGB float in [0, 1]; ``time_s`` seconds from the start;
    ``truth`` None when the source has none."""

    index: int
    time_s: float
    image: torch.Tensor
    truth: list[GtObject] | None = None
    difficult: list[GtObject] = field(
        default_factory=list
    )  # seen too little to require, never hallucinations
    tracked: bool | None = None  # tracked ground truth: whether the tracker trusted its match
    bgr: np.ndarray | None = None  # the decoded frame (uint8 BGR), kept to draw on


def from_bgr8(image: np.ndarray) -> torch.Tensor:
    """OpenCV's ``[H, W, 3]`` BGR uint8 → ``[3, H, W]`` RGB float in [0, 1] (a channels-last view)."""
    # one single-threaded NumPy pass, bit for bit torch's float().div_(255): the reader runs in a thread
    # beside the model, and torch's threaded version of this took ~44 ms a 640×480 frame on a loaded
    # 2-core machine (its thread team fighting the model's) against ~0.7 ms here
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(np.divide(rgb, np.float32(255), dtype=np.float32)).permute(2, 0, 1)


class Unread:
    """Frames a source could not read: how many, the first one, and why (the first few reasons)."""

    def __init__(self):
        self.count, self.first, self.reasons = 0, None, []

    def warning(self) -> str | None:
        """One line for the user (None when every frame was read)."""
        if not self.count:
            return None
        why = f" ({self.reasons[0].removeprefix(f'frame {self.first}: ')})" if self.reasons else ""
        return f"{self.count} frame(s) unreadable, the first bad frame is {self.first}{why}"

    def add(self, index: int, reason: str, count: int = 1) -> None:
        self.first = index if self.first is None else min(self.first, index)
        self.count += count
        if len(self.reasons) < 5:
            self.reasons.append(f"frame {index}: {reason}")


class FrameClock:
    """Numbers and times decoded frames from their timestamps (see the module docstring)."""

    def __init__(self, fps: float | None):
        self.fps = fps if fps is not None and PLAUSIBLE_FPS[0] <= fps <= PLAUSIBLE_FPS[1] else None
        self.on_grid = self.fps is not None
        self.first: tuple[int, float] | None = None  # (index, time) of the first decoded frame
        self.last: tuple[int, float] | None = None
        self.bad_times = 0  # frames whose timestamp was missing or not after the previous one
        self.left_grid_at: int | None = None

    def place(self, stamp_s: float | None, failed: int) -> tuple[int, float]:
        """Index and time of a decoded frame with timestamp ``stamp_s`` (None: none) after
        ``failed`` failed reads since the previous decoded frame."""
        period = 1 / (self.fps or DEFAULT_FPS)
        if self.last is None:
            self.first = self.last = (failed, stamp_s if stamp_s is not None else failed * period)
            if stamp_s is None:
                self.bad_times += 1
            return self.last
        last_index, last_time = self.last
        in_order = last_index + 1 + failed
        if stamp_s is None or not math.isfinite(stamp_s) or stamp_s <= last_time:
            self.bad_times += 1
            self.last = (in_order, last_time + (1 + failed) * period)
            return self.last
        index = in_order
        if self.on_grid:
            frames = (stamp_s - self.first[1]) * self.fps + self.first[0]
            skipped_at_once = last_index == self.first[0] and failed == 0 and round(frames) > in_order
            if abs(frames - round(frames)) > GRID_TOLERANCE or skipped_at_once or round(frames) <= last_index:
                self.on_grid, self.left_grid_at = False, in_order
            else:
                index = round(frames)
        self.last = (index, stamp_s)
        return self.last


def check_fps(fps: float | None) -> None:
    """A frame rate a user gives (``--fps``, frames per second) must be a positive number (None: not
    given). Raises PhysadvError (one line) otherwise."""
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise PhysadvError(f"--fps must be a positive number of frames per second, got {fps:g}")


class VideoSource:
    """Frames of a video file, decoded by OpenCV one at a time, numbered and timed by their
    timestamps (see the module docstring).

    Args:
        path: the video file.
        fps: the recording's frame rate, frames per second, when the file's is wrong (``--fps``): every
            frame is then timed at index ÷ ``fps``. None: the file's timestamps and rate.

    Attributes:
        expected: the frame count the header announces (None if it gives none): for progress only.
        fps: the frame rate used: ``fps`` if given, else the header's (``DEFAULT_FPS`` if it gives none).
        rotation: the display rotation in degrees (clockwise) that was applied.
        unread: frames that could not be read, and why.
        notes: what was noticed about the file, in plain words.
        warnings: what makes the times doubtful (an untrusted frame rate), one line each.

    Raises:
        PhysadvError: OpenCV cannot open the file (one line).
    """

    kind = "video"

    def __init__(self, path: Path, fps: float | None = None):
        self.path = Path(path)
        check_fps(fps)
        capture = self._open()
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        # FFmpeg without a duration (a raw stream, a damaged header) leaves OpenCV a garbage count
        self.expected = int(count) if math.isfinite(count) and 0 < count <= PLAUSIBLE_COUNT else None
        header_fps = capture.get(cv2.CAP_PROP_FPS)
        self.header_fps = header_fps if math.isfinite(header_fps) and header_fps > 0 else None
        self.given_fps = fps
        self.fps = fps or self.header_fps or DEFAULT_FPS
        self.rotation = int(capture.get(cv2.CAP_PROP_ORIENTATION_META) or 0) % 360
        self.size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        capture.release()
        self.unread = Unread()
        self.notes: list[str] = []
        self.warnings = self._rate_warnings()

    def _rate_warnings(self) -> list[str]:
        """Why the frame rate used cannot be trusted ([] when it can, or when the user gave a usual one)."""
        if self.given_fps is not None:  # the user's word, but a slip (--fps 300 for 30) is worth a line
            if PLAUSIBLE_FPS[0] <= self.given_fps <= PLAUSIBLE_FPS[1]:
                return []
            return [f"--fps {self.given_fps:g} is outside a camera's usual 1–240 fps: times assume it anyway"]
        use = (
            f"every time in seconds (and eval's 'in time to stop') assumes {self.fps:g} fps: give the "
            "recording's real rate with --fps"
        )
        if self.header_fps is None:
            return [f"the file states no frame rate; {use}"]
        if not PLAUSIBLE_FPS[0] <= self.header_fps <= PLAUSIBLE_FPS[1]:
            return [f"the file states {self.header_fps:g} fps, not a camera's rate; {use}"]
        if self.expected is None and self.header_fps == FFMPEG_GUESSED_FPS:
            return [
                f"the file states no frame count or duration (a damaged header, or a raw stream), so its "
                f"{self.fps:g} fps is probably FFmpeg's guess (25 fps for a stream without timing); {use}"
            ]
        return []

    def _open(self) -> cv2.VideoCapture:
        if not self.path.is_file():
            raise PhysadvError(f"video '{self.path}' not found")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise PhysadvError(
                f"cannot read video '{self.path}': OpenCV cannot open it (corrupt, truncated before its "
                "index, or an unsupported codec)"
            )
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # upright, as players show it (OpenCV's default)
        return capture

    def frames(self) -> Iterator[Frame]:
        self.unread, self.notes, self.decoded = Unread(), [], 0
        capture, clock = self._open(), FrameClock(self.header_fps)
        failed: list[str] = []
        try:
            while len(failed) < MAX_FAILED_READS:
                ok, image = capture.read()
                if not ok or image is None:
                    failed.append("unreadable (corrupt data)")
                    continue
                stamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
                previous = clock.last
                # a later frame at 0 ms: the backend had no timestamp for it
                index, time_s = clock.place(None if previous and stamp <= 0 else stamp, len(failed))
                self._count_lost(previous, index, failed)
                failed, self.decoded = [], self.decoded + 1
                if self.given_fps is not None:  # the user's rate over the file's timestamps
                    time_s = index / self.given_fps
                yield Frame(index, time_s, from_bgr8(image), bgr=image)
            self._check_count(clock)  # the decoder gave up: the end of what can be read
        finally:
            capture.release()
            self._describe(clock)

    def _count_lost(self, previous, index: int, failed: list[str]) -> None:
        start = 0 if previous is None else previous[0] + 1
        lost = index - start
        if lost > 0:
            reason = failed[0] if failed else "missing from the stream (its timestamps skip it)"
            self.unread.add(start, reason, lost)

    def _describe(self, clock: FrameClock) -> None:
        """Notes on the file once read: its rotation and how its frames were timed and numbered."""
        if self.expected is None and not self.warnings:
            self.notes.append(
                "the file states no frame count or duration (a damaged header, or a raw stream)"
            )
        if self.rotation:
            self.notes.append(
                f"rotated {self.rotation}° clockwise for display (phone video): frames are upright"
            )
        if clock.left_grid_at is not None:
            self.notes.append(
                f"variable frame rate: time is each frame's timestamp; frames from {clock.left_grid_at} on "
                "are numbered in decoding order"
            )
        if self.given_fps is not None:
            self.notes.append(
                f"timed at --fps {self.given_fps:g} (frame index ÷ rate; the file's timestamps unused)"
            )
        elif clock.bad_times:
            self.notes.append(
                f"{clock.bad_times} frame(s) without a usable timestamp: timed at the header's "
                f"{self.fps:g} fps from the frame before"
            )

    def _check_count(self, clock: FrameClock) -> None:
        """The header's frame count against what was read to the end."""
        if clock.last is None:
            self.unread.add(0, "no frame could be decoded", self.expected or 1)
            return
        read = clock.last[0] + 1
        if self.expected is not None and read < self.expected:
            self.unread.add(
                read,
                f"read {self.decoded} of the {self.expected} frames its header announces: the video ends "
                f"early (truncated, or its header's count of {self.expected} is wrong)",
                self.expected - read,
            )
        elif self.expected is not None and read > self.expected:
            self.notes.append(f"the header announces {self.expected} frames; {read} were read (all are used)")
