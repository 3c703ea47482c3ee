"""``physadv scene …``: render scene specs to video with ground truth, and write training sets."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Render the embedded world: scene specs to video + ground truth, and datasets.", no_args_is_help=True
)


@app.command("render")
def render(
    spec: Path = typer.Argument(..., help="A scene spec YAML (see scenes/)."),
    out: Path = typer.Option(..., help="Output folder: scene.mp4, ground_truth.jsonl, frames/ (optional)."),
    frames: bool = typer.Option(False, help="Also write every frame as PNG."),
    seed: int = typer.Option(None, help="Override the spec's seed."),
    sticker: Path = typer.Option(
        None, help="RGBA image spanning the sign face: its alpha marks the stickers."
    ),
    patch: Path = typer.Option(None, help="Patch image worn on every person's torso."),
    patch_mm: float = typer.Option(
        400.0, help="The patch's longer printed side, millimetres (the other follows its aspect ratio)."
    ),
) -> None:
    """Render SPEC to OUT/scene.mp4 and OUT/ground_truth.jsonl (one JSON line per frame: index, time,
    objects with class, corners, box, distance and angle)."""
    from physadv.printing.export import load_sized_artefact
    from physadv.progress import progress_bar
    from physadv.scene.render import count_frames, render_scene
    from physadv.scene.signs import SIGNS
    from physadv.scene.spec import fps as scene_fps
    from physadv.scene.spec import load_spec
    from physadv.scene.video import write_scene

    scene = load_spec(spec)
    if seed is not None:
        scene["seed"] = seed
    face = SIGNS[scene["sign"]["class"]]
    sticker_art = patch_art = None
    if sticker:
        sticker_art, size = load_sized_artefact(sticker, f"{face.width_mm}x{face.height_mm}")
        typer.echo(f"sticker spans the {scene['sign']['class']} sign's face: {size.note}")
    if patch:
        patch_art, size = load_sized_artefact(patch, patch_mm)
        typer.echo(f"patch: {size.note}")
    pairs = render_scene(scene, sticker_art, patch_art)
    with progress_bar(f"rendering {spec.name}", count_frames(scene)) as advance:
        n = write_scene(pairs, out, fps=scene_fps(scene), frames=frames, on_frame=advance)
    typer.echo(f"wrote {out}/scene.mp4 ({n} frames) and {out}/ground_truth.jsonl")


@app.command("dataset")
def dataset(
    task: str = typer.Option(
        ...,
        help="classify (ImageFolder of sign crops), detect (YOLO-format street frames) or persons "
        "(YOLO-format frames of people 3–12 m away, for person-hiding patches).",
    ),
    out: Path = typer.Option(..., help="Output folder."),
    per_class: int = typer.Option(500, help="classify: images per sign class."),
    train: int = typer.Option(1500, help="detect, persons: training frames."),
    val: int = typer.Option(300, help="detect, persons: validation frames."),
    seed: int = typer.Option(0, help="Random seed (use another seed for a held-out set)."),
) -> None:
    """Write a training set rendered from the embedded world. Re-running the same command after an
    interruption keeps what was written and renders the rest."""
    import torch

    torch.set_num_threads(1)  # many small tensors: threads cost more than they give
    from physadv.errors import PhysadvError
    from physadv.progress import progress_bar
    from physadv.scene.dataset import write_classification_set, write_detection_set
    from physadv.scene.signs import SIGN_CLASSES

    if task == "classify":
        with progress_bar("sign crops", per_class * len(SIGN_CLASSES)) as advance:
            counts = write_classification_set(out, per_class, seed, advance)
        typer.echo(f"wrote {sum(counts.values())} crops of {len(counts)} classes to {out}")
    elif task == "detect":
        with progress_bar("street frames", train + val) as advance:
            data = write_detection_set(out, train, val, seed, advance)
        typer.echo(f"wrote {train} + {val} frames; train with: physadv train detector --data {data}")
    elif task == "persons":
        with progress_bar("person frames", train + val) as advance:
            write_detection_set(out, train, val, seed, advance, scene="persons")
        typer.echo(
            f"wrote {train} + {val} frames; make a patch with: "
            f"physadv patch --images {out}/images/train --val {out}/images/val --out runs/patch"
        )
    else:
        raise PhysadvError(f"unknown task '{task}': use classify, detect or persons")
