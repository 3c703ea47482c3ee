"""A sign followed through a recording, frame by frame, as ground-truth records: corners, box,
tracking confidence, and distance and viewing angle from the sign's known size and the camera's
field of view (planar PnP). The records are lines of the ground-truth file ``physadv eval --gt``
reads (:mod:`physadv.data.groundtruth`), so a user can check a track once, correct it with key
frames, and reuse it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from physadv.data.groundtruth import GroundTruth, GtObject, focal_px, pose_from_corners
from physadv.errors import PhysadvError
from physadv.harness.annotate import draw_label
from physadv.harness.sources import Frame
from physadv.harness.tracking import TrackPoint, corners_from_box
from physadv.harness.two_way import TwoWayTracker
from physadv.scene.video import to_bgr8

# BGR, by tracking status
STATUS_COLOUR = {
    "key": (0, 220, 255),
    "tracked": (80, 200, 60),
    "lost": (60, 60, 230),
    "outside": (160, 160, 160),
}


@dataclass
class SignSpec:
    """What is tracked: the sign's class (its outline, and the name written to the file) and the
    physical size of its face rectangle (metres), and the camera's horizontal field of view."""

    class_name: str = "stop"
    width_m: float = 0.75
    height_m: float = 0.75
    hfov_deg: float = 60.0

    @classmethod
    def of(cls, sign: str, hfov_deg: float, size_mm: tuple[float, float] | None = None) -> SignSpec:
        """The spec of a sign physadv knows (``stop``, ``yield``, …; ``stop sign`` works too) or,
        with ``size_mm``, of any sign of that size."""
        from physadv.scene.signs import SIGNS

        name = sign.lower().strip()
        name = name if name in SIGNS else name.removesuffix(" sign")
        if size_mm is None:
            if name not in SIGNS:
                raise PhysadvError(
                    f"unknown sign '{sign}': give its face size with --size-mm W,H (millimetres) or use one "
                    f"of {', '.join(sorted(SIGNS))}"
                )
            size_mm = (SIGNS[name].width_mm, SIGNS[name].height_mm)
        return cls(name, size_mm[0] / 1000, size_mm[1] / 1000, hfov_deg)


def parse_mark(text: str) -> tuple[int, np.ndarray]:
    """A marked sign as a user types it: ``x1,y1,x2,y2`` (a box) or eight numbers (corners TL, TR,
    BR, BL as x, y pairs), optionally prefixed by ``FRAME:`` (default frame 0) → (frame, ``[4, 2]``)."""
    frame, _, numbers = text.rpartition(":")
    try:
        index = int(frame) if frame else 0
        values = [float(v) for v in numbers.split(",")]
    except ValueError:
        raise PhysadvError(
            f"cannot read the mark '{text}': give x1,y1,x2,y2 or eight corner numbers, optionally FRAME: "
            "before them"
        ) from None
    if index < 0 or len(values) not in (4, 8):
        raise PhysadvError(
            f"the mark '{text}' needs 4 numbers (a box) or 8 (corners TL, TR, BR, BL) and a frame ≥ 0"
        )
    if len(values) == 4:
        if not (values[2] > values[0] and values[3] > values[1]):
            raise PhysadvError(f"the box '{text}' has x2 <= x1 or y2 <= y1 (expected x1,y1,x2,y2 pixels)")
        return index, corners_from_box(values)
    corners = np.array(values, np.float32).reshape(4, 2)
    if abs(cv2.contourArea(corners)) < 4:
        raise PhysadvError(f"the corners '{text}' enclose no area (expected TL, TR, BR, BL)")
    return index, corners


def record(point: TrackPoint, time_s: float, size: tuple[int, int], sign: SignSpec) -> dict:
    """The ground-truth line for one tracked frame at ``time_s`` (seconds) in a frame of ``size``
    (W, H pixels; see :mod:`physadv.data.groundtruth`)."""
    line = {"frame": point.index, "time_s": round(time_s, 4), "tracking": point.status}
    if point.status == "lost":
        return {**line, "lost": True}
    if point.status == "outside":
        return {**line, "objects": []}
    w, h = size
    distance, angle = pose_from_corners(
        point.corners, sign.width_m, sign.height_m, focal_px(w, sign.hfov_deg), (w, h)
    )
    line["confidence"] = round(point.confidence, 4)
    line["objects"] = [
        {
            "class_name": sign.class_name,
            "object_id": 0,
            "box": [round(v, 2) for v in point.box],
            "corners": np.round(point.corners.astype(np.float64), 2).tolist(),
            "distance_m": round(distance, 3),
            "angle_deg": round(angle, 2),
            "distance_from": "tracked corners",
        }
    ]
    return line


