"""Ground truth a user brings for a recording, read and mapped to the model's classes, with what was
left out said in plain words (and kept for ``metrics.json``)."""

from __future__ import annotations

import sys
from pathlib import Path

from physadv.data.class_map import ClassMap, parse_class_map
from physadv.data.groundtruth import GroundTruth, load_ground_truth, map_classes
from physadv.data.images import frame_files
from physadv.data.label_log import LabelLog


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
        print(summary, file=sys.stderr)
    notes = {"classes": mapping.as_dict(), "class_rules": {k: r for k, (_, r) in mapping.used.items()}}
    if log.total_dropped or log.clipped:
        notes["boxes"] = log.as_dict()
    return truth, notes
