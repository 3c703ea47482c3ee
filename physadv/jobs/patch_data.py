"""The photos a patch job trains and is judged on: labelled, pseudo-labelled, split."""

from __future__ import annotations

import sys
from pathlib import Path

from physadv.errors import PhysadvError


def class_names(model, classes: list[str]) -> list[str]:
    """The attacked classes as the first model's names (``--classes`` takes names or ids)."""
    names = []
    for item in classes:
        for part in item.split(","):
            part = part.strip()
            if part:
                names.append(model.names[model.names.id(part)])
    if not names:
        raise PhysadvError("--classes is empty: name the classes to hide, e.g. --classes person")
    return list(dict.fromkeys(names))


def _load_set(
    folder: Path, labels: str, model, ids: list[int], pseudo_conf: float, min_box: float, what: str
):
    """Images with boxes from labels (given, Ultralytics' sibling folder, or none: pseudo labels)."""
    from physadv.data.image_set import label_folder_for, list_images, load_image_set, pseudo_label
    from physadv.progress import progress_bar

    if labels == "auto":
        label_dir = label_folder_for(folder)
    elif labels == "none":
        label_dir = None
    else:
        label_dir = Path(labels)
        if not label_dir.is_dir():
            raise PhysadvError(f"label folder '{labels}' not found")
    count = len(list_images(folder))
    with progress_bar(f"reading {what} images", count) as advance:
        image_set, skipped = load_image_set(folder, model.imgsz or 640, ids, label_dir, min_box, advance)
    if skipped:
        shown = ", ".join(skipped[:5]) + (" …" if len(skipped) > 5 else "")
        print(f"skipped {len(skipped)} unreadable image(s) in {folder}: {shown}", file=sys.stderr)
    if label_dir is None:
        image_set = pseudo_label(image_set, model, ids, pseudo_conf, min_box)
        source = f"the model's own detections at confidence {pseudo_conf:g} (pseudo ground truth)"
    else:
        source = f"labels in {label_dir}"
    print(f"{what}: {len(image_set)} images, {image_set.objects} objects from {source}")
    return image_set


def load_train_val(
    model, names, images, labels, val, val_labels, holdout, pseudo_conf, min_box, seed
) -> tuple:
    """Training and held-out image sets with the ``names`` objects (``--val``, or a held-out split)."""
    from physadv.data.image_set import split

    ids = [model.names.id(n) for n in names]
    train_set = _load_set(images, labels, model, ids, pseudo_conf, min_box, "training")
    if val is not None:
        val_set = _load_set(val, val_labels, model, ids, pseudo_conf, min_box, "held-out")
    else:
        train_set, val_set = split(train_set, holdout, seed)
    train_set, val_set = train_set.with_objects(), val_set.with_objects()
    if not train_set.objects or not val_set.objects:
        which = "training" if not train_set.objects else "held-out"
        raise PhysadvError(f"no {', '.join(names)} found in the {which} images: nothing to hide")
    return train_set, val_set


def eot_components(off: str) -> tuple[str, ...]:
    """The EOT components left on by ``--eot-off`` (comma-separated names)."""
    from physadv.eot.person_eot import COMPONENTS

    names = [n.strip() for n in off.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise PhysadvError(f"unknown --eot-off component '{unknown[0]}': use {', '.join(COMPONENTS)}")
    return tuple(c for c in COMPONENTS if c not in names)


def load_scenes(
    path: Path, pool: int, refresh: float, held_out: int, seed: int, long_side: int | None = None
) -> tuple:
    """The street frames to train in (a pool of ``pool``, ``refresh`` renewed per step, rendered at the
    detector's ``long_side``) and ``held_out`` frames to judge on (None if 0; at the spec's own
    resolution), each from seeds of their own."""
    from physadv.eot.person_scenes import ScenePeople
    from physadv.progress import progress_bar
    from physadv.scene.spec import load_spec

    spec = load_spec(path)
    with progress_bar("rendering street frames", pool + held_out) as advance:
        train = ScenePeople(spec, pool, refresh, seed, lambda: advance(1), long_side)
        val = (
            ScenePeople(spec, held_out, 0, seed=seed + 1_000_003, progress=lambda: advance(1))
            if held_out
            else None
        )
    print(
        f"street: {pool} frames of {path} ({train.objects} people), {refresh:g} re-rendered per step"
        + (f"; held out: {held_out} frames ({val.objects} people)" if val else "")
    )
    return train, val
