"""Ground truth a user brings for a recording, read and mapped to the model's classes, with what was
left out said in plain words (and kept for ``metrics.json``)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from physadv.data.class_map import ClassMap, parse_class_map
from physadv.data.groundtruth import GroundTruth, load_ground_truth, map_classes
from physadv.data.images import frame_files
from physadv.data.label_log import LabelLog
from physadv.errors import PhysadvError


def _check_judged_class(truth: GroundTruth, judged_name: str, gt: Path) -> None:
    """A one-line error when the ground truth names classes but never the judged one (nothing would
    be judged, and the report would read as if no ground truth had been given)."""
    counts = Counter(o.class_name for objects in truth.values() for o in objects)
    if not counts or None in counts or judged_name in counts:
        return
    held = ", ".join(f"'{name}' ×{n}" for name, n in counts.most_common(5))
    first = counts.most_common(1)[0][0]
    raise PhysadvError(
        f"ground truth '{gt}' holds no '{judged_name}' box (it holds {held}): judge those with "
        f"--target-class \"{first}\", or map one of its classes to '{judged_name}' with --gt-class NAME"
    )


def load_file_truth(
    gt: Path, source: Path, model, judged_name: str, gt_class: str | None, class_map: str | None
) -> tuple[GroundTruth, dict]:
    """The ``--gt`` file (or folder of YOLO labels) with every class as the model names it.

    Classes map by name (:mod:`physadv.data.class_map`): ``--gt-class NAME`` maps NAME to the
    judged class, ``--class-map`` adds the user's pairs. Prints the mapping used and what was
    dropped; returns the ground truth and those notes."""
    given = parse_class_map(class_map)
    if gt_class is not None:
        given[gt_class] = judged_name
    log = LabelLog()
    frames = [p.stem for p in frame_files(source)] if Path(source).is_dir() else None
    raw = load_ground_truth(gt, frames, log, set(model.names.as_dict()))
    mapping = ClassMap(model.names, given, source=str(gt))
    truth = map_classes(raw, mapping)
    if mapping.used:
        print(f"ground-truth classes → model: {mapping.describe()}")
    else:
        print(f"ground truth names no classes: every box counts as a '{judged_name}'")
    summary = log.summary("ground truth")
    if summary:
        print(f"physadv: warning: {summary}", file=sys.stderr)
    _check_judged_class(truth, judged_name, gt)
    notes = {"classes": mapping.as_dict(), "class_rules": {k: r for k, (_, r) in mapping.used.items()}}
    if log.total_dropped or log.clipped:
        notes["boxes"] = {**log.as_dict(), "summary": summary}  # the warning, repeated in the report
    return truth, notes
