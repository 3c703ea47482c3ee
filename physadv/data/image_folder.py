"""An ImageFolder (``root/<class>/*.png``) read into memory, for training and judging classifiers."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from physadv.data.images import IMAGE_SUFFIXES, PHOTO_BACKGROUND, read_rgb8, skipped_name
from physadv.errors import PhysadvError


@dataclass
class ImageFolderData:
    """All images of an ImageFolder, resized to ``size`` and held in memory as a uint8 tensor."""

    images: torch.Tensor  # [N, 3, H, W] uint8
    labels: torch.Tensor  # [N]
    names: list[str]


def load_image_folder(
    root: str | Path, size: tuple[int, int] = (32, 32), names: list[str] | None = None
) -> ImageFolderData:
    """Read ``root/<class>/*.png|jpg`` through :func:`physadv.data.images.read_rgb8` (any bit depth,
    EXIF orientation applied, transparent pixels over grey 114); class order is sorted folder names
    (or ``names``). Unreadable files are skipped and named on stderr."""
    root = Path(root)
    if not root.is_dir():
        raise PhysadvError(f"dataset folder '{root}' not found")
    names = names or sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(names) < 2:
        raise PhysadvError(f"'{root}' needs one sub-folder per class (found {len(names)})")
    images, labels, unreadable, transparent = [], [], [], 0
    for label, name in enumerate(names):
        for path in sorted((root / name).glob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                rgb, picture = read_rgb8(path)
            except PhysadvError as exc:
                unreadable.append(skipped_name(f"{name}/{path.name}", exc))
                continue
            transparent += picture.transparent
            images.append(np.asarray(Image.fromarray(rgb).resize(size[::-1], Image.BILINEAR)))
            labels.append(label)
    if not images:
        raise PhysadvError(f"no images found under '{root}'")
    if unreadable:
        shown = ", ".join(unreadable[:5]) + (" …" if len(unreadable) > 5 else "")
        print(f"skipped {len(unreadable)} unreadable image(s) in {root}: {shown}", file=sys.stderr)
    if transparent:
        print(
            f"{transparent} image(s) in {root} have transparent pixels: composited over grey "
            f"{round(PHOTO_BACKGROUND * 255)}",
            file=sys.stderr,
        )
    return ImageFolderData(
        torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels), names
    )
