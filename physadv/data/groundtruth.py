"""Ground truth for replays: per-frame object boxes from a file (JSON lines or CSV), and the
distance to an object when the file does not give it (from its box height, its physical size and
the camera's focal length).

Accepted files (frame indices count from 0; boxes are x1, y1, x2, y2 in frame pixels):

- JSON lines, one per frame: physadv's own ``ground_truth.jsonl`` and ``track.jsonl`` (``{"index",
  "objects": [{"class_name", "box", "corners", "distance_m", "angle_deg", "object_id"}]}``), or
  ``{"frame": 3, "boxes": [[x1, y1, x2, y2]], "class": "stop sign"}`` (``box`` for one box;
  ``distance_m`` / ``angle_deg`` optional). ``corners`` (four ``[x, y]``: the face rectangle's
  top-left, top-right, bottom-right, bottom-left) place an artefact on a sign; ``object_id`` (or
  ``id``) follows one object over time (system-level metrics per object). A line with ``"lost":
  true`` (the tracker lost the sign there) is a frame without ground truth: replayed, not judged.
- CSV with a header: ``frame,x1,y1,x2,y2`` and optionally ``class,distance_m,angle_deg,id``; one row
  per object.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from physadv.errors import PhysadvError


@dataclass
class GtObject:
    """One object in one frame. ``box``: x1, y1, x2, y2 pixels; distance and angle None if unknown."""

    class_name: str | None
    box: tuple[float, float, float, float]
    distance_m: float | None = None
    angle_deg: float | None = None
    corners: tuple[tuple[float, float], ...] | None = None  # TL, TR, BR, BL of a sign's face, pixels
    track_id: int | None = None  # the same object in other frames has the same id
    distance_from: str = "ground truth"  # where ``distance_m`` came from


GroundTruth = dict[int, list[GtObject]]


def _box(value, where: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in value)
    except (TypeError, ValueError):
        raise PhysadvError(f"{where}: a box must be four numbers x1, y1, x2, y2, got {value!r}") from None
    if not (x2 > x1 and y2 > y1):
        raise PhysadvError(
            f"{where}: box {value!r} has x2 <= x1 or y2 <= y1 (expected x1, y1, x2, y2 pixels)"
        )
    return (x1, y1, x2, y2)


def _number(value, where: str, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PhysadvError(f"{where}: {name} must be a number, got {value!r}") from None


def _corners(value, where: str) -> tuple[tuple[float, float], ...] | None:
    if value is None:
        return None
    try:
        corners = tuple((float(x), float(y)) for x, y in value)
    except (TypeError, ValueError):
        corners = ()
    if len(corners) != 4:
        raise PhysadvError(f"{where}: corners must be four [x, y] pairs (TL, TR, BR, BL), got {value!r}")
    return corners


def _track_id(value, where: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PhysadvError(f"{where}: an object id must be a whole number, got {value!r}") from None


def _object(o: dict, where: str) -> GtObject:
    return GtObject(
        o.get("class_name", o.get("class")),
        _box(o.get("box"), where),
        _number(o.get("distance_m"), where, "distance_m"),
        _number(o.get("angle_deg"), where, "angle_deg"),
        _corners(o.get("corners"), where),
        _track_id(o.get("object_id", o.get("id")), where),
        o.get("distance_from") or "ground truth",
    )


def _objects_from_json(row: dict, where: str) -> tuple[int, list[GtObject]]:
    frame = row.get("index", row.get("frame"))
    if not isinstance(frame, int) or frame < 0:
        raise PhysadvError(f"{where}: each line needs a frame number ('frame' or 'index', from 0)")
    if "objects" in row:
        return frame, [_object(o, where) for o in row["objects"]]
    boxes = row.get("boxes", [row["box"]] if "box" in row else None)
    if boxes is None:
        raise PhysadvError(f"{where}: each line needs 'objects', 'boxes' or 'box'")
    cls = row.get("class", row.get("class_name"))
    distance = _number(row.get("distance_m"), where, "distance_m")
    angle = _number(row.get("angle_deg"), where, "angle_deg")
    return frame, [GtObject(cls, _box(b, where), distance, angle) for b in boxes]


def load_ground_truth(path: Path) -> GroundTruth:
    """Read a ground-truth file (see the module docstring); a bad line is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise PhysadvError(f"ground-truth file '{path}' does not exist")
    truth: GroundTruth = {}
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = {"frame", "x1", "y1", "x2", "y2"} - set(reader.fieldnames or [])
            if missing:
                raise PhysadvError(f"{path}: the CSV header lacks {', '.join(sorted(missing))}")
            for line, row in enumerate(reader, start=2):
                where = f"{path}:{line}"
                frame = _number(row["frame"], where, "frame")
                box = _box([row["x1"], row["y1"], row["x2"], row["y2"]], where)
                obj = GtObject(
                    row.get("class") or None,
                    box,
                    _number(row.get("distance_m"), where, "distance_m"),
                    _number(row.get("angle_deg"), where, "angle_deg"),
                    track_id=_track_id(row.get("id"), where),
                )
                truth.setdefault(int(frame), []).append(obj)
        return truth
    with open(path) as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            where = f"{path}:{line}"
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise PhysadvError(
                    f"{where}: not JSON ({exc.msg}); expected one JSON object per line"
                ) from None
            if not isinstance(row, dict):
                raise PhysadvError(f"{where}: expected a JSON object per line")
            if row.get("lost"):
                continue  # the tracker lost the sign here: no ground truth for this frame
            frame, objects = _objects_from_json(row, where)
            truth.setdefault(frame, []).extend(objects)
    if not truth:
        raise PhysadvError(f"ground-truth file '{path}' holds no frames")
    return truth


