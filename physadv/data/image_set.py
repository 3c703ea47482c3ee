"""A folder of photos with the boxes of the objects an attack works on.

Images are letterboxed once to one square canvas (``size × size``, grey 114 padding, as Ultralytics
does), so they batch without further resizing; boxes are kept in canvas pixels (xyxy). Boxes come
from YOLO-format label files (``class cx cy w h``, normalised; class ids are the model's), or, as
Thys et al. did, from the model's own clean detections ("pseudo ground truth").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from physadv.data.images import letterbox
from physadv.errors import PhysadvError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


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


def read_yolo_labels(
    path: Path, width: int, height: int, classes: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``[K, 4]`` (xyxy image pixels) of the label file's lines whose class is in ``classes``,
    and each one's index in ``classes``."""
    rows, labels = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            cls, cx, cy, w, h = int(parts[0]), *map(float, parts[1:5])
        except (ValueError, IndexError):
            raise PhysadvError(
                f"{path}:{number}: not a YOLO label line (want 'class cx cy w h'): {line.strip()!r}"
            ) from None
        if cls in classes:
            labels.append(classes.index(cls))
            rows.append(
                [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
            )
    return np.asarray(rows, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)


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
) -> tuple[ImageSet, list[str]]:
    """Read and letterbox every image in ``folder``; boxes from ``labels`` (YOLO format) or none
    (fill them with :func:`pseudo_label`). ``min_box_px``: objects whose box is shorter than this on
    its short side, in the photo's own pixels, are left out. Returns the set and the names of
    unreadable images, which are skipped."""
    paths, kept, arrays, boxes, kinds, skipped = list_images(folder), [], [], [], [], []
    scales = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if progress:
            progress()
        if bgr is None:
            skipped.append(path.name)
            continue
        canvas, scale, left, top = letterbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)
        found, kind = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        if labels is not None:
            rel = path.relative_to(folder).with_suffix(".txt")
            label_path = labels / rel
            if label_path.is_file():  # no label file: an image with no objects (Ultralytics' rule)
                found, kind = read_yolo_labels(label_path, bgr.shape[1], bgr.shape[0], classes)
        big = torch.from_numpy((found[:, 2:] - found[:, :2]).min(axis=1, initial=np.inf) >= min_box_px)
        box = torch.from_numpy(found * scale + np.array([left, top, left, top], np.float32))
        scales.append(scale)
        kept.append(path)
        arrays.append(torch.from_numpy(canvas).permute(2, 0, 1))
        boxes.append(box[big])
        kinds.append(torch.from_numpy(kind)[big])
    if not arrays:
        raise PhysadvError(f"none of the {len(paths)} images in '{folder}' could be read")
    return ImageSet(torch.stack(arrays), boxes, kinds, kept, torch.tensor(scales)), skipped


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
