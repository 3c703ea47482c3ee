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
        "occlusion), distill (defensive distillation; trains EPOCHS twice), alp (adversarial logit "
        "pairing), mixed:ALPHA (Goodfellow's clean/FGSM loss, ALPHA on the clean part), msd (worst of "
        "L∞, L2, L1 PGD), denoise (feature-denoising blocks + PGD), thermometer (thermometer-encoded "
        "input + PGD through BPDA), reconstruct (MagNet's autoencoder in front of --init).",
    ),
    eps: float = typer.Option(
        8.0, min=0.0, help="L∞ budget of the training attack in 1/255 steps (all but roa, distill)."
    ),
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

    chosen = TrainingDefense.parse(defense, eps=eps / 255, temperature=temperature)
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


@app.command("detector-net")
def detector_net(
    data: Path = typer.Option(..., help="ImageFolder of clean crops, one sub-folder per class of --model."),
    out: Path = typer.Option(Path("runs/detector_net/detectors.safetensors"), help="File to write."),
    model: str = typer.Option("default", help="The classifier to guard: a classifier file or 'default'."),
    layer: str = typer.Option(None, help="Classifier layer the detector reads (default: the first ReLU)."),
    epochs: int = typer.Option(None, min=1, help="Epochs of detector training (default 20)."),
    batch: int = typer.Option(None, min=2, help="Clean crops per step (default 64)."),
    eps: float = typer.Option(8.0, min=0.0, help="L∞ budget of the PGD inputs, in 1/255 steps."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto"),
    resume: bool = typer.Option(False, help="Continue from OUT.ckpt.safetensors after an interruption."),
) -> None:
    """Train detection defenses for a classifier: Metzen et al.'s detector subnetwork on one of its
    feature maps (clean vs PGD crops, with a dynamic adversary), plus Feinman et al.'s kernel density
    and Ma et al.'s LID as baselines. Use the file with 'physadv defend --defenses
    detector-net:OUT,kd:OUT,lid:OUT'."""
    from physadv.device import select_device
    from physadv.errors import PhysadvError
    from physadv.progress import progress_bar
    from physadv.training.detector_net import DetectorNetSettings, train_detector_net

    if not data.is_dir():
        raise PhysadvError(f"dataset folder '{data}' not found")
    given = {"layer": layer, "epochs": epochs, "batch": batch, "eps": eps / 255, "seed": seed}
    settings = DetectorNetSettings().merged(given)
    with progress_bar("training detector-net", settings.epochs) as advance:
        result = train_detector_net(
            data,
            out,
            model,
            settings,
            device=select_device(device),
            resume=resume,
            on_epoch=lambda e, loss, auc: advance(status=f"loss {loss:.3f} held-out AUC {auc:.3f}"),
        )
    for key, r in result.items():
        typer.echo(
            f"{key}: held-out AUC {r['val_auc']:.3f}, flags {100 * r['val_detection_rate']:.1f} % of PGD "
            f"crops at {100 * r['val_false_alarm_rate']:.1f} % false alarms"
        )
    typer.echo(f"wrote {out}")


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
