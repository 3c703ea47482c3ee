"""The photos a patch job trains and is judged on: labelled, pseudo-labelled, split; what was left
out and why is printed."""

from __future__ import annotations

import sys
from pathlib import Path

from physadv.distributed import ranks_from_env
from physadv.errors import PhysadvError


def _say(*args, **kwargs) -> None:
    """print, by torchrun's rank 0 alone (every rank reads the same photos and would say the same)."""
    if ranks_from_env().main:
        print(*args, **kwargs)


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


def label_class_map(model, label_dir: Path, given: dict[str, str] | None):
    """How the label set's ids map to the model's: through the names of the ``data.yaml`` next to
    the labels, or, without one, taken as the model's ids (said in :meth:`ClassMap.describe`)."""
    from physadv.data.class_map import ClassMap
    from physadv.data.yolo_labels import find_names_yaml, read_names

    names_yaml = find_names_yaml(label_dir)
    if names_yaml is None:
        return ClassMap(model.names, given, None, f"the labels in {label_dir} (no data.yaml with names)")
    return ClassMap(model.names, given, read_names(names_yaml), f"{names_yaml}")


def _label_dir(labels: str, folder: Path) -> Path | None:
    from physadv.data.image_set import label_folder_for

    if labels == "auto":
        return label_folder_for(folder)
    if labels == "none":
        return None
    label_dir = Path(labels)
    if not label_dir.is_dir():
        raise PhysadvError(f"label folder '{labels}' not found")
    return label_dir


def _load_set(folder: Path, labels: str, model, ids: list[int], options: dict, what: str):
    """Images with boxes from labels (given, Ultralytics' sibling folder, or none: pseudo labels)."""
    from physadv.data.image_set import list_images, load_image_set, pseudo_label
    from physadv.progress import progress_bar

    label_dir = _label_dir(labels, folder)
    class_map = label_class_map(model, label_dir, options["class_map"]) if label_dir else None
    count = len(list_images(folder))
    with progress_bar(f"reading {what} images", count) as advance:
        image_set, report = load_image_set(
            folder, model.imgsz or 640, ids, label_dir, options["min_box"], advance, class_map
        )
    for line in report.lines(folder):
        _say(f"{what}: {line}", file=sys.stderr)
    if label_dir is None:
        image_set = pseudo_label(image_set, model, ids, options["pseudo_conf"], options["min_box"])
        source = f"the model's own detections at confidence {options['pseudo_conf']:g} (pseudo ground truth)"
    else:
        source = f"labels in {label_dir}"
        _say(f"{what} label classes → model: {class_map.describe()}")
    _say(f"{what}: {len(image_set)} images, {image_set.objects} objects from {source}")
    return image_set


def _with_objects(image_set, names: list[str], what: str):
    """The images holding at least one object to hide; says how many were left out."""
    usable = image_set.with_objects()
    left = len(image_set) - len(usable)
    if left:
        _say(f"{what}: {left} of {len(image_set)} images left out: no {' or '.join(names)} in them")
    if not usable.objects:
        raise PhysadvError(f"no {', '.join(names)} found in the {what} images: nothing to hide")
    return usable


def load_train_val(
    model,
    names,
    images,
    labels,
    val,
    val_labels,
    holdout,
    pseudo_conf,
    min_box,
    seed,
    class_map: dict[str, str] | None = None,
) -> tuple:
    """Training and held-out image sets with the ``names`` objects (``--val``, or a held-out split of
    the images that hold one: images without any are set aside first, and counted)."""
    from physadv.data.image_set import split

    ids = [model.names.id(n) for n in names]
    options = {"pseudo_conf": pseudo_conf, "min_box": min_box, "class_map": class_map}
    train_set = _with_objects(_load_set(images, labels, model, ids, options, "training"), names, "training")
    if val is not None:
        val_set = _load_set(val, val_labels, model, ids, options, "held-out")
        return train_set, _with_objects(val_set, names, "held-out")
    if len(train_set) < 2:
        raise PhysadvError(
            f"only {len(train_set)} image holds a {' or '.join(names)}: need 2 to hold one out "
            "(or give --val)"
        )
    train_set, val_set = split(train_set, holdout, seed)
    total = len(train_set) + len(val_set)
    _say(f"held out {len(val_set)} of the {total} images with objects (--holdout {holdout:g})")
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
    _say(
        f"street: {pool} frames of {path} ({train.objects} people), {refresh:g} re-rendered per step"
        + (f"; held out: {held_out} frames ({val.objects} people)" if val else "")
    )
    return train, val
