"""``physadv train …``: train the models physadv attacks (the embedded ones are made this way)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Train sign classifiers and YOLO detectors (synthetic or real data).", no_args_is_help=True
)


@app.command("classifier")
def classifier(
    data: Path = typer.Option(
        ..., help="ImageFolder: one sub-folder of images per class (GTSRB, LISA, synthetic)."
    ),
    out: Path = typer.Option(Path("runs/classifier/sign_classifier.safetensors"), help="Weights to write."),
    arch: str = typer.Option("lisa_cnn", help="lisa_cnn or gtsrb_cnn."),
    epochs: int = typer.Option(20),
    batch: int = typer.Option(128),
    lr: float = typer.Option(1e-3),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto"),
    resume: bool = typer.Option(False, help="Continue from OUT.ckpt.safetensors after an interruption."),
    defense: str = typer.Option(
        "none",
        help="none, pgd (PGD adversarial training), fast (FGSM with a random start), roa (rectangular "
        "occlusion), distill (defensive distillation; trains EPOCHS twice).",
    ),
    eps: float = typer.Option(8.0, min=0.0, help="pgd, fast: L∞ budget in 1/255 steps."),
    temperature: float = typer.Option(20.0, min=1.0, help="distill: the temperature T."),
    init: str = typer.Option(
        None, help="Start from these weights (a classifier file or 'default'): fine-tune."
    ),
) -> None:
    """Train a sign classifier, optionally with a trained defense; a checkpoint is kept after
    every epoch. Measure the result with 'physadv baselines --model OUT'."""
    from physadv.device import select_device
    from physadv.errors import PhysadvError
    from physadv.progress import progress_bar
    from physadv.training.classifier import train_classifier
    from physadv.training.robust import TrainingDefense

    if not data.is_dir():
        raise PhysadvError(f"dataset folder '{data}' not found")

    chosen = TrainingDefense(defense, eps / 255, temperature)
    with progress_bar(f"training {arch} ({defense})", epochs * chosen.phases) as advance:
        result = train_classifier(
            data,
            out,
            arch,
            epochs,
            batch,
            lr,
            seed=seed,
            device=select_device(device),
            resume=resume,
            on_epoch=lambda e, loss, acc: advance(status=f"loss {loss:.3f} val {acc:.3f}"),
            defense=chosen,
            init=init,
        )
    typer.echo(f"wrote {out}: {result['classes']} classes, held-out accuracy {result['val_accuracy']:.4f}")


@app.command("detector")
def detector(
    data: Path = typer.Option(None, help="Ultralytics dataset yaml (YOLO format)."),
    model: str = typer.Option(
        "pico", help="pico (physadv's small YOLOv8), an Ultralytics yaml, or a local .pt."
    ),
    epochs: int = typer.Option(40),
    imgsz: int = typer.Option(320),
    batch: int = typer.Option(32),
    project: Path = typer.Option(Path("runs/train")),
    name: str = typer.Option("detector"),
    device: str = typer.Option("cpu", help="cpu, or a CUDA index such as 0."),
    resume: bool = typer.Option(False, help="Continue PROJECT/NAME from its last.pt after an interruption."),
) -> None:
    """Train an Ultralytics detector offline; Ultralytics prints per-epoch progress and keeps last.pt."""
    from physadv.training.detector import train_detector

    best = train_detector(data, model, epochs, imgsz, batch, project, name, device, resume)
    typer.echo(f"best weights: {best}")