@dataclass
class Track:
    """A followed sign: each frame's point and ground-truth line, in order. ``refined`` is False when
    the backward refinement was interrupted (Ctrl-C): the points are then the forward pass's."""

    tracked: list[tuple[TrackPoint, dict]]
    refined: bool = True
    backward_frames: int = 0  # frames the backward passes read (0: no small, early frames to refine)

    @property
    def refinement(self) -> str:
        """The backward refinement in a word, for the track's summary."""
        if not self.refined:
            return "skipped (interrupted)"
        return "done" if self.backward_frames else "none needed (no small, early frames)"


def track_frames(
    frames: Iterable[Frame], keys: dict[int, np.ndarray], sign: SignSpec, advance=None, refining=None
) -> Track:
    """Follow the sign marked in ``keys`` (frame → corners) through ``frames``, forward and then
    backwards over its small, early views (:class:`physadv.harness.two_way.TwoWayTracker`).
    ``advance(1, status)`` is called per frame read; ``refining(total)``, a context giving an
    ``advance`` for the backward passes (``total`` frames; e.g. a progress bar). A Ctrl-C during the
    backward passes keeps the forward pass's track (``Track.refined`` False); before, it is raised."""
    tracker, stamps = TwoWayTracker(keys, sign.class_name), []
    for frame in frames:
        image = frame.bgr if frame.bgr is not None else to_bgr8(frame.image)
        point = tracker.update(frame.index, image)
        stamps.append((frame.time_s, (image.shape[1], image.shape[0])))
        if advance is not None:
            advance(1, point.status)
    backward = tracker.backward_frames()
    try:
        with refining(backward) if refining else contextlib.nullcontext() as tick:
            points, refined = tracker.finish(tick), True
    except KeyboardInterrupt:  # the forward pass is complete: keep it
        points, refined = tracker.forward_points(), False
    lines = [(p, record(p, t, size, sign)) for p, (t, size) in zip(points, stamps, strict=True)]
    return Track(lines, refined, backward)


def truth_of(line: dict) -> list[GtObject] | None:
    """A ground-truth line as the replay reads it (None: a frame without ground truth)."""
    if line.get("lost"):
        return None
    return [
        GtObject(
            o["class_name"], tuple(o["box"]), o["distance_m"], o["angle_deg"],
            tuple(map(tuple, o["corners"])), o["object_id"], o["distance_from"],
        )
        for o in line["objects"]
    ]  # fmt: skip


def draw_track(frame: Frame, point: TrackPoint, line: dict) -> np.ndarray:
    """The review frame: the sign's face rectangle and box coloured by status, with the frame's
    confidence and distance → BGR uint8."""
    image = frame.bgr.copy() if frame.bgr is not None else to_bgr8(frame.image)
    colour = STATUS_COLOUR[point.status]
    text = f"frame {frame.index}  {point.status}"
    if point.corners is not None and point.found:
        cv2.polylines(image, [np.round(point.corners).astype(np.int32)], True, colour, 2, cv2.LINE_AA)
        x1, y1, x2, y2 = (round(v) for v in point.box)
        cv2.rectangle(image, (x1, y1), (x2, y2), (255, 255, 255), 1)
        obj = line["objects"][0]
        text += f"  confidence {point.confidence:.2f}  {obj['distance_m']:.1f} m"
    draw_label(image, text, (4, 16), colour)
    return image


def summarise(points: list[TrackPoint]) -> dict:
    """How many frames were key, tracked, lost or outside, and the lowest confidence tracked."""
    counts = {s: sum(p.status == s for p in points) for s in STATUS_COLOUR}
    tracked = [p.confidence for p in points if p.status == "tracked"]
    return {
        "frames": len(points),
        **{f"frames_{s}": n for s, n in counts.items()},
        "lowest_confidence": round(min(tracked), 4) if tracked else None,
        "lost_frames": [p.index for p in points if p.status == "lost"][:50],
    }


def as_ground_truth(lines: Iterable[dict]) -> GroundTruth:
    """Ground-truth lines → what the replay reads (lost frames are left out: not judged)."""
    truth: GroundTruth = {}
    for line in lines:
        objects = truth_of(line)
        if objects is not None:
            truth[line["frame"]] = objects
    return truth