def focal_px(width_px: int, hfov_deg: float) -> float:
    """A pinhole camera's focal length in pixels from the frame width and horizontal field of view."""
    return width_px / 2 / math.tan(math.radians(hfov_deg) / 2)


def distance_from_box(box, object_height_m: float, focal: float) -> float:
    """Distance in metres to an upright object of known height whose box is ``box`` (pixels), seen
    by a camera of focal length ``focal`` pixels (pinhole; ignores tilt, so it over-estimates at
    steep angles)."""
    height_px = max(float(box[3]) - float(box[1]), 1.0)
    return object_height_m * focal / height_px


def pose_from_corners(
    corners, width_m: float, height_m: float, focal: float, image_wh: tuple[int, int]
) -> tuple[float, float]:
    """Distance (metres, camera to the object's centre) and viewing angle (degrees from head-on) of
    a planar object of known size whose face rectangle has ``corners`` (``[4, 2]`` pixels, TL, TR,
    BR, BL), seen by a pinhole camera of focal length ``focal`` pixels centred in an image of
    ``image_wh`` pixels: OpenCV's planar PnP (``cv2.SOLVEPNP_IPPE``)."""
    import cv2
    import numpy as np

    w, h = width_m / 2, height_m / 2
    face = np.array([[-w, -h, 0], [w, -h, 0], [w, h, 0], [-w, h, 0]], np.float64)
    camera = np.array([[focal, 0, image_wh[0] / 2], [0, focal, image_wh[1] / 2], [0, 0, 1]], np.float64)
    ok, rvec, tvec = cv2.solvePnP(
        face, np.asarray(corners, np.float64).reshape(4, 1, 2), camera, None, flags=cv2.SOLVEPNP_IPPE
    )
    if not ok:
        raise ValueError("no pose fits these corners")
    normal = cv2.Rodrigues(rvec)[0][:, 2]
    to_camera = -tvec[:, 0] / np.linalg.norm(tvec)
    angle = math.degrees(math.acos(min(1.0, abs(float(normal @ to_camera)))))
    return float(np.linalg.norm(tvec)), angle
