"""Train a sign classifier (LISA-CNN or GTSRB-CNN) on an ImageFolder, with checkpoints and resume.

Works on physadv's synthetic set and on real GTSRB/LISA crops arranged one folder per class.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from physadv.data.image_folder import ImageFolderData, load_image_folder
from physadv.errors import PhysadvError
from physadv.models.architectures import build_architecture
from physadv.models.loading import save_classifier
from physadv.statefile import load_state, save_state
from physadv.training.robust import TrainingDefense

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


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


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - MEAN[0]) / STD[0]


def _teacher(architecture: str, classes: int, state: dict, device) -> torch.nn.Module:
    teacher = build_architecture(architecture, classes).to(device)
    teacher.load_state_dict(state)
    return teacher.eval().requires_grad_(False)


def _initial_weights(init: str | None, architecture: str, names: list[str]) -> dict | None:
    """The state dict to start from (``None``: random), checked against the architecture and classes."""
    if init is None:
        return None
    from physadv.models import load_model

    start = load_model(init, task="classify", device="cpu")
    if start.kind != "classifier":
        raise PhysadvError(f"--init '{init}' is not a classifier")
    if [start.names[i] for i in range(len(start.names))] != list(names):
        raise PhysadvError(f"--init '{init}' has other classes than the data (or in another order)")
    state = start.module.state_dict()
    probe = build_architecture(architecture, len(names))
    try:
        probe.load_state_dict(state)
    except RuntimeError:
        raise PhysadvError(f"--init '{init}' is not a {architecture} (choose its --arch)") from None
    return state


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
    defense: TrainingDefense | None = None,
    init: str | None = None,
) -> dict:
    """Train and save ``out`` (safetensors, names and normalisation inside). A checkpoint
    ``out.ckpt.safetensors`` (no pickle: ``physadv.statefile``) is written after every epoch;
    ``resume`` continues from it.

    ``defense``: a trained defense (:mod:`physadv.training.robust`; distillation runs ``epochs``
    twice, teacher then student). ``init``: start from these weights (a classifier file or
    ``"default"``) instead of random ones — fine-tuning."""
    defense = defense or TrainingDefense()
    device = torch.device(device)
    out = Path(out)
    data = load_image_folder(data_dir)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data.labels), generator=g)
    n_val = max(1, int(len(order) * val_fraction))
    val = ImageFolderData(data.images[order[:n_val]], data.labels[order[:n_val]], data.names)
    train = ImageFolderData(data.images[order[n_val:]], data.labels[order[n_val:]], data.names)
    first = _initial_weights(init, architecture, data.names)

    def fresh():
        model = build_architecture(architecture, len(data.names)).to(device)
        if first is not None:
            model.load_state_dict(first)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        return model, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)

    model, opt, sched = fresh()
    teacher = None
    start, ckpt_path = 0, out.with_suffix(".ckpt.safetensors")
    if resume and ckpt_path.is_file():
        ckpt = load_state(ckpt_path, "training checkpoint")
        if (ckpt["names"], ckpt["architecture"], ckpt.get("defense")) != (
            data.names,
            architecture,
            defense.name,
        ):
            raise PhysadvError(
                f"checkpoint '{ckpt_path}' was made for other classes, another architecture or defense"
            )
        if ckpt.get("teacher") is not None:
            teacher = _teacher(architecture, len(data.names), ckpt["teacher"], device)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start = ckpt["epoch"] + 1
        g.set_state(ckpt["generator"])
    total_epochs = epochs * defense.phases
    val_acc = evaluate(model, val, device) if start >= total_epochs else 0.0
    for epoch in range(start, total_epochs):
        if defense.name == "distill" and epoch == epochs:  # the teacher is trained: a fresh student
            teacher = _teacher(architecture, len(data.names), model.state_dict(), device)
            model, opt, sched = fresh()
        model.train()
        perm = torch.randperm(len(train.labels), generator=g)
        total = 0.0
        for i in range(0, len(perm), batch):
            idx = perm[i : i + batch]
            x = _augment(train.images[idx].float() / 255, g).to(device)
            loss = defense.loss(model, _normalise, x, train.labels[idx].to(device), teacher, g)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        val_acc = evaluate(model, val, device)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_state(
            ckpt_path,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "epoch": epoch,
                "generator": g.get_state(),
                "names": data.names,
                "architecture": architecture,
                "defense": defense.name,
                "teacher": None if teacher is None else teacher.state_dict(),
            },
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
        extra={
            "val_accuracy": val_acc,
            "epochs": epochs,
            "trained_on": str(data_dir),
            "defense": defense.name,
            "eps": defense.eps if defense.name in ("pgd", "fast") else None,
            "temperature": defense.temperature if defense.name == "distill" else None,
            "init": init,
        },
    )
    return {"val_accuracy": val_acc, "classes": len(data.names), "train_images": len(train.labels)}
