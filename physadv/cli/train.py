"""``physadv train …``: train the models physadv attacks (the embedded ones are made this way)."""

from __future__ import annotations

from pathlib import Path

import typer

from physadv.cli.options import option
from physadv.training.segmenter_config import SegmenterTraining

app = typer.Typer(
    help="Train sign classifiers, YOLO detectors and patch segmenters (synthetic or real data).",
    no_args_is_help=True,
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
    from physadv.training.classifier import refuse_overwrite, train_classifier
    from physadv.training.robust import TrainingDefense

    if not data.is_dir():
        raise PhysadvError(f"dataset folder '{data}' not found")
    if not resume:
        refuse_overwrite(out)

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
        "pico",
        help="pico (physadv's small YOLOv8), an Ultralytics yaml, a local .pt, or default (the embedded "
        "detector) to fine-tune.",
    ),
    epochs: int = typer.Option(40),
    imgsz: int = typer.Option(320),
    batch: int = typer.Option(32),
    project: Path = typer.Option(Path("runs/train")),
    name: str = typer.Option("detector"),
    device: str = typer.Option("cpu", help="cpu, or a CUDA index such as 0."),
    resume: bool = typer.Option(False, help="Continue PROJECT/NAME from its last.pt after an interruption."),
    patch_class: bool = typer.Option(
        False,
        help="Ad-YOLO (Ji et al. 2021): put --patch images on half the people and learn them as a 'patch' "
        "class (use it with 'physadv defend --defenses adyolo:BEST.pt').",
    ),
    patch: list[Path] = typer.Option(
        [], help="--patch-class: patch images (repeat), e.g. patch.png from 'physadv patch'."
    ),
) -> None:
    """Train an Ultralytics detector offline; Ultralytics prints per-epoch progress and keeps last.pt."""
    from physadv.errors import PhysadvError
    from physadv.training.detector import train_detector

    if patch and not patch_class:
        raise PhysadvError("--patch is for --patch-class (Ad-YOLO)")
    if patch_class and not patch and not resume:
        raise PhysadvError("--patch-class needs the patches to learn: --patch patch.png ('physadv patch')")
    best = train_detector(
        data, model, epochs, imgsz, batch, project, name, device, resume, patch_class=list(patch) or None
    )
    typer.echo(f"best weights: {best}")


S = SegmenterTraining


@app.command("patch-segmenter")
def patch_segmenter(
    images: Path = typer.Option(
        ..., help="Folder of photos with people (your data, or 'physadv scene dataset --task persons')."
    ),
    patch: list[Path] = typer.Option(
        [],
        help="Patch images to put on them (repeat; e.g. patch.png from 'physadv patch'); random "
        "textures are always mixed in.",
    ),
    out: Path = typer.Option(
        Path("runs/segmenter/patch_segmenter.safetensors"), help="Segmenter file to write (+ .json summary)."
    ),
    model: str = typer.Option("default", help="A detector: its class names map the labels (or label them)."),
    classes: list[str] = typer.Option(["person"], help="Classes whose boxes the patches go on."),
    labels: str = typer.Option("auto", help="As in 'physadv patch'."),
    val: Path = typer.Option(None, help="Held-out photos (default: hold out --holdout of --images)."),
    val_labels: str = typer.Option("auto"),
    holdout: float = typer.Option(0.25, min=0.05, max=0.9),
    pseudo_conf: float = typer.Option(0.5),
    min_box: float = typer.Option(16.0),
    steps: int = option(S, "steps"),
    batch: int = option(S, "batch"),
    lr: float = option(S, "lr"),
    width: int = option(S, "width"),
    patch_share: float = option(S, "patch_share"),
    random_share: float = option(S, "random_share"),
    seed: int = option(S, "seed"),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    resume: bool = typer.Option(False, help="Continue from OUT's .ckpt.safetensors after an interruption."),
) -> None:
    """Train the patch segmenter of segment-and-complete (SAC, Liu et al. 2022) on photos of people
    wearing patches; use it with 'physadv defend --defenses sac:OUT' or 'physadv eval --defense sac:OUT'."""
    given = dict(
        steps=steps, batch=batch, lr=lr, width=width, patch_share=patch_share, random_share=random_share,
        seed=seed,
    )  # fmt: skip
    from physadv.cli.options import resolve
    from physadv.errors import PhysadvError
    from physadv.jobs.patch_data import class_names, load_train_val
    from physadv.jobs.patch_segmenter import run_patch_segmenter
    from physadv.models import load_model
    from physadv.printing.export import load_artefact_image
    from physadv.progress import steps_done

    settings = resolve(SegmenterTraining, None, given)
    if out.suffix != ".safetensors":
        raise PhysadvError(f"--out must end in .safetensors, got '{out.name}'")
    for p in patch:
        if not p.is_file():
            raise PhysadvError(f"patch image '{p}' not found")
    detector = load_model(model, task="detect", device=device)
    if detector.kind != "detector":
        raise PhysadvError(f"'{model}' is a classifier; the segmenter's photos are labelled by a detector")
    names = class_names(detector, classes)
    train_set, val_set = load_train_val(
        detector, names, images, labels, val, val_labels, holdout, pseudo_conf, min_box, settings.seed
    )
    patches = {str(p): load_artefact_image(p, (1.0, 1.0)).image for p in patch}
    summary = run_patch_segmenter(detector, train_set, val_set, patches, settings, out, resume)
    typer.echo(steps_done(summary, resume))
    for name, judged in summary["held_out"].items():
        cover = judged.get("patch_pixels_covered")
        also = "" if cover is None else f", {100 * cover:.1f} % of the patch's pixels covered"
        typer.echo(f"  {name}: alarm on {100 * judged['flagged']['rate']:.1f} % of held-out photos{also}")
    typer.echo(f"wrote {out} and {out.with_suffix('.json')}; use it: physadv defend --defenses sac:{out}")
