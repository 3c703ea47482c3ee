"""Training sets from the embedded world.

- Classification (ImageFolder): one folder per sign class, crops around the sign as a detector
  (or RP2's manual crop) would give them, at distances 5–50 ft and angles up to 50°.
- Detection (YOLO format): street frames with people, stop signs, and other signs as unlabelled
  distractors. Classes carry COCO's names (``person``, ``stop sign``); physadv looks classes up by
  name, so commands are the same for this model and a real COCO model.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from physadv.scene.backgrounds import ground_map, make_backdrop
from physadv.scene.camera import Camera, facing_normal
from physadv.scene.effects import draw_effects
from physadv.scene.render import Shot, person_object, pole_object, render_shot, sign_object
from physadv.scene.signs import SIGN_CLASSES, SIGNS
from physadv.scene.spec import FT

DETECT_NAMES = ["person", "stop sign"]
MIN_LABEL_VISIBLE = 0.25  # objects seen less than this (hidden or out of frame) get no label
TRAIN_EFFECTS = {
    "brightness": [0.6, 1.3],
    "contrast": [0.75, 1.15],
    "colour_temperature_k": [4000.0, 8500.0],
    "shadow": [0.0, 0.45],
    "motion_blur_px": [0.0, 3.0],
    "noise_std": [0.0, 0.03],
    "jpeg_quality": [0, 95],
}
CROP_PX = 64


def _save(path: Path, image) -> None:
    array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(array, cv2.COLOR_RGB2BGR))


def crop_camera(
    rng: np.random.Generator,
    sign: str,
    centre,
    position,
    distance: float,
    max_px: int = CROP_PX * 2,
    ref_width: int = 640,
    ref_hfov: float = 60.0,
) -> Camera:
    """A square camera at ``position`` framing ``sign`` as a crop would: the sign fills 70–95% of
    the view, at the pixel resolution a ``ref_width``-pixel, ``ref_hfov``-degree camera would see
    it with (at most ``max_px``), aimed at ``centre`` with a little jitter."""
    spec = SIGNS[sign]
    f_ref = ref_width / 2 / math.tan(math.radians(ref_hfov) / 2)
    sign_px = f_ref * max(spec.width_m, spec.height_m) / distance
    view_px = sign_px / float(rng.uniform(0.7, 0.95))
    hfov = 2 * math.degrees(math.atan(view_px / 2 / f_ref))
    size = int(min(max_px, max(16, round(view_px))))
    aimed = Camera(size, size, hfov, position).looking_at(centre)
    jitter = hfov * 0.08
    return Camera(
        size,
        size,
        hfov,
        position,
        aimed.yaw_deg + float(rng.uniform(-jitter, jitter)),
        aimed.pitch_deg + float(rng.uniform(-jitter, jitter)),
    )


def sign_crop_shot(name: str, rng: np.random.Generator) -> Shot:
    """One sign seen from 5–50 ft and up to ±50°, framed by :func:`crop_camera`."""
    spec = SIGNS[name]
    distance = float(np.exp(rng.uniform(math.log(5 * FT), math.log(50 * FT))))
    angle = float(rng.uniform(-50, 50))
    yaw = float(rng.uniform(-10, 10))
    centre = (0.0, float(rng.uniform(1.0, 2.2)) + spec.height_m / 2, 30.0)
    offset = facing_normal(yaw + angle) * distance
    position = (offset[0], float(rng.uniform(1.2, 1.8)), centre[2] + offset[2])
    cam = crop_camera(rng, name, centre, position, distance)
    objects = [pole_object(centre, centre[1], yaw), sign_object(0, name, centre, yaw)]
    return Shot(cam, objects, draw_effects(rng, TRAIN_EFFECTS), 0.0)


def _item_rng(seed: int, *key: int) -> np.random.Generator:
    """Each item has its own seed, so an interrupted run resumes by skipping the files it wrote."""
    return np.random.default_rng([seed, *key])


def _noise_generator(rng: np.random.Generator) -> torch.Generator:
    """Sensor noise drawn from the item's own seed, so every file can be reproduced exactly."""
    return torch.Generator().manual_seed(int(rng.integers(2**31)))


def write_classification_set(out: Path, per_class: int, seed: int, progress=None) -> dict[str, int]:
    """ImageFolder at ``out``: ``out/<class name>/<n>.png`` crops (64×64). Returns counts per class.

    Items already on disk are kept (resume after an interruption)."""
    import torch.nn.functional as F

    ground = ground_map(_item_rng(seed, 10**6))
    counts = {}
    for c, name in enumerate(SIGN_CLASSES):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = folder / f"{i:05d}.png"
            if not path.is_file():
                rng = _item_rng(seed, c, i)
                shot = sign_crop_shot(name, rng)
                image, _ = render_shot(shot, make_backdrop(rng, ground), generator=_noise_generator(rng))
                image = F.interpolate(image[None], size=(CROP_PX, CROP_PX), mode="bilinear", antialias=True)[
                    0
                ]
                _save(path, image.clamp(0, 1))
            if progress:
                progress()
        counts[name] = per_class
    return counts


