"""``physadv sticker``: RP2 stickers for a sign, against a classifier or a YOLO detector."""

from __future__ import annotations

from pathlib import Path

import typer

from physadv.cli.options import end2end_option
from physadv.errors import PhysadvError


def _true_class(model, name: str | None) -> int:
    if name is not None:
        return model.names.id(name)
    found = model.names.first_of("stop sign", "stop")
    if found is None:
        raise PhysadvError(
            "the model has no 'stop sign' or 'stop' class: name the sign's class with --true-class"
        )
    return found


def _goal(model, target: str | None, untargeted: bool) -> tuple[str, int | None]:
    detector = model.kind == "detector"
    if untargeted and target:
        raise PhysadvError("give either --target or --untargeted, not both")
    if detector:
        if untargeted:
            raise PhysadvError("--untargeted is for classifiers; a detector without --target hides the sign")
        return ("relabel", model.names.id(target)) if target else ("hide", None)
    if untargeted:
        return "untargeted", None
    if not target:
        raise PhysadvError("a classifier attack needs --target CLASS (e.g. 'speed limit 45') or --untargeted")
    return "targeted", model.names.id(target)


def sticker(
    out: Path = typer.Option(..., help="Output folder (checkpoint, printables, summary.json)."),
    model: str = typer.Option("default", help="A classifier or detector file, a model yaml, or 'default'."),
    task: str = typer.Option(
        "classify", help="With --model default: classify (sign classifier) or detect (YOLO)."
    ),
    target: str = typer.Option(
        None, help="Classifier: the class the sign should read as. Detector: relabel the sign as this class."
    ),
    untargeted: bool = typer.Option(False, help="Classifier: any class but the true one."),
    true_class: str = typer.Option(
        None, help="The sign's class in the model (default: 'stop sign' or 'stop')."
    ),
    mask: str = typer.Option(
        "graffiti",
        help="graffiti (letter-sized blocks placed where they work, learned first; best on "
        "classifiers), auto (the same on a finer grid), blocks (two fixed blocks), stripes (two "
        "full-width stripes; best on detectors), art (five squares), poster (whole face), or a mask "
        "image (white = sticker).",
    ),
    steps: int = typer.Option(
        500, min=1, help="Optimisation steps (graffiti / auto: the first 40 % find the places)."
    ),
    batch: int = typer.Option(
        0, min=0, help="EOT views per step (0: 32 crops / 8 frames on CPU, 4× on CUDA)."
    ),
    pool: int = typer.Option(384, min=8, help="EOT views drawn once and sampled from."),
    lr: float = typer.Option(0.2, help="Adam learning rate (sticker colours in [0, 1])."),
    lambda_norm: float = typer.Option(0.02, help="Weight of RP2's ‖M·δ‖ term."),
    lambda_nps: float = typer.Option(0.1, help="Weight of non-printability."),
    lambda_tv: float = typer.Option(0.05, help="Weight of total variation."),
    area: float = typer.Option(
        0.15, min=0.01, max=1.0, help="graffiti / auto: the most of the face the stickers may cover."
    ),
    palette: Path = typer.Option(None, help="Printable colours (r,g,b lines); default: physadv's estimate."),
    calibration: Path = typer.Option(
        None, help="colour_transfer.json from 'physadv calibrate photo': optimise as the print will look."
    ),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    amp: bool = typer.Option(True, help="Mixed precision on CUDA."),
    end2end: bool = end2end_option(),
    resume: bool = typer.Option(False, help="Continue from OUT/checkpoint.safetensors if interrupted."),
    checkpoint_every: int = typer.Option(25, min=1, help="Steps between checkpoints."),
    eval_views: int = typer.Option(200, min=0, help="Held-out EOT views for the evaluation."),
    lab: Path = typer.Option(None, help="Lab-table scene spec (default: scenes/lab_rp2.yaml)."),
    driveby: Path = typer.Option(None, help="Drive-by scene spec (default: scenes/driveby_stop.yaml)."),
    no_scenes: bool = typer.Option(False, "--no-scenes", help="Skip the lab-table and drive-by replays."),
    paper: str = typer.Option("letter", help="Paper for the sticker sheet and poster tiles."),
    dpi: int = typer.Option(300, min=72, max=1200),
) -> None:
    """Make RP2 stickers for a stop sign with EOT, judge them on held-out views, RP2's lab table and a
    drive-by, and write printables and OUT/summary.json."""
    from physadv.attacks.masks import MASK_NAMES
    from physadv.attacks.rp2 import StickerAttack, StickerConfig
    from physadv.eot.colour import ColourTransfer
    from physadv.jobs.sticker import Evaluation, run_sticker_job
    from physadv.models import load_model
    from physadv.printing.palette import Palette

    if mask not in MASK_NAMES and not Path(mask).is_file():
        raise PhysadvError(f"unknown mask '{mask}': use {', '.join(MASK_NAMES)}, or a mask image file")
    victim = load_model(model, task=task, device=device, amp=amp, end2end=end2end)
    goal, target_id = _goal(victim, target, untargeted)
    true_id = _true_class(victim, true_class)
    if target_id == true_id:
        raise PhysadvError(
            f"the target is the true class ('{victim.names[true_id]}'): a sticker cannot make the sign "
            "read as what it already is; pick another --target, or --untargeted"
        )
    detector = victim.kind == "detector"
    if batch == 0:
        batch = (8 if detector else 32) * (4 if victim.device.type == "cuda" else 1)
    config = StickerConfig(
        goal=goal,
        true_class=true_id,
        target=target_id,
        mask=mask,
        area=area,
        steps=steps,
        lr=lr,
        batch=batch,
        pool=max(pool, batch),
        lambda_norm=lambda_norm,
        lambda_nps=lambda_nps,
        lambda_tv=lambda_tv,
        seed=seed,
    )
    colours = (Palette.load(palette) if palette else Palette.default()).colours
    transfer = ColourTransfer.load(calibration) if calibration else None
    attack = StickerAttack(victim, config, colours, transfer)
    plan = Evaluation(views=eval_views)
    if no_scenes:
        plan.lab = plan.driveby = None
    else:
        plan.lab, plan.driveby = lab or plan.lab, driveby or plan.driveby
    summary = run_sticker_job(attack, out, plan, resume, checkpoint_every, paper, dpi)
    wanted = {
        "targeted": f"reads as '{target}'",
        "untargeted": "misread",
        "hide": "hidden",
        "relabel": f"detected as '{target}'",
    }[goal]
    typer.echo(
        f"sticker area: {100 * summary['sticker_area_fraction']:.1f}% of the sign face; "
        f"{summary['steps']} steps in {summary['seconds']:.0f} s on {summary['device']}"
    )
    from physadv.harness.metrics import Rate

    for name, cond in summary["conditions"].items():
        r = cond["targeted_success_rate"]
        clean_key = next(k for k in cond if k.startswith("clean_") and k != "clean_success_rate")
        attacked_key = clean_key.replace("clean_", "attacked_")
        typer.echo(
            f"{name:>12}: sign {wanted} in {Rate(r['k'], r['n'])} of frames; "
            f"{clean_key.removeprefix('clean_')} clean {100 * cond[clean_key]['rate']:.1f}% → "
            f"attacked {100 * cond[attacked_key]['rate']:.1f}%"
        )
    typer.echo(f"wrote {out}/summary.json, sticker.png, sticker_sheet.pdf, placement_guide.pdf, poster.png")
