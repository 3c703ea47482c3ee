"""Madry et al. (2018)'s capacity study on the embedded signs: the same architecture (LISA-CNN at
width scale K: 8K, 16K, 16K channels; K = 8 is LISA-CNN) trained from scratch at growing width,
naturally and with PGD, then judged on clean, FGSM and PGD crops (``physadv baselines --capacity``).

Madry et al. found on MNIST and CIFAR-10 that capacity alone raises robustness a little, that PGD
training needs capacity (a small network trained with PGD loses its clean accuracy too), and that
wider networks gain most from it. Trained models are kept (``<out>/capacity/``) with their
checkpoints: a run continues where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from physadv.config import Settings, setting
from physadv.harness.robustness import labelled_crops, robustness_rows
from physadv.report.capacity import plot_capacity, write_capacity
from physadv.training.classifier import train_classifier
from physadv.training.robust import TrainingDefense


@dataclass
class CapacityStudy(Settings):
    """The study's settings (defaults: the run measured in docs/defenses.md)."""

    widths: tuple[int, ...] = setting((1, 2, 4, 8), "width scales K (8K, 16K, 16K channels; 8 is LISA-CNN)")
    epochs: int = setting(20, "training epochs per model, from scratch", minimum=1)
    batch: int = setting(64, "training batch", minimum=1)
    lr: float = setting(1e-3, "Adam learning rate", minimum=0)
    eps: float = setting(8 / 255, "L∞ budget of PGD training and of the FGSM and PGD judges", minimum=0)
    seed: int = setting(0, "training seed")


def run_capacity(
    study: CapacityStudy,
    train_data: Path,
    eval_data: Path,
    out: Path,
    device: torch.device | str = "cpu",
    progress: Callable | None = None,
) -> tuple[list[dict], str]:
    """Train (or reuse) one model per width and training, judge each, write the table and plot."""
    folder = out / "capacity"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for width in study.widths:
        for training in ("none", "pgd"):
            path = folder / f"lisa_cnn_w{width}_{training}.safetensors"
            seconds = None
            if not path.is_file():
                start = time.perf_counter()
                defense = TrainingDefense(training, study.eps)
                train_classifier(
                    train_data, path, f"lisa_cnn_w{width}", study.epochs, study.batch, study.lr,
                    seed=study.seed, device=device, resume=True, defense=defense,
                )  # fmt: skip
                seconds = round(time.perf_counter() - start, 1)
            rows.append(_judge(path, width, training, seconds, eval_data, study, device))
            write_capacity(rows, out, TITLE, _intro(study))  # a crash keeps what was done
            if progress:
                progress(1, f"width {width} {training}")
    plot_capacity(rows, out / "capacity.png", 255 * study.eps)
    return rows, write_capacity(rows, out, TITLE, _intro(study))


TITLE = "Capacity and adversarial robustness (Madry et al. 2018) on the embedded signs"


def _intro(study: CapacityStudy) -> str:
    return (
        f"LISA-CNN at width scale K (8K, 16K, 16K channels; K = 8 is LISA-CNN), trained from scratch "
        f"for {study.epochs} epochs naturally or with PGD (7 steps, ε = {255 * study.eps:g}/255); top-1 "
        "accuracy on clean crops and under FGSM and PGD (10 steps) at the same ε, 95 % Wilson intervals."
    )


def _judge(path: Path, width: int, training: str, seconds, eval_data: Path, study, device) -> dict:
    from physadv.models import load_model

    model = load_model(path, task="classify", device=device)
    images, labels = labelled_crops(eval_data, model)
    rows = robustness_rows(model, images, labels, study.eps, ("fgsm", "pgd"), seed=study.seed)
    result = {r["attack"]: r["accuracy"] for r in rows}
    parameters = sum(p.numel() for p in model.module.parameters())
    return {"width": width, "training": training, "parameters": parameters, "train_seconds": seconds} | result
