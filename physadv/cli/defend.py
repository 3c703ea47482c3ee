"""``physadv defend``: what a defense does against a person patch or an RP2 sticker, measured clean,
against the given artefact (non-adaptive) and against one re-made through the defense (adaptive)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from physadv.cli.options import end2end_option
from physadv.errors import PhysadvError


def _sidecar(artefact: Path) -> dict:
    path = artefact.with_suffix(".json")
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PhysadvError(f"cannot read the artefact's sidecar '{path}': {exc}") from None


def defend(
    out: Path = typer.Option(
        ..., help="Output folder: defenses.md/.csv/.json, defenses.png, adaptive artefacts."
    ),
    artefact: Path = typer.Option(
        ...,
        help="patch.png from 'physadv patch', or sticker.png from 'physadv sticker' (its sticker.json "
        "beside it says how it was made); made against the bare model.",
    ),
    source: Path = typer.Option(
        None, "--source", "--images", help="Patches: photos with people (the adaptive attack trains on them)."
    ),
    defenses: str = typer.Option(
        "jpeg:75,median:3,lgs",
        help="Comma-separated: jpeg:Q, median:K, gauss:SIGMA, bits:B, resize:MIN_SCALE, lgs, "
        "patchcleanser:PATCH_FRACTION (classifiers), objectseeker:LINES (detectors), mcdropout:P "
        "(classifiers); classifiers also: trained:MODEL (a model from 'physadv train classifier "
        "--defense …' in place of --model), detector-net:FILE, kd:FILE, lid:FILE (from 'physadv "
        "train detector-net'); patch detectors for detectors: jedi:MIN_REGION, "
        "sac:SEGMENTER.safetensors ('physadv train patch-segmenter'), adyolo:BEST.pt "
        "('physadv train detector --patch-class').",
    ),
    digital: str = typer.Option(
        "",
        help="Stickers on classifiers: digital attacks for extra columns, pgd and/or cw_l2 (e.g. pgd,cw_l2).",
    ),
    model: str = typer.Option("default", help="Model file, model yaml or 'default'."),
    classes: list[str] = typer.Option(["person"], help="Patches: classes the patch hides."),
    labels: str = typer.Option("auto", help="Patches: as in 'physadv patch'."),
    val: Path = typer.Option(
        None, help="Patches: held-out photos (default: hold out --holdout of --source)."
    ),
    val_labels: str = typer.Option("auto"),
    holdout: float = typer.Option(0.25, min=0.05, max=0.9),
    pseudo_conf: float = typer.Option(0.5),
    min_box: float = typer.Option(16.0),
    views: int = typer.Option(200, min=1, help="Stickers: held-out views of the sign."),
    adaptive_steps: int = typer.Option(200, min=1, help="Steps of the adaptive attack through each defense."),
    batch: int = typer.Option(0, min=0, help="Images per adaptive step (0: the attack's own default)."),
    resolution: int = typer.Option(150, min=16, help="Patches: pixels per side while re-optimising."),
    imgsz: int = typer.Option(None, help="Detector input size (default: the model's own)."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto"),
    amp: bool = typer.Option(True),
    end2end: bool = end2end_option(),
) -> None:
    """Measure defenses against a person patch or an RP2 sticker: the clean metric with each
    defense, the given artefact's (non-adaptive), and an artefact re-optimised through the defense
    (adaptive: exact gradients, BPDA or EOT over the defense's randomness), with the cost per frame,
    the certified fraction (PatchCleanser) and the flag rates (MC dropout). Under `torchrun
    --nproc-per-node N -m physadv defend …` the ranks share the defenses; rank 0 writes the table."""
    from physadv.models import load_model

    if not artefact.is_file():
        raise PhysadvError(f"artefact '{artefact}' not found")
    sidecar = _sidecar(artefact)
    if sidecar.get("attack") == "rp2":
        task = "detect" if sidecar.get("goal") in ("hide", "relabel") else "classify"
        victim = load_model(model, task=task, device=device, amp=amp, imgsz=imgsz, end2end=end2end)
        chosen_digital = _digital(digital, victim.kind)
        table = _defend_sticker(
            victim, artefact, sidecar, defenses, views, adaptive_steps, batch, out, chosen_digital
        )
    else:
        victim = load_model(model, task="detect", device=device, amp=amp, imgsz=imgsz, end2end=end2end)
        if victim.kind != "detector":
            raise PhysadvError(
                f"'{artefact}' is not a sticker (no sticker.json beside it says so), and patches are "
                f"measured against detectors; '{model}' is a classifier"
            )
        if source is None:
            raise PhysadvError("patches need --source: photos with people for the adaptive attack")
        from physadv.defenses.catalogue import parse_defenses
        from physadv.eot.colour import ColourTransfer
        from physadv.jobs.defend_patch import adaptive_config, run_patch_defenses
        from physadv.jobs.patch_data import class_names, load_train_val
        from physadv.printing.export import load_artefact_image
        from physadv.printing.palette import Palette

        chosen = parse_defenses(defenses, victim.kind)
        patch = load_artefact_image(artefact, (1.0, 1.0)).image
        names = class_names(victim, classes)
        train, held_out = load_train_val(
            victim, names, source, labels, val, val_labels, holdout, pseudo_conf, min_box, seed
        )
        # as the patch was made (patch.json carries its settings): size, EOT, palette, printer calibration
        config, made = adaptive_config(sidecar, names, adaptive_steps, batch, resolution, seed)
        palette = Palette.load(made.palette) if made and made.palette else Palette.default()
        transfer = ColourTransfer.load(made.calibration) if made and made.calibration else None
        ids = [victim.names.id(n) for n in names]
        done = run_patch_defenses(
            victim, ids, chosen, patch, train, held_out, config, palette.colours, out, transfer
        )
        table = done[1] if done else None
    if table is None:
        return  # a rank other than 0 under torchrun: rank 0 writes the table and says so
    typer.echo(table)
    typer.echo(f"wrote {out}/defenses.md, defenses.csv, defenses.json, defenses.png")


def _digital(text: str, kind: str) -> tuple[str, ...]:
    from physadv.jobs.defend_digital import DIGITAL

    chosen = tuple(a.strip() for a in text.split(",") if a.strip())
    unknown = [a for a in chosen if a not in DIGITAL]
    if unknown:
        raise PhysadvError(f"unknown digital attack '{unknown[0]}': use {', '.join(DIGITAL)}")
    if chosen and kind != "classifier":
        raise PhysadvError("--digital is for stickers against classifiers")
    return chosen


def _defend_sticker(
    victim, artefact: Path, sidecar: dict, defenses: str, views, steps, batch, out, digital=()
) -> str | None:
    import torch.nn.functional as F

    from physadv.artefact import Artefact
    from physadv.attacks.rp2 import StickerAttack
    from physadv.defenses.catalogue import parse_defenses
    from physadv.distributed import Ranks
    from physadv.eot.colour import ColourTransfer
    from physadv.jobs.defend_sticker import run_sticker_defenses, sticker_config, sticker_job
    from physadv.printing.export import load_artefact_image
    from physadv.printing.palette import Palette

    chosen = parse_defenses(defenses, victim.kind)
    config = sticker_config(sidecar, victim)
    made = sticker_job(sidecar)  # the palette and printer calibration the sticker was made with
    palette = Palette.load(made.palette) if made and made.palette else Palette.default()
    transfer = ColourTransfer.load(made.calibration) if made and made.calibration else None
    if batch:
        config.batch = batch
    sticker = load_artefact_image(artefact, tuple(sidecar.get("size_mm", (750.0, 750.0))))
    if sticker.alpha is None:
        raise PhysadvError(f"'{artefact}' has no alpha channel: a sticker's alpha marks where it is printed")
    # the printable is stored at print resolution; the attack works at its own
    size = (config.resolution, config.resolution)
    sticker = Artefact(
        F.interpolate(sticker.image[None], size=size, mode="area")[0],
        sticker.size_mm,
        (F.interpolate(sticker.alpha[None], size=size, mode="area")[0] > 0.5).float(),
        sticker.provenance,
    )
    # the held-out views and the bare model's row; never run data parallel (the ranks share the rows)
    attack = StickerAttack(victim, config, palette.colours, transfer, ranks=Ranks())
    done = run_sticker_defenses(attack, chosen, sticker, out, views, steps, digital)
    return done[1] if done else None
