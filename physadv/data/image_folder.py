"""An ImageFolder (``root/<class>/*.png``) read into memory, for training and judging classifiers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from physadv.errors import PhysadvError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp"}


@dataclass
class ImageFolderData:
    """All images of an ImageFolder, resized to ``size`` and held in memory as a uint8 tensor."""

    images: torch.Tensor  # [N, 3, H, W] uint8
    labels: torch.Tensor  # [N]
    names: list[str]


def load_image_folder(
    root: str | Path, size: tuple[int, int] = (32, 32), names: list[str] | None = None
) -> ImageFolderData:
    """Read ``root/<class>/*.png|jpg``; class order is sorted folder names (or ``names``)."""
    root = Path(root)
    if not root.is_dir():
        raise PhysadvError(f"dataset folder '{root}' not found")
    names = names or sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(names) < 2:
        raise PhysadvError(f"'{root}' needs one sub-folder per class (found {len(names)})")
    images, labels = [], []
    for label, name in enumerate(names):
        for path in sorted((root / name).glob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                img = Image.open(path).convert("RGB").resize(size[::-1], Image.BILINEAR)
            except OSError as exc:
                raise PhysadvError(f"cannot read image '{path}': {exc}") from None
            images.append(np.asarray(img))
            labels.append(label)
    if not images:
        raise PhysadvError(f"no images found under '{root}'")
    return ImageFolderData(
        torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels), names
    )
