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
from physadv.models.robust_nets import from_base
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


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - MEAN[0]) / STD[0]


def _pixels(x: torch.Tensor) -> torch.Tensor:
    return x


def takes_pixels(model: torch.nn.Module) -> bool:
    """Whether ``model`` takes RGB in [0, 1] (a defense layer in front) rather than normalised input."""
    return bool(getattr(model, "takes_pixels", False))


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: ImageFolderData, device: torch.device, batch: int = 512) -> float:
    """Top-1 accuracy of a raw module (inputs normalised unless it takes pixels)."""
    model.eval()
    normalise = _pixels if takes_pixels(model) else _normalise
    correct = 0
    for i in range(0, len(data.labels), batch):
        x = normalise(data.images[i : i + batch].float().to(device) / 255)
        correct += int((model(x).argmax(1).cpu() == data.labels[i : i + batch]).sum())
    return correct / len(data.labels)


def _teacher(architecture: str, classes: int, state: dict, device) -> torch.nn.Module:
    teacher = build_architecture(architecture, classes).to(device)
    teacher.load_state_dict(state)
    return teacher.eval().requires_grad_(False)


def _initial_weights(init: str | None, architecture: str, names: list[str]) -> dict | None:
    """The state dict to start from (``None``: random), checked against the architecture and classes:
    the same architecture, or its base where a defense adds layers (``lisa_cnn`` for
    ``lisa_cnn+denoise``; :func:`physadv.models.robust_nets.from_base` maps the weights)."""
    if init is None:
        return None
    from physadv.models import load_model

    start = load_model(init, task="classify", device="cpu")
    if start.kind != "classifier":
        raise PhysadvError(f"--init '{init}' is not a classifier")
    if [start.names[i] for i in range(len(start.names))] != list(names):
        raise PhysadvError(f"--init '{init}' has other classes than the data (or in another order)")
    state = dict(start.module.state_dict())
    probe = build_architecture(architecture, len(names))
    if set(state) != set(probe.state_dict()):
        state = from_base(probe, state, start.mean, start.std)
    try:
        start_from(probe, state)
    except RuntimeError:
        raise PhysadvError(f"--init '{init}' is not a {architecture} (choose its --arch)") from None
    return state


def start_from(model: torch.nn.Module, state: dict) -> None:
    """Load ``state`` into ``model``: all of it, or (weights of its base, mapped by ``from_base``)
    everything but the defense's own layers, which keep their fresh values.

    Raises:
        RuntimeError: ``state`` does not fit.
    """
    own = model.state_dict()
    if set(state) == set(own):
        model.load_state_dict(state)
        return
    if not state or any(k not in own or own[k].shape != v.shape for k, v in state.items()):
        raise RuntimeError("the weights are not of this architecture or its base")
    fresh = {k.split(".")[0] for k in own if k not in state}
    if not fresh <= {"denoise", "autoencoder"}:
        raise RuntimeError("the weights are not of this architecture or its base")
    model.load_state_dict(state, strict=False)


def refuse_overwrite(out: Path) -> None:
    """Refuse a run without resume into ``out`` while its checkpoint ``out.ckpt.safetensors`` exists:
    it would start at epoch 0 and overwrite that checkpoint after its first epoch (a finished run keeps
    its checkpoint, and counts the same).

    Raises:
        PhysadvError: one line naming the checkpoint's epoch and what to do.
    """
    ckpt_path = Path(out).with_suffix(".ckpt.safetensors")
    if ckpt_path.is_file():
        done = load_state(ckpt_path, "training checkpoint").get("epoch", -1) + 1
        raise PhysadvError(
            f"'{ckpt_path}' holds a checkpoint at epoch {done} of this command: add --resume to continue "
            "it, or choose another --out"
        )


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
    twice, teacher then student; ``denoise``, ``thermometer`` and ``reconstruct`` train
    ``architecture`` with their layers built in). ``init``: start from these weights (a classifier
    file or ``"default"``) instead of random ones — fine-tuning; required by ``reconstruct``, whose
    classifier stays as it is.

    Raises:
        PhysadvError: unreadable data, an ``init`` of other classes or architecture, a checkpoint
            made for another run, ``reconstruct`` without ``init``."""
    defense = defense or TrainingDefense()
    if defense.name == "reconstruct" and init is None:
        raise PhysadvError(
            "reconstruct trains an autoencoder in front of a trained classifier: give it with --init "
            "(e.g. --init default)"
        )
    architecture = defense.architecture(architecture)
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
        model = build_architecture(architecture, len(data.names))
        if first is not None:
            start_from(model, first)
        model = model.to(device)
        opt = torch.optim.Adam(defense.trainable(model), lr=lr)
        return model, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)

    model, opt, sched = fresh()
    normalise = _pixels if takes_pixels(model) else _normalise
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
            loss = defense.loss(model, normalise, x, train.labels[idx].to(device), teacher, g)
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
    pixels = takes_pixels(model)
    save_classifier(
        model.cpu(),
        out,
        architecture,
        data.names,
        mean=None if pixels else MEAN,
        std=None if pixels else STD,
        extra={
            "val_accuracy": val_acc,
            "epochs": epochs,
            "trained_on": str(data_dir),
            "defense": defense.name,
            "eps": defense.eps if defense.name in ("pgd", "fast") else None,
            "temperature": defense.temperature if defense.name == "distill" else None,
            "defense_settings": defense.record(),
            "init": init,
        },
    )
    return {"val_accuracy": val_acc, "classes": len(data.names), "train_images": len(train.labels)}
