"""Scene specs: YAML files a user edits, validated on load.

Every key a spec may hold is listed in :data:`SCHEMA` with its default; an unknown key is an
error naming the nearest valid one. Lists of poses are validated item by item.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml

from physadv.config import yaml_problem
from physadv.errors import PhysadvError

FT = 0.3048
# The scene specs physadv ships and its jobs use by default. They live in the repository's top-level
# scenes/ folder (the one users see and edit); physadv/scenes is a symlink to it, which setuptools
# follows, so wheels carry the files as package data and an editable install reads the folder itself.
SHIPPED_SCENES = Path(__file__).resolve().parents[1] / "scenes"

POSE = {"distance_ft": 10.0, "angle_deg": 0.0}
KIND_SECTIONS = ("lab", "driveby", "pedestrians")  # the sections only their own kind reads
SCHEMA: dict[str, Any] = {
    "kind": "lab",  # (str) lab | driveby | pedestrians
    "seed": 0,  # (int) every random draw follows from it
    "camera": {
        "width": 640,  # (int) pixels
        "height": 480,  # (int) pixels
        "hfov_deg": 60.0,  # (float) horizontal field of view
        "height_m": 1.5,  # (float) lens height above the ground
        "jitter_deg": 2.0,  # (float) hand-held aim error, degrees (lab, driveby)
    },
    "sign": {
        "class": "stop",  # (str) a sign class (physadv.scene.signs.SIGN_CLASSES)
        "height_m": 1.5,  # (float) bottom edge above the ground
        "lateral_m": 2.0,  # (float) driveby: sideways gap between the camera's path and the sign
        "yaw_deg": 0.0,  # (float) rotation of the sign face away from the road axis
    },
    "lab": {
        "poses": [],  # (list) [{distance_ft, angle_deg}, ...]: the stationary table
        "draws_per_pose": 5,  # (int) lighting/aim draws per pose
    },
    "driveby": {
        "start_ft": 50.0,  # (float) distance along the road where recording starts
        "end_ft": 5.0,  # (float) where it stops
        "speed_kmh": 10.0,  # (float) the car's speed
        "fps": 30.0,  # (float) frames per second
        "track_sign": True,  # (bool) the camera stays pointed at the sign (as RP2's hand-held video)
    },
    "pedestrians": {
        "frames": 60,  # (int) frames to render
        "fps": 10.0,  # (float)
        "count": [1, 4],  # (list) people per frame, [min, max]
        "distance_m": [2.0, 20.0],  # (list) range of distances from the camera
        "lateral_m": [-5.0, 5.0],  # (list) range of sideways positions
        "sign_probability": 0.3,  # (float) chance a stop sign also stands in the frame
    },
    "effects": {
        "brightness": [0.75, 1.2],  # (list) multiplier range
        "contrast": [0.85, 1.1],  # (list)
        "colour_temperature_k": [4500.0, 8000.0],  # (list) light colour
        "shadow": [0.0, 0.35],  # (list) darkening of a cast shadow
        "motion_blur_px": [0.0, 2.5],  # (list) blur length in pixels
        "noise_std": [0.0, 0.02],  # (list) sensor noise
        "jpeg_quality": 0,  # (int or list) 0: no compression
    },
}


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"


def _merge(user: Any, schema: Any, where: str) -> Any:
    if isinstance(schema, dict):
        if not isinstance(user, dict):
            raise PhysadvError(f"scene spec: '{where}' must be a mapping of keys, got {type(user).__name__}")
        out = copy.deepcopy(schema)
        for key, value in user.items():
            if key not in schema:
                raise PhysadvError(
                    f"scene spec: unknown key '{where}{key}'{_suggest(str(key), list(schema))}"
                )
            out[key] = _merge(value, schema[key], f"{where}{key}.")
        return out
    name = where.rstrip(".")
    if isinstance(schema, bool):
        if not isinstance(user, bool):
            raise PhysadvError(f"scene spec: '{name}' must be true or false, got {user!r}")
    elif isinstance(schema, (int, float)) and not isinstance(schema, bool):
        ok = isinstance(user, (int, float)) and not isinstance(user, bool)
        ok = ok or (name.endswith("jpeg_quality") and isinstance(user, list))
        if not ok:
            raise PhysadvError(f"scene spec: '{name}' must be a number, got {user!r}")
    elif isinstance(schema, list):
        if name == "lab.poses":
            return [_merge(p, POSE, f"lab.poses[{i}].") for i, p in enumerate(user or [])]
        if not isinstance(user, (list, tuple, int, float)):
            raise PhysadvError(f"scene spec: '{name}' must be a [low, high] range or a number, got {user!r}")
    elif isinstance(schema, str) and not isinstance(user, str):
        raise PhysadvError(f"scene spec: '{name}' must be text, got {user!r}")
    return user


# What each number may be: (lowest, highest, kind) — "int"/"num" a single value, "range" a
# [low, high] pair with low <= high (a single number means [n, n]), "irange" the same of whole numbers.
# Outside these the renderer would divide by zero, draw from an empty range or allocate without limit.
BOUNDS: dict[str, tuple[float, float, str]] = {
    "camera.width": (16, 8192, "int"),
    "camera.height": (16, 8192, "int"),
    "camera.hfov_deg": (1.0, 179.0, "num"),
    "camera.height_m": (0.05, 100.0, "num"),
    "camera.jitter_deg": (0.0, 45.0, "num"),
    "sign.height_m": (0.0, 20.0, "num"),
    "sign.lateral_m": (-100.0, 100.0, "num"),
    "sign.yaw_deg": (-89.0, 89.0, "num"),
    "lab.draws_per_pose": (1, 10000, "int"),
    "driveby.start_ft": (0.0, 10000.0, "num"),
    "driveby.end_ft": (0.0, 10000.0, "num"),
    "driveby.speed_kmh": (0.1, 400.0, "num"),
    "driveby.fps": (1.0, 240.0, "num"),
    "pedestrians.frames": (1, 100000, "int"),
    "pedestrians.fps": (1.0, 240.0, "num"),
    "pedestrians.count": (0, 100, "irange"),
    "pedestrians.distance_m": (0.5, 500.0, "range"),
    "pedestrians.lateral_m": (-100.0, 100.0, "range"),
    "pedestrians.sign_probability": (0.0, 1.0, "num"),
    "effects.brightness": (0.01, 10.0, "range"),
    "effects.contrast": (0.0, 10.0, "range"),
    "effects.colour_temperature_k": (1000.0, 40000.0, "range"),
    "effects.shadow": (0.0, 1.0, "range"),
    "effects.motion_blur_px": (0.0, 100.0, "range"),
    "effects.noise_std": (0.0, 1.0, "range"),
    "effects.jpeg_quality": (0, 100, "irange"),
}
POSE_BOUNDS = {"distance_ft": (0.5, 1000.0), "angle_deg": (-89.0, 89.0)}


def _in_bounds(name: str, value: Any, bounds: tuple[float, float, str]) -> Any:
    """``value`` checked against ``bounds`` (see :data:`BOUNDS`); a range comes back as ``[low, high]``."""
    lo, hi, kind = bounds
    whole = kind in ("int", "irange")
    if kind in ("range", "irange"):
        pair = list(value) if isinstance(value, (list, tuple)) else [value, value]
        if len(pair) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair):
            raise PhysadvError(f"scene spec: '{name}' must be a [low, high] range or a number, got {value!r}")
        if pair[0] > pair[1]:
            raise PhysadvError(f"scene spec: '{name}' is [{pair[0]}, {pair[1]}]: low must not exceed high")
        values = pair
    else:
        values = [value]
    for v in values:
        if whole and v != int(v):
            raise PhysadvError(f"scene spec: '{name}' must be a whole number, got {v!r}")
        if not lo <= v <= hi:
            raise PhysadvError(f"scene spec: '{name}' is {v!r}; it must lie between {lo} and {hi}")
    return values if kind in ("range", "irange") else value


def _check_values(full: dict) -> None:
    """Every number of a merged spec within :data:`BOUNDS` (ranges normalised to pairs, in place)."""
    for name, bounds in BOUNDS.items():
        section, key = name.split(".")
        value = full[section][key]
        if name == "effects.jpeg_quality" and not isinstance(value, (list, tuple)) and value == 0:
            continue  # 0: no compression
        full[section][key] = _in_bounds(name, value, bounds)
    for i, pose in enumerate(full["lab"]["poses"]):
        for key, (lo, hi) in POSE_BOUNDS.items():
            _in_bounds(f"lab.poses[{i}].{key}", pose[key], (lo, hi, "num"))


def validate(spec: dict) -> dict:
    """Fill defaults and check every key and value; returns the complete spec."""
    full = _merge(spec or {}, SCHEMA, "")
    _check_values(full)
    if full["kind"] not in ("lab", "driveby", "pedestrians"):
        raise PhysadvError(f"scene spec: kind must be lab, driveby or pedestrians, got '{full['kind']}'")
    from physadv.scene.signs import SIGNS

    if full["sign"]["class"] not in SIGNS:
        hint = difflib.get_close_matches(full["sign"]["class"], SIGNS, n=1)
        raise PhysadvError(
            f"scene spec: unknown sign class '{full['sign']['class']}'"
            + (f"; did you mean '{hint[0]}'?" if hint else "")
        )
    if full["kind"] == "lab" and not full["lab"]["poses"]:
        raise PhysadvError("scene spec: a lab scene needs lab.poses, e.g. [{distance_ft: 5, angle_deg: 0}]")
    d = full["driveby"]
    if full["kind"] == "driveby" and not d["start_ft"] > d["end_ft"] > 0:
        raise PhysadvError("scene spec: driveby needs start_ft > end_ft > 0")
    return full


def load_spec(path: str | Path) -> dict:
    """Read and validate a scene spec YAML file."""
    path = Path(path)
    if not path.is_file():
        raise PhysadvError(f"scene spec '{path}' not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PhysadvError(f"scene spec '{path}' is not valid YAML: {yaml_problem(exc)}") from None
    if data is None:
        raise PhysadvError(
            f"scene spec '{path}' is empty: it needs a kind (lab, driveby or pedestrians) and that kind's "
            "section, e.g. the files in scenes/"
        )
    if isinstance(data, dict):
        kind = data.get("kind", SCHEMA["kind"])
        unused = [k for k in KIND_SECTIONS if k in data and k != kind]
        if unused:
            given = f"kind is '{kind}'" if "kind" in data else f"no kind is given (so '{kind}')"
            raise PhysadvError(
                f"scene spec '{path}': its '{unused[0]}' section would be ignored: {given}; "
                f"set kind: {unused[0]}, or remove that section"
            )
    return validate(data)


def fps(spec: dict) -> float:
    """Frames per second of a spec's video (a lab table is a set of stills: 5 per second)."""
    return {"driveby": spec["driveby"]["fps"], "pedestrians": spec["pedestrians"]["fps"]}.get(
        spec["kind"], 5.0
    )
