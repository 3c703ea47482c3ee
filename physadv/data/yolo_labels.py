"""YOLO label files (``class cx cy w h`` per line, normalised to the image) read line by line, with
every line checked: physadv reads labels before Ultralytics does, so a bad line costs one box, not
the image, and the user is told which line and why.

Rules (each dropped or clipped box is counted in a :class:`~physadv.data.label_log.LabelLog` with
its ``file:line``):

- 5 columns ``class cx cy w h``; a segment line (``class x1 y1 x2 y2 x3 y3 …``, Ultralytics'
  segmentation format) is read as its polygon's extent; any other column count is dropped;
- the class is an integer id (``0`` or ``0.0``) of the label set (``names`` of its ``data.yaml``,
  or, without one, of the model the labels are used with); others are dropped;
- coordinates are numbers normalised to [0, 1]; a box overshooting the image by at most
  :data:`OVERSHOOT` (1 % of its side: ``h = 1.0004``) is clipped to it, one further out is dropped
  (pixel coordinates?); a box of zero width or height is dropped, as is a repeated line.

The class names of a label set come from the ``data.yaml`` (Ultralytics' dataset file) found next to
the labels: in the label folder or up to three folders above it.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from physadv.data.label_log import LabelLog
from physadv.errors import PhysadvError

OVERSHOOT = 0.01  # normalised coordinates this far outside [0, 1] are clipped, further out dropped
ROUNDING = 1e-5  # overshoots up to this are the text's rounding (6 decimals): clipped without a word
NormBox = tuple[float, float, float, float]  # x1, y1, x2, y2 as fractions of the image


def _class_id(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value == int(value) else None


def _box_of(numbers: list[float]) -> NormBox:
    if len(numbers) == 4:
        cx, cy, w, h = numbers
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    xs, ys = numbers[0::2], numbers[1::2]  # a segment: its polygon's extent
    return (min(xs), min(ys), max(xs), max(ys))


def check_box(box: NormBox, where: str, log: LabelLog, limit: float = 1.0) -> NormBox | None:
    """``box`` clipped to ``[0, limit]`` if it overshoots by at most OVERSHOOT·limit; None (dropped,
    logged) if it is empty or further out."""
    x1, y1, x2, y2 = box
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        side = "width" if x2 - x1 <= 0 else "height"
        log.drop(where, f"zero or negative {side}", f"of zero {side}")
        return None
    worst = max(-x1, -y1, x1 - limit, y1 - limit, -x2, -y2, x2 - limit, y2 - limit)
    if worst > OVERSHOOT * limit:
        unit = "normalised 0…1 (pixel coordinates?)" if limit == 1.0 else "inside the frame"
        reason = f"outside the image by {worst / limit:.3g} of its side; want {unit}"
        log.drop(where, reason, "outside the image")
        return None
    clipped = tuple(min(max(v, 0.0), limit) for v in box)
    if worst > ROUNDING * limit:
        log.clip(where, f"overshoot of {worst / limit:.2g} clipped")
    if clipped[2] - clipped[0] <= 0 or clipped[3] - clipped[1] <= 0:
        log.drop(where, "nothing left inside the image", "outside the image")
        return None
    return clipped


def _parse_line(parts: list[str], where: str, log: LabelLog, class_ids) -> tuple[int, NormBox] | None:
    if len(parts) != 5 and (len(parts) < 7 or len(parts) % 2 == 0):
        log.drop(where, f"{len(parts)} columns; want 'class cx cy w h'", f"with {len(parts)} columns")
        return None
    cls = _class_id(parts[0])
    if cls is None:
        log.drop(where, f"class {parts[0]!r} is not an integer id", "with a class that is not an id")
        return None
    try:
        numbers = [float(v) for v in parts[1:]]
    except ValueError:
        log.drop(where, "a coordinate is not a number", "with a coordinate that is not a number")
        return None
    if not all(math.isfinite(v) for v in numbers):
        log.drop(where, "a coordinate is not finite", "with a coordinate that is not a number")
        return None
    if class_ids is not None and cls not in class_ids:
        ids = sorted(class_ids)
        contiguous = ids == list(range(ids[0], ids[-1] + 1))
        known = f"{ids[0]}..{ids[-1]}" if contiguous else ", ".join(map(str, ids))
        log.drop(where, f"class id {cls} is not in the label set (ids {known})", "with an unknown class id")
        return None
    box = check_box(_box_of(numbers), where, log)
    return None if box is None else (cls, box)


def read_yolo_file(path: Path, log: LabelLog, class_ids=None) -> list[tuple[int, NormBox]]:
    """The checked boxes of one label file: ``(class id, normalised xyxy)`` per kept line.

    ``class_ids``: the label set's ids (lines with others are dropped), or None to keep any id.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise PhysadvError(f"cannot read label file '{path}': {exc.strerror}") from None
    boxes, seen = [], {}
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{number}"
        if tuple(parts) in seen:
            log.drop(where, f"repeats line {seen[tuple(parts)]}", "repeated")
            continue
        seen[tuple(parts)] = number
        found = _parse_line(parts, where, log, class_ids)
        if found is not None:
            boxes.append(found)
            log.kept += 1
    return boxes


def read_names(path: Path) -> dict[int, str]:
    """Class names from an Ultralytics dataset yaml (``names:`` as a list or an id → name map)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PhysadvError(f"cannot read dataset file '{path}': {exc}") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, list):
        return {i: str(n) for i, n in enumerate(names)}
    if isinstance(names, dict):
        try:
            return {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            pass
    raise PhysadvError(f"'{path}' has no 'names' list (the class names of its label ids)")


def find_names_yaml(labels: Path) -> Path | None:
    """The dataset yaml with ``names`` next to a label folder: in it or up to three folders above."""
    folder = Path(labels).resolve()
    for candidate_dir in [folder, *folder.parents][:4]:
        for candidate in sorted(candidate_dir.glob("*.y*ml")):
            try:
                data = yaml.safe_load(candidate.read_text())
            except (OSError, yaml.YAMLError, UnicodeDecodeError):
                continue
            if isinstance(data, dict) and isinstance(data.get("names"), list | dict):
                return candidate
    return None
