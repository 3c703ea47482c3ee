"""A folder of photos with the boxes of the objects an attack works on.

Images are letterboxed once to one square canvas (``size × size``, grey 114 padding, as Ultralytics
does), so they batch without further resizing; boxes are kept in canvas pixels (xyxy). Boxes come
from YOLO-format label files (``class cx cy w h``, normalised, checked line by line; class ids are
mapped to the model's through the label set's names), or, as Thys et al. did, from the model's own
clean detections ("pseudo ground truth").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from physadv.data.class_map import ClassMap
from physadv.data.images import IMAGE_SUFFIXES, PHOTO_BACKGROUND, letterbox, read_rgb8, skipped_name
from physadv.data.label_log import LabelLog
from physadv.data.yolo_labels import read_yolo_file
from physadv.errors import PhysadvError


@dataclass
class ImageSet:
    """Letterboxed images and their object boxes.

    Attributes:
        images: ``[N, 3, S, S]`` uint8 RGB (kept as bytes: a few hundred photos fit in memory).
        boxes: N tensors ``[K_i, 4]`` xyxy canvas pixels of the objects to attack (K_i may be 0).
        labels: N tensors ``[K_i]``: which of the attacked classes each object is (an index into
            the attack's class list, not a model's class id).
        paths: where each image came from.
        scales: ``[N]`` canvas pixels per photo pixel of each image (None: not known).
    """

    images: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    paths: list[Path]
    scales: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: list[int]) -> ImageSet:
        return ImageSet(
            self.images[index],
            [self.boxes[i] for i in index],
            [self.labels[i] for i in index],
            [self.paths[i] for i in index],
            None if self.scales is None else self.scales[index],
        )

    def with_objects(self) -> ImageSet:
        """Only the images that hold at least one object."""
        return self.subset([i for i, b in enumerate(self.boxes) if len(b)])

    @property
    def objects(self) -> int:
        return sum(len(b) for b in self.boxes)

    def batch(self, index: list[int], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Float images ``[B, 3, S, S]`` in [0, 1], boxes padded to ``[B, K, 4]`` and a ``[B, K]``
        mask of the real ones."""
        images = self.images[index].to(device).float() / 255
        k = max(1, max(len(self.boxes[i]) for i in index))
        boxes = torch.zeros(len(index), k, 4)
        valid = torch.zeros(len(index), k, dtype=torch.bool)
        for row, i in enumerate(index):
            n = len(self.boxes[i])
            boxes[row, :n], valid[row, :n] = self.boxes[i], True
        return images, boxes.to(device), valid.to(device)


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise PhysadvError(f"image folder '{folder}' not found")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise PhysadvError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in '{folder}'")
    return paths


@dataclass
class SetReport:
    """What reading an image set left out or changed, and why."""

    unreadable: list[str] = field(default_factory=list)  # image file names
    transparent: int = 0  # images with transparent pixels, composited over grey
    labels: LabelLog = field(default_factory=LabelLog)  # bad label lines
    other_classes: int = 0  # labelled objects of classes not attacked
    small: int = 0  # objects under the minimum box size

    def lines(self, folder: Path) -> list[str]:
        """Plain-words lines for the user (nothing when nothing was left out)."""
        out = []
        if self.unreadable:
            shown = ", ".join(self.unreadable[:5]) + (" …" if len(self.unreadable) > 5 else "")
            out.append(f"skipped {len(self.unreadable)} unreadable image(s) in {folder}: {shown}")
        if self.transparent:
            out.append(
                f"{self.transparent} image(s) have transparent pixels: composited over grey "
                f"{round(PHOTO_BACKGROUND * 255)}"
            )
        summary = self.labels.summary("label lines")
        if summary:
            out.append(summary)
        if self.small:
            out.append(f"{self.small} labelled object(s) left out: smaller than --min-box")
        return out

    def as_dict(self) -> dict:
        return {
            "unreadable_images": self.unreadable,
            "transparent_images": self.transparent,
            "label_lines": self.labels.as_dict(),
            "objects_of_other_classes": self.other_classes,
            "objects_under_min_box": self.small,
        }


def label_boxes(
    path: Path, width: int, height: int, classes: list[int], class_map: ClassMap | None, log: LabelLog
) -> tuple[np.ndarray, np.ndarray, int]:
    """Boxes ``[K, 4]`` (xyxy image pixels) of a label file's checked lines whose class maps to one of
    ``classes`` (model ids), each one's index in ``classes``, and how many boxes were of other classes.
    Label ids are mapped to the model's through ``class_map`` (by name; see :mod:`physadv.data.class_map`;
    None: the ids are the model's)."""
    rows, kinds, other = [], [], 0
    known = None if class_map is None else class_map.label_ids()
    for label_id, (x1, y1, x2, y2) in read_yolo_file(path, log, known):
        model_id = label_id if class_map is None else class_map.model_id(label_id)
        if model_id not in classes:
            other += 1
            continue
        kinds.append(classes.index(model_id))
        rows.append([x1 * width, y1 * height, x2 * width, y2 * height])
    return np.asarray(rows, np.float32).reshape(-1, 4), np.asarray(kinds, np.int64), other


