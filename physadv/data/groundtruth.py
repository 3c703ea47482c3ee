"""Ground truth for replays: per-frame object boxes from a file (JSON lines or CSV) or a folder of
YOLO label files, class names mapped to the model's, and the distance to an object when the file
does not give it (from its box height, its physical size and the camera's focal length).

Accepted inputs (frame indices count from 0; boxes are x1, y1, x2, y2 in frame pixels):

- JSON lines, one per frame: physadv's own ``ground_truth.jsonl`` and ``track.jsonl`` (``{"index",
  "objects": [{"class_name", "box", "corners", "distance_m", "angle_deg", "object_id"}]}``), or
  ``{"frame": 3, "boxes": [[x1, y1, x2, y2]], "class": "stop sign"}`` (``box`` for one box;
  ``distance_m`` / ``angle_deg`` optional). ``corners`` (four ``[x, y]``: the face rectangle's
  top-left, top-right, bottom-right, bottom-left) place an artefact on a sign; ``object_id`` (or
  ``id``) follows one object over time (system-level metrics per object). A line with ``"lost":
  true`` (the tracker lost the sign there) is a frame without ground truth: replayed, not judged;
- CSV with a header: ``frame,x1,y1,x2,y2`` and optionally ``class,distance_m,angle_deg,id``; one row
  per object;
- a folder of YOLO label files (``class cx cy w h``, normalised), one ``.txt`` per frame, named by the
  frame's index (the last number in the name: ``000012.txt``, ``frame_12.txt``) or, for a folder of
  frames, by the frame image's name (``a.png`` → ``a.txt``); ids are named by the ``data.yaml`` next
  to the labels, else taken as the model's ids.

A box that cannot be used (not four numbers, zero width, x2 < x1) is dropped with its ``file:line``
and the reason, and counted; a file with no usable box at all is an error.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from physadv.data.label_log import LabelLog
from physadv.errors import PhysadvError


@dataclass
class GtObject:
    """One object in one frame. ``box``: x1, y1, x2, y2 pixels (fractions of the frame when
    ``normalised``, until :meth:`in_pixels`); distance and angle None if unknown."""

    class_name: str | None
    box: tuple[float, float, float, float]
    distance_m: float | None = None
    angle_deg: float | None = None
    corners: tuple[tuple[float, float], ...] | None = None  # TL, TR, BR, BL of a sign's face, pixels
    track_id: int | None = None  # the same object in other frames has the same id
    distance_from: str = "ground truth"  # where ``distance_m`` came from
    normalised: bool = False

    def in_pixels(self, width: int, height: int) -> GtObject:
        """The object with its box in pixels of a ``width`` × ``height`` frame."""
        if not self.normalised:
            return self
        x1, y1, x2, y2 = self.box
        return replace(self, box=(x1 * width, y1 * height, x2 * width, y2 * height), normalised=False)


GroundTruth = dict[int, list[GtObject]]


def _box(value, where: str, log: LabelLog) -> tuple[float, float, float, float] | None:
    try:
        x1, y1, x2, y2 = (float(v) for v in value)
    except (TypeError, ValueError):
        log.drop(where, f"a box must be four numbers x1, y1, x2, y2, got {value!r}", "not four numbers")
        return None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        log.drop(where, f"box {value!r} is not finite", "not four numbers")
        return None
    if not (x2 > x1 and y2 > y1):
        side = "width" if x2 <= x1 else "height"
        reason = f"box {value!r} has zero or negative {side} (want x1, y1, x2, y2 pixels)"
        log.drop(where, reason, f"of zero or negative {side}")
        return None
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


def _object(cls, box_value, row: dict, where: str, log: LabelLog) -> GtObject | None:
    box = _box(box_value, where, log)
    if box is None:
        return None
    log.kept += 1
    return GtObject(
        None if cls in (None, "") else str(cls),
        box,
        _number(row.get("distance_m"), where, "distance_m"),
        _number(row.get("angle_deg"), where, "angle_deg"),
        _corners(row.get("corners"), where),
        _track_id(row.get("object_id", row.get("id")), where),
        row.get("distance_from") or "ground truth",
    )


def _objects_from_json(row: dict, where: str, log: LabelLog) -> tuple[int, list[GtObject]]:
    frame = row.get("index", row.get("frame"))
    if not isinstance(frame, int) or frame < 0:
        raise PhysadvError(f"{where}: each line needs a frame number ('frame' or 'index', from 0)")
    if "objects" in row:
        named = [(o.get("class_name", o.get("class")), o) for o in row["objects"]]
        found = [_object(cls, o.get("box"), o, where, log) for cls, o in named]
        return frame, [o for o in found if o is not None]
    boxes = row.get("boxes", [row["box"]] if "box" in row else None)
    if boxes is None:
        raise PhysadvError(f"{where}: each line needs 'objects', 'boxes' or 'box'")
    cls = row.get("class", row.get("class_name"))
    found = [_object(cls, b, row, where, log) for b in boxes]
    return frame, [o for o in found if o is not None]


def _read_csv(path: Path, truth: GroundTruth, log: LabelLog) -> None:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"frame", "x1", "y1", "x2", "y2"} - set(reader.fieldnames or [])
        if missing:
            raise PhysadvError(f"{path}: the CSV header lacks {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            frame = _number(row["frame"], where, "frame")
            obj = _object(row.get("class"), [row["x1"], row["y1"], row["x2"], row["y2"]], row, where, log)
            truth.setdefault(int(frame), [])
            if obj is not None:
                truth[int(frame)].append(obj)


def _read_jsonl(path: Path, truth: GroundTruth, log: LabelLog) -> None:
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
            frame, objects = _objects_from_json(row, where, log)
            truth.setdefault(frame, []).extend(objects)


def frame_number(name: str) -> int | None:
    """The frame index a label file's name gives: its last run of digits (``frame_0012`` → 12)."""
    found = re.findall(r"\d+", name)
    return int(found[-1]) if found else None


