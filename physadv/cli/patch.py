"""``physadv patch``: a person-hiding patch (Thys et al.) for one Ultralytics detector or several."""

from __future__ import annotations

from pathlib import Path

import typer

from physadv.cli.options import config_option, end2end_option, option, resolve
from physadv.jobs.patch_config import PatchJob

J = PatchJob


def patch(
    out: Path = typer.Option(
        ..., help="Output folder (checkpoint, patch.png/pdf, summary.json, config.yaml)."
    ),
    config: Path = config_option(),
    images: Path = option(J, "images"),
    scene: Path = option(J, "scene"),
    scene_frames: int = option(J, "scene_frames"),
    scene_refresh: float = option(J, "scene_refresh"),
    scene_share: float = option(J, "attack.scene_share"),
    scene_val: int = option(J, "scene_val"),
    model: list[str] = option(J, "model"),
    classes: list[str] = option(J, "classes"),
    labels: str = option(J, "labels"),
    class_map: str = option(J, "class_map"),
    val: Path = option(J, "val"),
    val_labels: str = option(J, "val_labels"),
    holdout: float = option(J, "holdout"),
    pseudo_conf: float = option(J, "pseudo_conf"),
    min_box: float = option(J, "min_box"),
    size_mm: float = option(J, "attack.size_mm"),
    hfov_deg: float = option(J, "attack.hfov_deg"),
    person_height_m: float = option(J, "attack.person_height_m"),
    eot_off: str = typer.Option(
        None,
        help="EOT components to switch off, comma-separated: sizes, angle, cloth, light, camera, printer "
        "(sets attack.eot.components).",
    ),
    steps: int = option(J, "attack.steps"),
    batch: int = option(J, "attack.batch"),
    lr: float = option(J, "attack.lr"),
    resolution: int = option(J, "attack.resolution"),
    loss: str = option(J, "attack.loss"),
    topk: int = option(J, "attack.topk"),
    threshold: float = option(J, "attack.threshold"),
    ensemble: str = option(J, "attack.ensemble"),
    lambda_nps: float = option(J, "attack.lambda_nps"),
    lambda_tv: float = option(J, "attack.lambda_tv"),
    tv_floor: float = option(J, "attack.tv_floor"),
    crease: float = option(J, "attack.eot.crease"),
    init: str = option(J, "attack.init"),
    palette: Path = option(J, "palette"),
    calibration: Path = option(J, "calibration"),
    imgsz: int = option(J, "imgsz"),
    seed: int = option(J, "attack.seed"),
    device: str = option(J, "device"),
    amp: bool = option(J, "amp"),
    end2end: bool = end2end_option(),
    resume: bool = typer.Option(False, help="Continue from OUT/checkpoint.safetensors if interrupted."),
    checkpoint_every: int = option(J, "checkpoint_every"),
    paper: str = option(J, "paper"),
    dpi: int = option(J, "dpi"),
) -> None:
    """Make a patch that hides people from Ultralytics detectors (Thys et al.), worn at its physical size
    on the torso, with physical EOT, on photos and/or in rendered streets; judge it and a noise and a
    grey control on held-out people through physadv's compositor and an independent one; write
    printables, OUT/summary.json and the resolved settings, OUT/config.yaml."""
    given = {k: v for k, v in locals().items() if k not in ("out", "config", "resume", "eot_off")}
    from physadv.harness.patch_eval import rate_line
    from physadv.jobs.patch import run_patch
    from physadv.jobs.patch_data import eot_components
    from physadv.progress import steps_done

    if eot_off is not None:
        given["components"] = eot_components(eot_off)
    job = resolve(PatchJob, config, given)
    summary = run_patch(job, out, resume)
    if summary is None:  # a torchrun rank other than 0: rank 0 reports
        return
    model, size_mm = job.model, job.attack.size_mm
    typer.echo(steps_done(summary, resume))
    for what, per_model in summary["judged"].items():
        for name, judged in per_model.items():
            people = judged["independent"]["clean"]["objects"]
            typer.echo(f"{name} on {people} held-out people ({what}), independent compositor:")
            for condition, metrics in judged["independent"].items():
                typer.echo(f"  {condition:>14}: {rate_line(metrics)}")
            typer.echo("  physadv's compositor:")
            for condition, metrics in judged["physadv"].items():
                typer.echo(f"  {condition:>14}: {rate_line(metrics)}")
            gap = judged["agreement"]
            verdict = "agree" if gap["agree"] else "DISAGREE: the patch works through physadv's pixels only"
            typer.echo(f"  the compositors {verdict} (largest gap {gap['worst_points']:.1f} points)")
    if summary["tpr_clean"] is not None and summary["tpr_clean"] < 0.05:
        typer.echo(
            f"physadv: warning: {model[0]} finds almost none of the labelled objects even without a patch "
            f"(clean TPR {100 * summary['tpr_clean']:.1f}%): these numbers say nothing about the patch",
            err=True,
        )
    if summary["warnings"]:  # said before training; summary.json keeps them
        typer.echo(f"physadv: {len(summary['warnings'])} warning(s) above, also in summary.json", err=True)
    files = ", ".join(f"{f} ({size_mm:g} mm)" if f == "patch.pdf" else f for f in summary["files"])
    typer.echo(f"wrote {out}/: {files}, summary.json, config.yaml")