def _street_camera(rng, width: int, height: int, lateral: float, heights, yaw: float, pitch) -> Camera:
    """A camera at the road's origin: field of view 50–70°, ±``lateral`` m sideways, ``heights`` m up,
    yaw ±``yaw``° and ``pitch`` degrees (uniform)."""
    return Camera(
        width,
        height,
        float(rng.uniform(50, 70)),
        (float(rng.uniform(-lateral, lateral)), float(rng.uniform(*heights)), 0.0),
        float(rng.uniform(-yaw, yaw)),
        float(rng.uniform(*pitch)),
    )


def _people(rng, cam: Camera, count: int, distance_m, spread: float) -> list:
    """``count`` people facing the camera, log-uniform in ``distance_m``, within ``spread`` of the
    view's half-width either side."""
    objects = []
    for i in range(count):
        z = float(np.exp(rng.uniform(math.log(distance_m[0]), math.log(distance_m[1]))))
        x = (
            float(rng.uniform(-spread, spread)) * z * math.tan(math.radians(cam.hfov_deg / 2)) * 2
            + cam.position[0]
        )
        height_px = int(min(360, 1.2 * cam.focal_px * 1.95 / z))
        objects.append(person_object(i + 1, rng, (x, 0.0, z), max(48, height_px), 0.0))
    return objects


def street_shot(rng: np.random.Generator, width: int = 480, height: int = 360) -> Shot:
    """A random street frame: 0–5 people, a stop sign in most frames, other signs as distractors."""
    cam = _street_camera(rng, width, height, lateral=1.5, heights=(1.1, 1.8), yaw=10, pitch=(-5, 3))
    objects = _people(rng, cam, int(rng.integers(0, 6)), (2.5, 20), spread=0.55)
    n_signs = int(rng.choice([0, 1, 1, 1, 2, 2, 3]))
    for k in range(n_signs):
        name = "stop" if (k == 0 and rng.random() < 0.8) else str(rng.choice(SIGN_CLASSES))
        z = float(np.exp(rng.uniform(math.log(2.5), math.log(22))))
        x = float(rng.uniform(-0.5, 0.5)) * z * math.tan(math.radians(cam.hfov_deg / 2)) * 2 + cam.position[0]
        centre = (x, float(rng.uniform(1.0, 2.3)) + SIGNS[name].height_m / 2, z)
        yaw = float(rng.uniform(-40, 40))
        objects += [pole_object(centre, centre[1], yaw), sign_object(100 + k, name, centre, yaw)]
    return Shot(cam, objects, draw_effects(rng, TRAIN_EFFECTS), 0.0)


def person_shot(rng: np.random.Generator, width: int = 480, height: int = 360) -> Shot:
    """A frame for person-hiding patches: 1–4 people 3–12 m away facing the camera, no signs.

    Closer and larger than :func:`street_shot`'s people, as in INRIA-style person photos."""
    cam = _street_camera(rng, width, height, lateral=1.0, heights=(1.2, 1.7), yaw=6, pitch=(-4, 2))
    objects = _people(rng, cam, int(rng.integers(1, 5)), (3, 12), spread=0.4)
    return Shot(cam, objects, draw_effects(rng, TRAIN_EFFECTS), 0.0)


SHOTS = {"street": street_shot, "persons": person_shot}


@functools.lru_cache(maxsize=2)
def _ground(seed: int, split: int, block: int) -> np.ndarray:
    return ground_map(_item_rng(seed, split, block, 10**6))


def _yolo_labels(truth, camera: Camera) -> str:
    """YOLO label lines (class cx cy w h, normalised); distractor signs and objects mostly out of
    sight (less than ``MIN_LABEL_VISIBLE`` seen) get none."""
    lines = []
    for obj in truth.objects:
        name = "stop sign" if obj.class_name == "stop" else obj.class_name
        if name not in DETECT_NAMES or obj.visible < MIN_LABEL_VISIBLE:
            continue
        cls = DETECT_NAMES.index(name)
        x1, y1, x2, y2 = obj.box
        w, h = camera.width, camera.height
        lines.append(
            f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def write_detection_set(
    out: Path, train: int, val: int, seed: int, progress=None, scene: str = "street"
) -> Path:
    """YOLO-format set at ``out`` (images/, labels/, data.yaml) of ``scene`` frames (see
    :data:`SHOTS`). Returns data.yaml.

    Items already on disk are kept (resume after an interruption)."""
    make_shot = SHOTS[scene]
    for s_id, (split, count) in enumerate((("train", train), ("val", val))):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            label_path = out / "labels" / split / f"{i:05d}.txt"
            if not label_path.is_file():  # written last: its presence means the item is complete
                rng = _item_rng(seed, s_id, i)
                shot = make_shot(rng)
                backdrop = make_backdrop(rng, _ground(seed, s_id, i // 50))
                image, truth = render_shot(shot, backdrop, i, _noise_generator(rng))
                _save(out / "images" / split / f"{i:05d}.jpg", image)
                label_path.write_text(_yolo_labels(truth, shot.camera))
            if progress:
                progress()
    names = dict(enumerate(DETECT_NAMES))
    data = out / "data.yaml"
    data.write_text(
        yaml.safe_dump(
            {"path": str(out.resolve()), "train": "images/train", "val": "images/val", "names": names},
            sort_keys=False,
        )
    )
    return data
