"""Ad-YOLO's training set (Ji et al. 2021): a YOLO dataset with adversarial patches put on a share of
its people and one more class, ``patch``, boxing each of them.

Each image's people each wear a patch with probability ``share`` — one patch per image, one of the
user's (turned and mirrored at random), or for ``random_share`` of the images a random texture — placed
by the patch attack's own placement and physical EOT (:mod:`physadv.training.patch_wear`: a printed
side from 200 to 600 mm on the torso plane, turned, tilted, folded, lit, through the camera). The
patch's box is the box of its four placed corners, clipped to the image. People keep their boxes, so
the detector learns to find them with a patch on. Every draw comes from a seed per image, so the set
is the same every time it is written.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from physadv.data.images import read_rgb8
from physadv.data.yolo_dataset import dataset_items
from physadv.defenses.ad_yolo import PATCH_CLASS
from physadv.errors import PhysadvError
from physadv.models.classes import ClassNames
from physadv.training.patch_wear import quad_boxes, wear_on_people
from physadv.training.segmenter import pick_patch

MIN_PATCH_PX = 2  # a patch box thinner than this (mostly out of the image) gets no label
SIZES_MM = (200.0, 600.0)  # printed sides drawn for the patches (the attack's default: 400)


def _line(cls: int, box, width: int, height: int) -> str:
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    return f"{cls} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"


def _wear(rgb: np.ndarray, people: torch.Tensor, patch: torch.Tensor, gen: torch.Generator):
    """The image with ``patch`` on each of ``people`` (``[K, 4]`` xyxy pixels), and the patches' boxes."""
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    valid = torch.ones(1, len(people), dtype=torch.bool)
    size_m = float(torch.empty(1).uniform_(*SIZES_MM, generator=gen)) / 1000
    with torch.no_grad():
        worn, quads, _ = wear_on_people(image, people[None], valid, patch, size_m, gen)
    boxes = quad_boxes(quads, rgb.shape[:2])
    array = (worn[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    return array, [b.tolist() for b in boxes if (b[2:] - b[:2]).min() >= MIN_PATCH_PX]


def write_patch_class_set(
    data: Path,
    patches: list[torch.Tensor],
    out: Path,
    share: float = 0.5,
    random_share: float = 0.25,
    seed: int = 0,
    progress: Callable[[], None] | None = None,
) -> Path:
    """Write the patched copy of dataset ``data`` under ``out`` (``<split>/images``, ``<split>/labels``,
    ``data.yaml`` with ``patch`` added to the names) and return its yaml. Images already written are
    kept (an interrupted run continues)."""
    names, splits, _ = dataset_items(data)
    if ClassNames(names).first_of(PATCH_CLASS) is not None:
        raise PhysadvError(f"dataset '{data}' already has a '{PATCH_CLASS}' class")
    person = ClassNames(names).first_of("person")
    if person is None:
        raise PhysadvError(f"dataset '{data}' has no 'person' class to put patches on")
    patch_id = max(names) + 1
    for s, (split, items) in enumerate(splits.items()):
        for k, (image, boxes) in enumerate(items):
            label = out / split / "labels" / f"{k:06d}.txt"
            if not label.is_file():  # written last: its presence means the item is complete
                gen = torch.Generator().manual_seed(seed * 10**7 + s * 10**6 + k)
                _write_item(image, boxes, person, patch_id, patches, share, random_share, gen, label)
            if progress:
                progress()
    spec = {"path": str(out.resolve()), "names": {**names, patch_id: PATCH_CLASS}}
    spec.update({split: f"{split}/images" for split in splits})
    (out / "data.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return out / "data.yaml"


def _write_item(image: Path, boxes, person, patch_id, patches, share, random_share, gen, label: Path) -> None:
    rgb, _ = read_rgb8(image)
    h, w = rgb.shape[:2]
    pixels = [(c, (x1 * w, y1 * h, x2 * w, y2 * h)) for c, (x1, y1, x2, y2) in boxes]
    lines = [_line(c, box, w, h) for c, box in pixels]
    people = torch.tensor([box for c, box in pixels if c == person], dtype=torch.float32).view(-1, 4)
    wearing = people[torch.rand(len(people), generator=gen) < share]
    target = label.parent.parent / "images" / f"{label.stem}{image.suffix.lower()}"
    target.parent.mkdir(parents=True, exist_ok=True)
    label.parent.mkdir(parents=True, exist_ok=True)
    if len(wearing):
        rgb, patch_boxes = _wear(rgb, wearing, pick_patch(patches, random_share, gen), gen)
        lines += [_line(patch_id, b, w, h) for b in patch_boxes]
        cv2.imwrite(str(target.with_suffix(".png")), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    else:  # untouched: the original bytes
        shutil.copyfile(image, target)
    label.write_text("".join(line + "\n" for line in lines))
