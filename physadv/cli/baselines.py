"""``physadv baselines``: the sanity table of digital attacks on a classifier (bare, defended or
adversarially trained)."""

from __future__ import annotations

from pathlib import Path

import typer


def baselines(
    out: Path = typer.Option(..., help="Output folder: baselines.md/.csv/.json."),
    model: str = typer.Option("default", help="Classifier file or 'default' (the embedded sign classifier)."),
    data: Path = typer.Option(
        None, help="ImageFolder of crops, one sub-folder per class (default: render --per-class sign crops)."
    ),
    per_class: int = typer.Option(20, min=1, help="Without --data: rendered crops per sign class."),
    eps: float = typer.Option(8.0, min=0.0, help="L∞ budget in 1/255 steps for noise, FGSM, BIM and PGD."),
    attacks: str = typer.Option(
        "noise,negative,fgsm,bim,pgd,deepfool,cw_l2,roa", help="Comma-separated attacks, in table order."
    ),
    defense: str = typer.Option(
        None, help="Attack the model through this defense (e.g. jpeg:75): the adaptive evaluation."
    ),
    bpda: bool = typer.Option(
        False,
        help="Attack a thermometer-encoded model through BPDA (Athalye et al.) instead of its zero gradient.",
    ),
    capacity: str = typer.Option(
        None,
        help="Madry et al.'s capacity study instead: train LISA-CNN at these width scales (e.g. 1,2,4,8; "
        "8 is LISA-CNN) naturally and with PGD, and plot clean, FGSM and PGD accuracy against width.",
    ),
    train_data: Path = typer.Option(
        None, help="--capacity: ImageFolder to train on (default: render --train-per-class crops per class)."
    ),
    train_per_class: int = typer.Option(100, min=1, help="--capacity without --train-data: crops per class."),
    epochs: int = typer.Option(None, min=1, help="--capacity: training epochs per model (default 20)."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto"),
) -> None:
    """Accuracy under Gaussian noise, the negative image, FGSM, BIM, PGD, DeepFool, Carlini–Wagner L2
    and the rectangular occlusion attack, with warnings where the numbers look like gradient
    masking (a one-step attack beating an iterative one, an unbounded attack failing). With
    --capacity, Madry et al.'s capacity study on the embedded signs instead."""
    from physadv.attacks.digital import ATTACKS
    from physadv.defenses.catalogue import parse_defenses
    from physadv.errors import PhysadvError
    from physadv.harness.robustness import labelled_crops, robustness_rows, write_robustness
    from physadv.models import load_model
    from physadv.progress import progress_bar

    chosen = [a.strip() for a in attacks.split(",") if a.strip()]
    unknown = [a for a in chosen if a not in ATTACKS]
    if unknown:
        raise PhysadvError(f"unknown attack '{unknown[0]}': use {', '.join(ATTACKS)}")
    victim = load_model(model, task="classify", device=device)
    if victim.kind != "classifier":
        raise PhysadvError(f"'{model}' is a detector: the digital baselines are for classifiers")
    if data is None:
        from physadv.scene.dataset import write_classification_set
        from physadv.scene.signs import SIGN_CLASSES

        data = out / "crops"
        with progress_bar("rendering sign crops", per_class * len(SIGN_CLASSES)) as advance:
            write_classification_set(data, per_class, 10_000 + seed, advance)  # not a training seed
    if capacity:
        _capacity(capacity, out, data, train_data, train_per_class, epochs, eps, seed, device)
        return
    images, labels = labelled_crops(data, victim)
    title = f"Digital baselines on {model}"
    if bpda:
        from physadv.models.robust_nets import has_thermometer

        if not has_thermometer(victim.module):
            raise PhysadvError(f"--bpda: '{model}' has no thermometer code (nothing without a gradient)")
        title += ", attacked through BPDA"
    if defense:
        (choice,) = parse_defenses(defense, "classifier")
        victim = choice.wrap(victim, seed)
        title += f" through {victim.name} (adaptive)"
    from physadv.models.robust_nets import bpda as through_bpda

    with progress_bar("attacks", len(chosen) + 1) as advance, through_bpda(victim.module, bpda):
        rows = robustness_rows(victim, images, labels, eps / 255, chosen, seed=seed, progress=advance)
    typer.echo(write_robustness(rows, out, title, eps / 255))
    typer.echo(f"wrote {out}/baselines.md, baselines.csv, baselines.json")


def _capacity(widths: str, out: Path, data: Path, train_data, per_class, epochs, eps, seed, device) -> None:
    from physadv.device import select_device
    from physadv.errors import PhysadvError
    from physadv.jobs.capacity import CapacityStudy, run_capacity
    from physadv.progress import progress_bar

    try:
        chosen = tuple(int(w) for w in widths.split(",") if w.strip())
    except ValueError:
        raise PhysadvError(f"--capacity takes whole numbers, e.g. 1,2,4,8 (got '{widths}')") from None
    if not chosen or min(chosen) < 1:
        raise PhysadvError(f"--capacity takes width scales from 1, e.g. 1,2,4,8 (got '{widths}')")
    study = CapacityStudy().merged({"widths": chosen, "epochs": epochs, "eps": eps / 255, "seed": seed})
    if train_data is None:
        from physadv.scene.dataset import write_classification_set
        from physadv.scene.signs import SIGN_CLASSES

        train_data = out / "train_crops"
        with progress_bar("rendering training crops", per_class * len(SIGN_CLASSES)) as advance:
            write_classification_set(train_data, per_class, 21 + seed, advance)
    elif not train_data.is_dir():
        raise PhysadvError(f"training data folder '{train_data}' not found")
    with progress_bar("capacity study", 2 * len(chosen)) as advance:
        _, table = run_capacity(study, train_data, data, out, select_device(device), advance)
    typer.echo(table)
    typer.echo(f"wrote {out}/capacity.md, capacity.csv, capacity.json, capacity.png")
