"""An Ultralytics dataset (``data.yaml`` with ``train``/``val``/``test`` image folders or lists, and
YOLO labels beside them) checked line by line before Ultralytics trains on it.

Ultralytics drops a whole image for one bad label line ("2 corrupt", reason in a warning that is easy
to miss). physadv reads every label file with :func:`~physadv.data.yolo_labels.read_yolo_file`
first: a bad line costs one box, a small overshoot is clipped, and each is named with its
``file:line``. When anything had to change, training runs on a checked copy: the images linked (or
copied where links are not allowed), the labels rewritten, a ``data.yaml`` pointing there; the
user's dataset is never modified.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from physadv.data.images import truncation
from physadv.data.label_log import LabelLog
from physadv.data.yolo_labels import NormBox, read_yolo_file
from physadv.errors import PhysadvError

SPLITS = ("train", "val", "test")


@dataclass
class CheckedDataset:
    """The dataset yaml to train on, and what checking its labels found."""

    data: Path
    log: LabelLog = field(default_factory=LabelLog)
    images: int = 0
    copied: bool = False  # training uses a checked copy
    truncated: list[str] = field(default_factory=list)  # image files cut short: left out of the copy

    def lines(self) -> list[str]:
        """What checking changed, in plain words (nothing when the dataset is used as it is)."""
        out = [self.log.summary(f"labels of {self.images} images")]
        if self.truncated:
            shown = ", ".join(self.truncated[:5]) + (" …" if len(self.truncated) > 5 else "")
            out.append(f"left out {len(self.truncated)} truncated image(s): {shown}")
        return [line for line in out if line]


def _image_files(source: str | list[str]) -> list[Path]:
    """Image files of a split as Ultralytics lists them: folders (recursively), or text files of paths
    (``./x`` relative to the text file)."""
    from ultralytics.data.utils import IMG_FORMATS

    files = []
    for item in source if isinstance(source, list) else [source]:
        path = Path(item)
        if path.is_dir():
            files += [p for p in path.rglob("*.*") if p.is_file()]
        elif path.is_file():
            lines = path.read_text(encoding="utf-8-sig").strip().splitlines()
            files += [
                Path(str(path.parent) + os.sep + x[2:]) if x.startswith("./") else Path(x) for x in lines
            ]
    return sorted(p for p in files if p.suffix[1:].lower() in IMG_FORMATS)


def _label_line(cls: int, box: NormBox) -> str:
    x1, y1, x2, y2 = box
    return f"{cls} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}"


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    try:
        target.symlink_to(source.resolve())
    except OSError:  # no symlinks here (Windows without the right): copy
        shutil.copy2(source, target)


def check_dataset(data: Path, work: Path) -> CheckedDataset:
    """Check every label file of the dataset ``data`` and every image for truncation; return the yaml
    to train on (``data`` itself when all was fine, else a checked copy written under ``work``, without
    the truncated images).

    Raises:
        PhysadvError: the yaml cannot be read or its image folders do not exist (one line).
    """
    from ultralytics.data.utils import check_det_dataset, img2label_paths

    try:
        info = check_det_dataset(str(data), autodownload=False)
    except Exception as exc:  # Ultralytics raises plain exceptions with a readable message
        message = " ".join(str(exc).split())
        raise PhysadvError(f"dataset '{data}': {message}") from None
    names = {int(k): v for k, v in info["names"].items()}
    result, cleaned = CheckedDataset(Path(data)), {}
    for split in SPLITS:
        if not info.get(split):
            continue
        for image in _image_files(info[split]):
            result.images += 1
            if truncation(image):  # Ultralytics would try to "restore" it, or train on a half-grey picture
                result.truncated.append(f"{split}/{image.name}")
                continue
            label = Path(img2label_paths([image])[0])
            cleaned[(split, image)] = read_yolo_file(label, result.log, set(names)) if label.is_file() else []
    if not result.log.total_dropped and not result.log.clipped and not result.truncated:
        return result
    result.data, result.copied = _write_copy(work, info, names, cleaned), True
    return result


def _write_copy(work: Path, info: dict, names: dict[int, str], cleaned: dict) -> Path:
    """The checked copy: ``work/<split>/images`` (links), ``work/<split>/labels`` and ``work/data.yaml``."""
    roots = {split: _split_root(info[split]) for split in SPLITS if info.get(split)}
    for (split, image), boxes in cleaned.items():
        root = roots[split]
        relative = image.relative_to(root) if root and image.is_relative_to(root) else Path(image.name)
        _link(image, work / split / "images" / relative)
        label = (work / split / "labels" / relative).with_suffix(".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(_label_line(c, b) + "\n" for c, b in boxes))
    data = {"path": str(work.resolve()), "names": names}
    data.update({split: f"{split}/images" for split in roots})
    (work / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return work / "data.yaml"


def _split_root(source) -> Path | None:
    """The folder a split's images are listed under (relative paths in the copy keep sub-folders)."""
    items = source if isinstance(source, list) else [source]
    return Path(items[0]) if len(items) == 1 and Path(items[0]).is_dir() else None


def dataset_items(data: Path) -> tuple[dict[int, str], dict[str, list[tuple[Path, list]]], LabelLog]:
    """A dataset's class names and, per split, each image with its checked boxes (``(class id,
    normalised xyxy)``; bad lines dropped and counted in the returned log) — for jobs that derive a
    new dataset from it.

    Raises:
        PhysadvError: the yaml cannot be read or its image folders do not exist (one line).
    """
    from ultralytics.data.utils import check_det_dataset, img2label_paths

    try:
        info = check_det_dataset(str(data), autodownload=False)
    except Exception as exc:  # Ultralytics raises plain exceptions with a readable message
        raise PhysadvError(f"dataset '{data}': {' '.join(str(exc).split())}") from None
    names = {int(k): v for k, v in info["names"].items()}
    log, splits = LabelLog(), {}
    for split in SPLITS:
        if info.get(split):
            splits[split] = []
            for image in _image_files(info[split]):
                label = Path(img2label_paths([image])[0])
                boxes = read_yolo_file(label, log, set(names)) if label.is_file() else []
                splits[split].append((image, boxes))
    return names, splits, log
