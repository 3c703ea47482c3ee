"""Train a sign classifier (LISA-CNN or GTSRB-CNN) on an ImageFolder, with checkpoints and resume.

Works on physadv's synthetic set and on real GTSRB/LISA crops arranged one folder per class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from physadv.errors import PhysadvError
from physadv.models.architectures import build_architecture
from physadv.models.loading import save_classifier

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp"}
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


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


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Light photometric and geometric jitter on ``[B, 3, H, W]`` floats (crops are already varied)."""
    b = x.shape[0]
    gain = 1 + 0.2 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)
    x = (x * gain).clamp(0, 1)
    shift = (torch.rand(b, 2, generator=generator) - 0.5) * 0.12
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: ImageFolderData, device: torch.device, batch: int = 512) -> float:
    """Top-1 accuracy of a raw module on normalised inputs."""
    model.eval()
    correct = 0
    for i in range(0, len(data.labels), batch):
        x = (data.images[i : i + batch].float().to(device) / 255 - MEAN[0]) / STD[0]
        correct += int((model(x).argmax(1).cpu() == data.labels[i : i + batch]).sum())
    return correct / len(data.labels)


def train_classifier(
    data_dir: str | Path,
    out: str | Path,
    architecture: str = "lisa_cnn",
    epochs: int = 20,
    batch: int = 128,
    lr: float = 1e-3,
    val_fraction: float = 0.1,
    seed: int = 0,
    device: torch.device | str = "cpu",
    resume: bool = False,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> dict:
    """Train and save ``out`` (safetensors, names and normalisation inside). A checkpoint
    ``out.ckpt`` is written after every epoch; ``resume`` continues from it."""
    device = torch.device(device)
    out = Path(out)
    data = load_image_folder(data_dir)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data.labels), generator=g)
    n_val = max(1, int(len(order) * val_fraction))
    val = ImageFolderData(data.images[order[:n_val]], data.labels[order[:n_val]], data.names)
    train = ImageFolderData(data.images[order[n_val:]], data.labels[order[n_val:]], data.names)
    model = build_architecture(architecture, len(data.names)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    start, ckpt_path = 0, out.with_suffix(".ckpt")
    if resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt["names"] != data.names or ckpt["architecture"] != architecture:
            raise PhysadvError(f"checkpoint '{ckpt_path}' was made for other classes or another architecture")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start, g = ckpt["epoch"] + 1, ckpt["generator"]
    val_acc = evaluate(model, val, device) if start >= epochs else 0.0
    for epoch in range(start, epochs):
        model.train()
        perm = torch.randperm(len(train.labels), generator=g)
        total = 0.0
        for i in range(0, len(perm), batch):
            idx = perm[i : i + batch]
            x = _augment(train.images[idx].float() / 255, g).to(device)
            loss = F.cross_entropy(model((x - MEAN[0]) / STD[0]), train.labels[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        val_acc = evaluate(model, val, device)
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "epoch": epoch,
                "generator": g,
                "names": data.names,
                "architecture": architecture,
            },
            ckpt_path,
        )
        if on_epoch:
            on_epoch(epoch, total / len(perm), val_acc)
    save_classifier(
        model.cpu(),
        out,
        architecture,
        data.names,
        mean=MEAN,
        std=STD,
        extra={"val_accuracy": val_acc, "epochs": epochs, "trained_on": str(data_dir)},
    )
    return {"val_accuracy": val_acc, "classes": len(data.names), "train_images": len(train.labels)}
