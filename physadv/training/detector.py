"""Train an Ultralytics detector offline (their trainer, physadv's offline environment).

Every label line is checked by physadv first (:mod:`physadv.data.yolo_dataset`): a bad line is
dropped and named, not the whole image. Ultralytics keeps ``last.pt`` every epoch; ``resume``
continues an interrupted run from it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from physadv.errors import PhysadvError

# width 0.125 of YOLOv8's channels (n is 0.25): small enough to train on a laptop CPU
PICO_SCALE = [0.33, 0.125, 1024]


def pico_yaml(folder: Path) -> Path:
    """Write ``yolov8-pico.yaml``: Ultralytics' installed YOLOv8 definition at a smaller width."""
    from ultralytics.utils.checks import check_yaml

    definition = yaml.safe_load(Path(check_yaml("yolov8.yaml")).read_text())
    definition["scales"] = {"p": PICO_SCALE}
    definition["scale"] = "p"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "yolov8-pico.yaml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return path


def _checked(data: Path, work: Path) -> Path:
    """The dataset with every label line checked first (a bad line costs a box, not the image)."""
    from physadv.data.yolo_dataset import check_dataset

    checked = check_dataset(data, work)
    said = checked.lines()
    if checked.copied:
        print("\n".join(said))
        print(f"training on a checked copy of the labels: {checked.data} (images linked, not copied)")
    return checked.data


def _with_patch_class(data: Path, patches: list[Path], work: Path) -> Path:
    """Ad-YOLO's training set: ``data`` with ``patches`` on half its people, and a ``patch`` class."""
    import torch

    from physadv.data.images import read_image
    from physadv.data.yolo_dataset import dataset_items
    from physadv.progress import progress_bar
    from physadv.training.patch_class import write_patch_class_set

    pictures = []
    for path in patches:
        if not Path(path).is_file():
            raise PhysadvError(f"patch image '{path}' not found")
        pictures.append(torch.from_numpy(read_image(path, "patch image").rgb).permute(2, 0, 1).contiguous())
    count = sum(len(items) for items in dataset_items(data)[1].values())
    with progress_bar("putting patches on the people", count) as advance:
        out = write_patch_class_set(data, pictures, work, progress=advance)
    print(f"training with a 'patch' class on {out} ({len(patches)} patch image(s) and random textures)")
    return out


def train_detector(
    data: str | Path,
    model: str = "pico",
    epochs: int = 40,
    imgsz: int = 320,
    batch: int = 32,
    project: str | Path = "runs/train",
    name: str = "detector",
    device: str = "cpu",
    resume: bool = False,
    workers: int = 2,
    patch_class: list[Path] | None = None,
) -> Path:
    """Train (or resume) and return the path of ``best.pt``.

    ``model``: ``"pico"`` (physadv's small YOLOv8), an Ultralytics yaml, ``"default"`` (the embedded
    detector) or a local ``.pt`` to fine-tune. ``patch_class``: patch images — train Ad-YOLO (Ji et al.
    2021) on a copy of the data with these patches on half the people and a ``patch`` class
    (:mod:`physadv.training.patch_class`).
    """
    import logging

    import ultralytics.utils as ultralytics_utils
    from ultralytics import YOLO

    # physadv keeps Ultralytics quiet; training is long, so show its per-epoch progress and metrics
    ultralytics_utils.VERBOSE = True
    ultralytics_utils.LOGGER.setLevel(logging.INFO)
    run_dir = Path(project).resolve() / name
    last = run_dir / "weights" / "last.pt"
    if resume:
        if not last.is_file():
            raise PhysadvError(f"nothing to resume: '{last}' does not exist")
        YOLO(str(last)).train(resume=True)
    else:
        data = Path(data)
        if not data.is_file():
            raise PhysadvError(
                f"dataset yaml '{data}' not found (make one: physadv scene dataset --task detect)"
            )
        if model == "pico":
            model = str(pico_yaml(run_dir))
        elif model == "default":
            from physadv.models.loading import embedded_detector_checkpoint

            model = str(embedded_detector_checkpoint())
        elif model.endswith(".pt") and not Path(model).is_file():
            raise PhysadvError(f"model '{model}' is not a local file; physadv never downloads weights")
        data = _checked(data, run_dir / "checked_data")
        if patch_class:
            data = _with_patch_class(data, patch_class, run_dir / "patch_class_data")
        YOLO(model).train(
            data=str(data.resolve()),
            epochs=epochs,
            imgsz=imgsz,
            batch=batch,
            device=device,
            workers=workers,
            project=str(run_dir.parent),
            name=name,
            exist_ok=True,
            amp=device != "cpu",
            plots=False,
            seed=0,
            patience=max(10, epochs // 3),
        )
    best = run_dir / "weights" / "best.pt"
    if not best.is_file():
        raise PhysadvError(f"training finished without '{best}'")
    return best
