"""``physadv sticker``: RP2 stickers for a sign, against a classifier or a YOLO detector."""

from __future__ import annotations

from pathlib import Path

import typer

from physadv.cli.options import config_option, end2end_option, option, resolve
from physadv.jobs.sticker_config import StickerJob

J = StickerJob


def sticker(
    out: Path = typer.Option(..., help="Output folder (checkpoint, printables, summary.json, config.yaml)."),
    config: Path = config_option(),
    model: str = option(J, "model"),
    task: str = option(J, "task"),
    target: str = option(J, "target"),
    untargeted: bool = option(J, "untargeted"),
    true_class: str = option(J, "true_class"),
    mask: str = option(J, "attack.mask"),
    steps: int = option(J, "attack.steps"),
    batch: int = option(J, "attack.batch"),
    pool: int = option(J, "attack.pool"),
    lr: float = option(J, "attack.lr"),
    lambda_norm: float = option(J, "attack.lambda_norm"),
    lambda_nps: float = option(J, "attack.lambda_nps"),
    lambda_tv: float = option(J, "attack.lambda_tv"),
    area: float = option(J, "attack.area"),
    palette: Path = option(J, "palette"),
    calibration: Path = option(J, "calibration"),
    seed: int = option(J, "attack.seed"),
    device: str = option(J, "device"),
    amp: bool = option(J, "amp"),
    end2end: bool = end2end_option(),
    resume: bool = typer.Option(False, help="Continue from OUT/checkpoint.safetensors if interrupted."),
    checkpoint_every: int = option(J, "checkpoint_every"),
    eval_views: int = option(J, "eval_views"),
    lab: Path = option(J, "lab"),
    driveby: Path = option(J, "driveby"),
    scenes: bool = option(J, "scenes"),
    paper: str = option(J, "paper"),
    dpi: int = option(J, "dpi"),
) -> None:
    """Make RP2 stickers for a stop sign with EOT, judge them on held-out views, RP2's lab table and a
    drive-by, and write printables and OUT/summary.json."""
    given = {k: v for k, v in locals().items() if k not in ("out", "config", "resume")}
    from physadv.jobs.sticker import run_sticker
    from physadv.progress import steps_done

    job = resolve(StickerJob, config, given)
    summary = run_sticker(job, out, resume)
    if summary is None:  # a torchrun rank other than 0: rank 0 reports
        return
    goal = summary["goal"]

    wanted = {
        "targeted": f"reads as '{summary['target']}'",
        "untargeted": "misread",
        "hide": "hidden",
        "relabel": f"detected as '{summary['target']}'",
    }[goal]
    typer.echo(
        f"sticker area: {100 * summary['sticker_area_fraction']:.1f}% of the sign face; "
        + steps_done(summary, resume)
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
