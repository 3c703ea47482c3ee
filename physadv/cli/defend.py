"""``physadv defend``: what input-transform and patch-smoothing defenses do against a person patch,
measured clean, against the given patch (non-adaptive) and against a patch re-made through each
defense (adaptive)."""

from __future__ import annotations

from pathlib import Path

import typer

from physadv.errors import PhysadvError


def defend(
    out: Path = typer.Option(
        ..., help="Output folder: defenses.md/.csv/.json, defenses.png, adaptive patches."
    ),
    artefact: Path = typer.Option(
        ..., help="The patch image (e.g. runs/patch/x/patch.png), made against the bare model."
    ),
    images: Path = typer.Option(..., help="Photos with people: the adaptive attack trains on them."),
    defenses: str = typer.Option(
        "jpeg:75,median:3,lgs",
        help="Comma-separated: jpeg:Q, median:K, gauss:SIGMA, bits:B, resize:MIN_SCALE, lgs.",
    ),
    model: str = typer.Option("default", help="Detector .pt, model yaml or 'default'."),
    classes: list[str] = typer.Option(["person"], help="Classes the patch hides."),
    labels: str = typer.Option("auto", help="As in 'physadv patch'."),
    val: Path = typer.Option(None, help="Held-out photos (default: hold out --holdout of --images)."),
    val_labels: str = typer.Option("auto"),
    holdout: float = typer.Option(0.25, min=0.05, max=0.9),
    pseudo_conf: float = typer.Option(0.5),
    min_box: float = typer.Option(16.0),
    adaptive_steps: int = typer.Option(200, min=1, help="Steps of the adaptive attack through each defense."),
    batch: int = typer.Option(0, min=0, help="Images per adaptive step (0: 8 on CPU, 32 on CUDA)."),
    resolution: int = typer.Option(150, min=16, help="Patch pixels per side while re-optimising."),
    imgsz: int = typer.Option(None, help="Detector input size (default: the model's own)."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto"),
    amp: bool = typer.Option(True),
) -> None:
    """Measure defenses against a person-hiding patch: the clean true-positive rate with each
    defense, the given patch's (non-adaptive), and a patch re-optimised through the defense
    (adaptive: exact gradients or BPDA, EOT over random defenses), with the cost per frame."""
    from physadv.attacks.person_patch import PatchConfig
    from physadv.cli.patch import class_names, load_train_val
    from physadv.defenses.patch_job import run_patch_defenses
    from physadv.defenses.transforms import parse_defenses
    from physadv.models import load_model
    from physadv.printing.export import load_artefact_image
    from physadv.printing.palette import Palette

    chosen = parse_defenses(defenses)
    patch = load_artefact_image(artefact, (1.0, 1.0)).image
    victim = load_model(model, task="detect", device=device, amp=amp, imgsz=imgsz)
    if victim.kind != "detector":
        raise PhysadvError(
            f"'{model}' is a classifier: physadv defend measures person patches against detectors"
        )
    names = class_names(victim, classes)
    train, held_out = load_train_val(
        victim, names, images, labels, val, val_labels, holdout, pseudo_conf, min_box, seed
    )
    config = PatchConfig(
        classes=names,
        steps=adaptive_steps,
        batch=batch or (32 if victim.device.type == "cuda" else 8),
        resolution=resolution,
        seed=seed,
    )
    ids = [victim.names.id(n) for n in names]
    _, table = run_patch_defenses(
        victim, ids, chosen, patch, train, held_out, config, Palette.default().colours, out
    )
    typer.echo(table)
    typer.echo(f"wrote {out}/defenses.md, defenses.csv, defenses.json, defenses.png")
