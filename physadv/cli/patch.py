"""``physadv patch``: a person-hiding patch (Thys et al.) for one Ultralytics detector or several."""

from __future__ import annotations

from pathlib import Path

import typer

from physadv.cli.options import end2end_option
from physadv.errors import PhysadvError

LOSSES = ("max", "topk", "threshold")


def patch(
    out: Path = typer.Option(..., help="Output folder (checkpoint, patch.png/pdf, summary.json, pictures)."),
    images: Path = typer.Option(None, help="Folder of photos with the people to hide (or --scene, or both)."),
    scene: Path = typer.Option(
        None,
        help="A 'pedestrians' scene spec (e.g. scenes/pedestrians.yaml): optimise in its rendered streets, "
        "fresh frames and light every step (alone, or mixed with --images).",
    ),
    scene_frames: int = typer.Option(32, min=2, help="--scene: rendered frames kept in the pool."),
    scene_refresh: float = typer.Option(
        0.5, min=0, help="--scene: frames re-rendered per step (0.5: one every other step)."
    ),
    scene_share: float = typer.Option(
        0.5, min=0.0, max=1.0, help="--scene with --images: the part of each batch from the street."
    ),
    scene_val: int = typer.Option(
        48, min=0, help="--scene: held-out street frames to judge on (rendered from other seeds)."
    ),
    model: list[str] = typer.Option(
        ["default"], help="Detector .pt, model yaml or 'default'; repeat for an ensemble."
    ),
    classes: list[str] = typer.Option(
        ["person"], help="Classes to hide: names or ids (repeat or comma-separate)."
    ),
    labels: str = typer.Option(
        "auto",
        help="YOLO label folder (ids mapped to the model's by the names of the data.yaml next to it; "
        "without one, taken as the model's ids); 'auto': Ultralytics' images/→labels/ sibling if there "
        "is one; 'none': the model's own detections (pseudo ground truth).",
    ),
    class_map: str = typer.Option(
        None,
        help="Label classes → model classes, 'stop=stop sign,car=ignore' (names or ids) or a YAML/JSON "
        "file; default: by name, with aliases (docs/inputs.md).",
    ),
    val: Path = typer.Option(None, help="Held-out photos (default: hold out --holdout of --images)."),
    val_labels: str = typer.Option("auto", help="Labels for --val (as --labels)."),
    holdout: float = typer.Option(
        0.25, min=0.05, max=0.9, help="Fraction of --images held out when no --val."
    ),
    pseudo_conf: float = typer.Option(0.5, help="Confidence of the detections taken as pseudo ground truth."),
    min_box: float = typer.Option(
        16.0,
        min=0,
        help="Ignore objects whose box is smaller than this on its short side, in the photo's pixels.",
    ),
    size_mm: float = typer.Option(
        400.0, min=10, help="Printed side of the square patch, millimetres: its size on the torso."
    ),
    hfov_deg: float = typer.Option(
        60.0, min=5, max=170, help="Photos: the camera's field of view across the long side (degrees)."
    ),
    person_height_m: float = typer.Option(
        1.75, min=0.5, max=2.5, help="Photos: a person's height, which their box spans (metres)."
    ),
    eot_off: str = typer.Option(
        "", help="EOT components to switch off, comma-separated: sizes, angle, cloth, light, camera, printer."
    ),
    steps: int = typer.Option(1000, min=1, help="Optimisation steps."),
    batch: int = typer.Option(0, min=0, help="Images per step (0: 8 on CPU, 32 on CUDA)."),
    lr: float = typer.Option(0.03, help="Adam learning rate (patch colours in [0, 1])."),
    resolution: int = typer.Option(150, min=16, help="Patch pixels per side."),
    loss: str = typer.Option(
        "max", help="Per-person score: max (Thys), topk (mean of the k best), threshold."
    ),
    topk: int = typer.Option(5, min=1, help="--loss topk: how many candidates."),
    threshold: float = typer.Option(0.25, help="--loss threshold: scores from here up count."),
    ensemble: str = typer.Option("sum", help="Several models: sum or max of their losses."),
    lambda_nps: float = typer.Option(0.01, help="Weight of non-printability."),
    lambda_tv: float = typer.Option(2.5, help="Weight of total variation (floored at --tv-floor, as Thys)."),
    tv_floor: float = typer.Option(0.1),
    crease: float = typer.Option(0.5, min=0, max=1, help="Probability of a fold in each EOT draw (cloth)."),
    init: str = typer.Option("grey", help="Starting patch: grey or random."),
    palette: Path = typer.Option(None, help="Printable colours (r,g,b lines); default: physadv's estimate."),
    calibration: Path = typer.Option(
        None, help="colour_transfer.json from 'physadv calibrate photo': optimise as the print will look."
    ),
    imgsz: int = typer.Option(None, help="Detector input size (default: the model's own; 640 for yamls)."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    amp: bool = typer.Option(True, help="Mixed precision on CUDA."),
    end2end: bool = end2end_option(),
    resume: bool = typer.Option(False, help="Continue from OUT/checkpoint.safetensors if interrupted."),
    checkpoint_every: int = typer.Option(25, min=1, help="Steps between checkpoints."),
    paper: str = typer.Option("letter", help="Paper for the tiled PDF (patch_<paper>.pdf)."),
    dpi: int = typer.Option(150, min=72, max=1200),
) -> None:
    """Make a patch that hides people from Ultralytics detectors (Thys et al.), worn at its physical size
    on the torso, with physical EOT, on photos and/or in rendered streets; judge it and a noise and a
    grey control on held-out people through physadv's compositor and an independent one; write
    printables and OUT/summary.json."""
    from physadv.attacks.person_patch import PatchAttack, PatchConfig
    from physadv.data.class_map import parse_class_map
    from physadv.eot.colour import ColourTransfer
    from physadv.eot.person_eot import PersonEOT
    from physadv.harness.patch_eval import rate_line
    from physadv.jobs.patch import run_patch_job
    from physadv.jobs.patch_data import class_names, eot_components, load_scenes, load_train_val
    from physadv.models import load_model
    from physadv.printing.palette import Palette

    for value, allowed, what in (
        (loss, LOSSES, "--loss"),
        (ensemble, ("sum", "max"), "--ensemble"),
        (init, ("grey", "random"), "--init"),
    ):
        if value not in allowed:
            raise PhysadvError(f"unknown {what} '{value}': use {', '.join(allowed)}")
    if images is None and scene is None:
        raise PhysadvError("give --images (photos of people), --scene (a pedestrians scene spec), or both")
    components = eot_components(eot_off)
    victims = [
        load_model(m, task="detect", device=device, amp=amp, imgsz=imgsz, end2end=end2end) for m in model
    ]
    for spec, victim in zip(model, victims, strict=True):
        if victim.kind != "detector":
            raise PhysadvError(f"'{spec}' is a classifier; patches attack detectors")
    names = class_names(victims[0], classes)
    train_set = val_set = None
    if images is not None:
        train_set, val_set = load_train_val(
            victims[0],
            names,
            images,
            labels,
            val,
            val_labels,
            holdout,
            pseudo_conf,
            min_box,
            seed,
            parse_class_map(class_map),
        )
    scenes, scene_held_out = (None, None)
    if scene is not None:
        if "person" not in names:
            raise PhysadvError(
                f"--scene trains on rendered people: --classes must include person, not {names}"
            )
        scenes, scene_held_out = load_scenes(
            scene, scene_frames, scene_refresh, scene_val, seed, victims[0].imgsz
        )
    cuda = victims[0].device.type == "cuda"
    config = PatchConfig(
        classes=names,
        size_mm=size_mm,
        steps=steps,
        lr=lr,
        batch=batch or (32 if cuda else 8),
        resolution=resolution,
        loss=loss,
        topk=topk,
        threshold=threshold,
        ensemble=ensemble,
        lambda_nps=lambda_nps,
        lambda_tv=lambda_tv,
        tv_floor=tv_floor,
        init=init,
        seed=seed,
        scene_share=scene_share,
        hfov_deg=hfov_deg,
        person_height_m=person_height_m,
        eot=PersonEOT(components=components, crease=crease),
    )
    colours = (Palette.load(palette) if palette else Palette.default()).colours
    transfer = ColourTransfer.load(calibration) if calibration else None
    attack = PatchAttack(
        victims, config, train_set, colours, transfer, model_names=list(model), scenes=scenes
    )
    summary = run_patch_job(
        attack, val_set, out, size_mm, resume, checkpoint_every, dpi, paper, scene_val=scene_held_out
    )
    typer.echo(f"{summary['steps']} steps in {summary['seconds']:.0f} s on {summary['device']}")
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
            f"warning: {model[0]} finds almost none of the labelled objects even without a patch "
            f"(clean TPR {100 * summary['tpr_clean']:.1f}%): these numbers say nothing about the patch",
            err=True,
        )
    for line in summary["warnings"]:
        typer.echo(f"warning: {line}", err=True)
    typer.echo(f"wrote {out}/patch.png, patch.pdf ({size_mm:g} mm), grid.jpg, history.png, summary.json")