def label_folder_for(images: Path) -> Path | None:
    """Ultralytics' convention: ``…/images/<split>`` has its labels in ``…/labels/<split>``."""
    parts = list(images.resolve().parts)
    if "images" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("images")
    candidate = Path(*parts[:i], "labels", *parts[i + 1 :])
    return candidate if candidate.is_dir() else None


def load_image_set(
    folder: Path,
    size: int,
    classes: list[int],
    labels: Path | None,
    min_box_px: float = 0.0,
    progress=None,
    class_map: ClassMap | None = None,
) -> tuple[ImageSet, SetReport]:
    """Read (:func:`physadv.data.images.read_rgb8`) and letterbox every image in ``folder``; boxes of
    the model classes ``classes`` from ``labels`` (YOLO format, read line by line with
    :func:`physadv.data.yolo_labels.read_yolo_file`, ids mapped by ``class_map``, default: the label
    ids are the model's) or none (fill them with :func:`pseudo_label`). ``min_box_px``: objects whose
    box is shorter than this on its short side, in the photo's own pixels, are left out. Unreadable
    images and bad label lines are left out and counted in the returned :class:`SetReport`."""
    paths, kept, arrays, boxes, kinds, scales = list_images(folder), [], [], [], [], []
    report = SetReport()
    for path in paths:
        if progress:
            progress()
        try:
            rgb, picture = read_rgb8(path)
        except PhysadvError as exc:
            report.unreadable.append(skipped_name(path.name, exc))
            continue
        report.transparent += picture.transparent
        canvas, scale, left, top = letterbox(rgb, size)
        found, kind = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        if labels is not None:
            label_path = labels / path.relative_to(folder).with_suffix(".txt")
            if label_path.is_file():  # no label file: an image with no objects (Ultralytics' rule)
                found, kind, other = label_boxes(
                    label_path, rgb.shape[1], rgb.shape[0], classes, class_map, report.labels
                )
                report.other_classes += other
        # --min-box is in the photo's own pixels, whatever the canvas (issue 22.2)
        big = torch.from_numpy((found[:, 2:] - found[:, :2]).min(axis=1, initial=np.inf) >= min_box_px)
        box = torch.from_numpy(found * scale + np.array([left, top, left, top], np.float32))
        scales.append(scale)
        report.small += int((~big).sum())
        kept.append(path)
        arrays.append(torch.from_numpy(canvas).permute(2, 0, 1))
        boxes.append(box[big])
        kinds.append(torch.from_numpy(kind)[big])
    if not arrays:
        raise PhysadvError(f"none of the {len(paths)} images in '{folder}' could be read")
    return ImageSet(torch.stack(arrays), boxes, kinds, kept, torch.tensor(scales)), report


@torch.no_grad()
def pseudo_label(
    image_set: ImageSet, detector, classes: list[int], conf: float, min_box_px: float, batch: int = 16
) -> ImageSet:
    """Thys et al.'s ground truth: the model's own clean detections of ``classes`` at ``conf``, those
    shorter than ``min_box_px`` photo pixels on their short side left out."""
    boxes, kinds = [], []
    wanted = torch.tensor(classes)
    for start in range(0, len(image_set), batch):
        index = list(range(start, min(start + batch, len(image_set))))
        images, _, _ = image_set.batch(index, detector.device)
        for i, d in zip(index, detector.predict(images, conf=conf), strict=True):
            labels, box = d.labels.cpu(), d.boxes.cpu()
            scale = 1.0 if image_set.scales is None else float(image_set.scales[i])
            keep = torch.isin(labels, wanted) & ((box[:, 2:] - box[:, :2]).amin(dim=1) / scale >= min_box_px)
            boxes.append(box[keep])
            kinds.append((labels[keep][:, None] == wanted[None]).long().argmax(dim=1))
    return ImageSet(image_set.images, boxes, kinds, image_set.paths, image_set.scales)


def split(image_set: ImageSet, holdout: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """A random ``holdout`` fraction as the held-out set (at least one image each side)."""
    if len(image_set) < 2:
        raise PhysadvError("need at least 2 images to hold some out (or give --val)")
    order = np.random.default_rng(seed).permutation(len(image_set)).tolist()
    n_val = min(len(image_set) - 1, max(1, round(holdout * len(image_set))))
    return image_set.subset(sorted(order[n_val:])), image_set.subset(sorted(order[:n_val]))