def _read_yolo_folder(
    folder: Path, frame_names: list[str] | None, log: LabelLog, model_ids: set[int] | None
) -> GroundTruth:
    from physadv.data.yolo_labels import find_names_yaml, read_names, read_yolo_file

    files = sorted(folder.glob("*.txt"))
    if not files:
        raise PhysadvError(f"ground-truth folder '{folder}' holds no YOLO label files (.txt)")
    names_yaml = find_names_yaml(folder)
    names = read_names(names_yaml) if names_yaml else None
    by_stem = {stem: i for i, stem in enumerate(frame_names)} if frame_names is not None else None
    truth: GroundTruth = {}
    for path in files:
        index = by_stem.get(path.stem) if by_stem is not None else frame_number(path.stem)
        if index is None:
            which = "no frame image of that name" if by_stem is not None else "no frame number in its name"
            log.drop(str(path), f"{which}: the file is not used", "in files matching no frame")
            continue
        objects = truth.setdefault(index, [])
        for label_id, box in read_yolo_file(path, log, set(names) if names else model_ids):
            name = names[label_id] if names else str(label_id)
            objects.append(GtObject(name, box, normalised=True))
    return truth


def load_ground_truth(
    path: Path,
    frame_names: list[str] | None = None,
    log: LabelLog | None = None,
    model_ids: set[int] | None = None,
) -> GroundTruth:
    """Read ground truth (see the module docstring). Unusable boxes are dropped and counted in
    ``log``; a file that is not in a known format, or has no usable box, is an error naming it.

    Args:
        frame_names: for a folder of YOLO labels replayed on a folder of frames, the frames' file
            stems in replay order (label files are matched by name); None: by the number in the name.
        model_ids: a YOLO folder without a ``data.yaml``: the ids its lines may use (the model's).
    """
    path = Path(path)
    log = log if log is not None else LabelLog()
    truth: GroundTruth = {}
    if path.is_dir():
        truth = _read_yolo_folder(path, frame_names, log, model_ids)
    elif not path.is_file():
        raise PhysadvError(
            f"ground truth '{path}' does not exist (a JSON lines or CSV file, or a folder of YOLO labels)"
        )
    elif path.suffix.lower() == ".csv":
        _read_csv(path, truth, log)
    else:
        _read_jsonl(path, truth, log)
    if not truth:
        raise PhysadvError(f"ground truth '{path}' holds no frames")
    if log.total_dropped and not log.kept:
        raise PhysadvError(f"ground truth '{path}' holds no usable box: {log.summary('ground truth')}")
    return truth


def map_classes(truth: GroundTruth, class_map) -> GroundTruth:
    """Ground truth with every named object's class as the model names it (``class_map``: a
    :class:`~physadv.data.class_map.ClassMap`); objects of classes the map ignores are left out.
    Raises the map's one-line error for a class that is none of the model's."""
    mapped: GroundTruth = {}
    for frame, objects in truth.items():
        kept = []
        for obj in objects:
            if obj.class_name is None:
                kept.append(obj)
                continue
            model_id = class_map.model_id(obj.class_name)
            if model_id is not None:
                kept.append(replace(obj, class_name=class_map.model[model_id]))
        mapped[frame] = kept
    return mapped


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
