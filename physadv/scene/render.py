"""Render scene specs into frames with ground truth.

A scene is a sequence of shots; a shot is a camera, objects placed in the world (sign faces,
poles, people) and one draw of the effects. Objects are composited far to near with
:func:`physadv.scene.compose.warp_texture`, the same warp the sticker attack optimises through; a
patch goes on each person's torso through :func:`physadv.scene.wear.composite_patches`, the same
compositing the patch attack optimises through. Ground
truth boxes cover what is seen: an object partly hidden behind a nearer one gets the box of its
visible part and its visible fraction.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from physadv.artefact import Artefact
from physadv.scene.backgrounds import Backdrop, make_backdrop, render_background
from physadv.scene.camera import Camera, facing_normal, plane_corners, viewing_angle_deg
from physadv.scene.compose import warp_texture
from physadv.scene.effects import EffectParams, apply_effects, draw_effects
from physadv.scene.persons import draw_person
from physadv.scene.signs import SIGNS, render_face
from physadv.scene.spec import FT
from physadv.scene.wear import TorsoPlanes, composite_patches, fit_texture, planes_in_view, torso_anchor

FACE_PX_PER_MM = 0.4
MIN_VISIBLE = 0.5  # objects less visible than this are "difficult": not required, not hallucinations


@dataclass
class ObjectTruth:
    """Ground truth of one object in one frame. Pixels: u right, v down; corners TL, TR, BR, BL."""

    object_id: int
    class_name: str
    corners: list[list[float]]
    box: list[float]  # x1, y1, x2, y2, clipped to the frame
    distance_m: float  # camera to the object's centre
    angle_deg: float  # between the object's face normal and the direction to the camera
    truncated: bool = False  # partly outside the frame
    visible: float = 1.0  # fraction of the object seen: inside the frame and not hidden by nearer objects


@dataclass
class FrameTruth:
    index: int
    time_s: float
    objects: list[ObjectTruth]
    camera: dict = field(default_factory=dict)
    effects: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return asdict(self)


@dataclass
class Placed:
    """An object in the world: an RGBA texture on an upright rectangle."""

    object_id: int
    class_name: str  # "" for scenery (poles) that gets no ground truth
    texture: torch.Tensor  # [4, h, w]
    centre: tuple[float, float, float]
    width_m: float
    height_m: float
    yaw_deg: float
    support: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # tight alpha box, fractions
    torso: tuple[float, float] | None = None  # people: the patch centre, fractions (x right, y down)


@dataclass
class Shot:
    camera: Camera
    objects: list[Placed]
    effects: EffectParams
    time_s: float


def _alpha_support(rgba: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(rgba[..., 3] > 0.5)
    h, w = rgba.shape[:2]
    return xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h


def sign_object(object_id: int, name: str, centre, yaw_deg: float, sticker: Artefact | None = None) -> Placed:
    """A sign face in the world, with an optional sticker layer (an artefact the size of the face)."""
    spec = SIGNS[name]
    face = torch.from_numpy(np.array(render_face(name, FACE_PX_PER_MM))).permute(2, 0, 1)
    if sticker is not None:
        face = apply_sticker(face, sticker)
    return Placed(object_id, name, face, centre, spec.width_m, spec.height_m, yaw_deg)


def apply_sticker(face: torch.Tensor, sticker: Artefact) -> torch.Tensor:
    """Overlay a sticker artefact (its image/alpha span the whole face) on a ``[4, h, w]`` face;
    stickers only stick where the sign is (face alpha)."""
    layer = sticker_layer(face, sticker)
    rgb, alpha = layer[:3], layer[3:]
    return torch.cat([face[:3] * (1 - alpha) + rgb * alpha, face[3:]])


def sticker_layer(face: torch.Tensor, sticker: Artefact) -> torch.Tensor:
    """The stickers alone as an RGBA layer ``[4, h, w]`` the size of ``face`` (``[4, h, w]``): the
    sticker's colours, and its alpha where the sign is (face alpha)."""
    import torch.nn.functional as F

    size = face.shape[-2:]
    rgb = F.interpolate(sticker.image[None], size=size, mode="bilinear", align_corners=False)[0]
    alpha = (
        torch.ones(1, *size)
        if sticker.alpha is None
        else F.interpolate(sticker.alpha[None], size=size, mode="bilinear", align_corners=False)[0]
    )
    return torch.cat([rgb, alpha * face[3:]])


def pole_object(centre_sign, sign_height_m: float, yaw_deg: float) -> Placed:
    """The grey post under a sign, a little behind it."""
    normal = facing_normal(yaw_deg)
    x, y, z = np.asarray(centre_sign) - normal * 0.03
    texture = torch.tensor([0.55, 0.56, 0.58, 1.0]).view(4, 1, 1).expand(4, 8, 8).clone()
    return Placed(-1, "", texture, (x, y / 2, z), 0.07, y, yaw_deg)


def person_object(
    object_id: int,
    rng: np.random.Generator,
    feet,
    height_px: int,
    facing_yaw: float,
) -> Placed:
    """A person standing with their feet at ``feet``; a patch goes on their torso when the shot is
    rendered (:func:`render_shot`)."""
    sprite = draw_person(rng, height_px)
    texture = torch.from_numpy(sprite.rgba).permute(2, 0, 1)
    centre = (feet[0], sprite.height_m / 2, feet[2])
    return Placed(
        object_id,
        "person",
        texture,
        centre,
        sprite.width_m,
        sprite.height_m,
        facing_yaw,
        _alpha_support(sprite.rgba),
        sprite.patch_centre,
    )


def _truth(obj: Placed, camera: Camera, corners: np.ndarray, seen: torch.Tensor) -> ObjectTruth | None:
    """Truth for one object; ``seen`` is ``[2, H, W]``: its warped alpha and the part of it not hidden."""
    x0, y0, x1, y1 = obj.support
    tl, tr, br, bl = corners
    # bilinear position of the tight alpha box inside the projected quad (exact for affine views)
    pts = [
        tl + (tr - tl) * fx + (bl - tl) * fy + (tl - tr - bl + br) * fx * fy
        for fx in (x0, x1)
        for fy in (y0, y1)
    ]
    pts = np.array(pts)
    box = [float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())]
    clipped = [
        max(0.0, box[0]),
        max(0.0, box[1]),
        min(float(camera.width), box[2]),
        min(float(camera.height), box[3]),
    ]
    if clipped[2] - clipped[0] < 2 or clipped[3] - clipped[1] < 2:
        return None
    in_frame = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) / ((box[2] - box[0]) * (box[3] - box[1]))
    alpha_sum = float(seen[0].sum())
    unhidden = float(seen[1].sum()) / alpha_sum if alpha_sum > 0 else 0.0
    if unhidden < 0.95:  # partly hidden: the box shrinks to the visible pixels
        ys, xs = torch.nonzero(seen[1] > 0.5, as_tuple=True)
        if len(xs) < 4:
            return None
        clipped = [
            max(clipped[0], float(xs.min())),
            max(clipped[1], float(ys.min())),
            min(clipped[2], float(xs.max()) + 1),
            min(clipped[3], float(ys.max()) + 1),
        ]
    distance = float(np.linalg.norm(np.asarray(obj.centre) - np.asarray(camera.position)))
    angle = viewing_angle_deg(camera.position, obj.centre, obj.yaw_deg)
    return ObjectTruth(
        obj.object_id,
        obj.class_name,
        corners.round(2).tolist(),
        [round(v, 2) for v in clipped],
        round(distance, 3),
        round(angle, 2),
        truncated=bool(in_frame < 0.9),
        visible=round(min(1.0, in_frame * unhidden), 3),
    )


@dataclass
class Layers:
    """A shot drawn before its effects, and what putting a patch on its people needs.

    Attributes:
        frame: ``[1, 3, H, W]`` RGB in [0, 1], no effects yet.
        rank_map: ``[1, H, W]`` the draw rank (far to near) of the nearest object covering each pixel
            (alpha > 0.5); -1 where only the background shows.
        ranks: ``[N]`` the draw rank of each person who can wear a patch, far to near.
        object_ids: their object ids (as in the ground truth).
        planes: their torso planes in the camera's view (:mod:`physadv.scene.wear`).
    """

    frame: torch.Tensor
    rank_map: torch.Tensor
    ranks: torch.Tensor
    object_ids: list[int]
    planes: TorsoPlanes


def _warp_in_window(texture: torch.Tensor, corners: np.ndarray, size: tuple[int, int]):
    """:func:`~physadv.scene.compose.warp_texture` sampled only in the window the object covers (the
    same sampling, shifted), then placed in frame-sized ``[1, 3, H, W]`` RGB and ``[1, 1, H, W]`` alpha."""
    h, w = size
    x0, y0 = (
        int(max(0, min(v, lim))) for v, lim in zip(np.floor(corners.min(axis=0)) - 1, (w, h), strict=True)
    )
    x1, y1 = (
        int(max(0, min(v, lim))) for v, lim in zip(np.ceil(corners.max(axis=0)) + 2, (w, h), strict=True)
    )
    rgb, alpha = torch.zeros(1, 3, h, w), torch.zeros(1, 1, h, w)
    if x1 > x0 and y1 > y0:
        local = torch.from_numpy(corners - np.array([x0, y0])).float()[None]
        part_rgb, part_alpha = warp_texture(texture[None], local, (y1 - y0, x1 - x0))
        rgb[..., y0:y1, x0:x1], alpha[..., y0:y1, x0:x1] = part_rgb, part_alpha
    return rgb, alpha


def draw_shot(shot: Shot, backdrop: Backdrop) -> tuple[Layers, list[ObjectTruth]]:
    """Background and objects composited far to near (no effects), and the ground truth."""
    cam = shot.camera
    size = (cam.height, cam.width)
    frame = torch.from_numpy(render_background(cam, backdrop)).permute(2, 0, 1)[None]
    rank_map = torch.full((1, *size), -1, dtype=torch.long)
    order = sorted(shot.objects, key=lambda o: -float(cam.to_camera(np.array([o.centre]))[0, 2]))
    drawn, wearers = [], []  # (object, corners, alpha), far to near; (rank, object) of patch wearers
    for obj in order:
        world = plane_corners(obj.centre, obj.width_m, obj.height_m, obj.yaw_deg)
        if (cam.to_camera(world)[:, 2] < 0.2).any():
            continue
        corners = cam.project(world)
        rgb, alpha = _warp_in_window(obj.texture, corners, size)
        frame = frame * (1 - alpha) + rgb
        rank_map[alpha[:, 0] > 0.5] = len(drawn)
        if obj.torso is not None:
            wearers.append((len(drawn), obj))
        drawn.append((obj, corners, alpha[0, 0]))
    truths = []
    cover = torch.zeros(size)  # how much of each pixel nearer objects hide
    for obj, corners, alpha in reversed(drawn):
        if obj.class_name:
            truth = _truth(obj, cam, corners, torch.stack([alpha, alpha * (1 - cover)]))
            if truth is not None:
                truths.append(truth)
        cover = cover + alpha * (1 - cover)
    truths.reverse()
    anchors = [torso_anchor(o.centre, o.width_m, o.height_m, o.yaw_deg, o.torso) for _, o in wearers]
    planes = planes_in_view(cam, anchors or torch.zeros(0, 3), [o.yaw_deg for _, o in wearers])
    ranks = torch.tensor([r for r, _ in wearers], dtype=torch.long)
    return Layers(frame, rank_map, ranks, [o.object_id for _, o in wearers], planes), truths


def wear_patch(frame: torch.Tensor, layers: Layers, patch: Artefact) -> torch.Tensor:
    """``patch`` held straight, at its physical size, on the torso of every person of ``layers``:
    through :func:`physadv.scene.wear.composite_patches`, as the patch attack composites it.
    Differentiable in ``patch.image``."""
    n = len(layers.ranks)
    if not n:
        return frame
    alpha = torch.ones_like(patch.image[:1]) if patch.alpha is None else patch.alpha
    quads = layers.planes.quads((patch.size_mm[0] / 1000, patch.size_mm[1] / 1000))
    rgba = fit_texture(torch.cat([patch.image, alpha.to(patch.image)]), quads)[None].expand(n, -1, -1, -1)
    owner = torch.zeros(n, dtype=torch.long)
    return composite_patches(frame, rgba, quads, owner, layers.rank_map, layers.ranks)


def render_shot(
    shot: Shot,
    backdrop: Backdrop,
    index: int = 0,
    generator: torch.Generator | None = None,
    patch: Artefact | None = None,
) -> tuple[torch.Tensor, FrameTruth]:
    """One frame ``[3, H, W]`` in [0, 1] and its ground truth; ``patch`` on every person's torso."""
    cam = shot.camera
    layers, truths = draw_shot(shot, backdrop)
    frame = layers.frame if patch is None else wear_patch(layers.frame, layers, patch)
    frame = apply_effects(frame, shot.effects, generator)[0]
    cam_info = {
        "position": [round(v, 3) for v in cam.position],
        "yaw_deg": round(cam.yaw_deg, 2),
        "pitch_deg": round(cam.pitch_deg, 2),
        "hfov_deg": cam.hfov_deg,
        "focal_px": round(cam.focal_px, 2),
    }
    return frame, FrameTruth(index, round(shot.time_s, 4), truths, cam_info, shot.effects.as_dict())


# --- the three kinds of scene -----------------------------------------------------------------


def _camera(spec: dict, position, target, rng: np.random.Generator) -> Camera:
    c = spec["camera"]
    base = Camera(c["width"], c["height"], c["hfov_deg"], tuple(float(v) for v in position)).looking_at(
        target
    )
    j = c["jitter_deg"]
    return Camera(
        base.width,
        base.height,
        base.hfov_deg,
        base.position,
        base.yaw_deg + float(rng.uniform(-j, j)),
        base.pitch_deg + float(rng.uniform(-j, j) * 0.6),
    )


def _sign_centre(spec: dict, x: float, z: float) -> tuple[float, float, float]:
    s = SIGNS[spec["sign"]["class"]]
    return (x, spec["sign"]["height_m"] + s.height_m / 2, z)


def lab_shots(spec: dict, rng: np.random.Generator, sticker: Artefact | None = None) -> Iterator[Shot]:
    """RP2's stationary table: each pose (distance, angle) several times, new light and aim each time."""
    centre = _sign_centre(spec, 0.0, 30.0)
    yaw = spec["sign"]["yaw_deg"]
    sign = [pole_object(centre, centre[1], yaw), sign_object(0, spec["sign"]["class"], centre, yaw, sticker)]
    t = 0.0
    for pose in spec["lab"]["poses"]:
        d, angle = pose["distance_ft"] * FT, pose["angle_deg"]
        for _ in range(spec["lab"]["draws_per_pose"]):
            offset = facing_normal(yaw + angle) * d
            position = (centre[0] + offset[0], spec["camera"]["height_m"], centre[2] + offset[2])
            yield Shot(_camera(spec, position, centre, rng), sign, draw_effects(rng, spec["effects"]), t)
            t += 1.0


def driveby_shots(spec: dict, rng: np.random.Generator, sticker: Artefact | None = None) -> Iterator[Shot]:
    """A car in its lane approaching the sign at constant speed, the camera (hand-held) on the sign."""
    d = spec["driveby"]
    z_sign = 40.0
    centre = _sign_centre(spec, spec["sign"]["lateral_m"], z_sign)
    yaw = spec["sign"]["yaw_deg"]
    sign = [pole_object(centre, centre[1], yaw), sign_object(0, spec["sign"]["class"], centre, yaw, sticker)]
    speed = d["speed_kmh"] / 3.6
    z, t, wobble = z_sign - d["start_ft"] * FT, 0.0, float(rng.uniform(0, 2 * math.pi))
    effects = draw_effects(rng, spec["effects"])  # one light for the whole drive; noise varies per frame
    while z_sign - z >= d["end_ft"] * FT:
        position = (0.0, spec["camera"]["height_m"], z)
        target = centre if d["track_sign"] else (0.0, spec["camera"]["height_m"], z + 50)
        cam = Camera(spec["camera"]["width"], spec["camera"]["height"], spec["camera"]["hfov_deg"], position)
        cam = cam.looking_at(target)
        shake = spec["camera"]["jitter_deg"] * math.sin(wobble + 2.1 * t)
        cam = Camera(
            cam.width, cam.height, cam.hfov_deg, cam.position, cam.yaw_deg + shake, cam.pitch_deg + shake / 2
        )
        yield Shot(cam, sign, effects, t)
        t += 1 / d["fps"]
        z += speed / d["fps"]


def pedestrian_shots(spec: dict, rng: np.random.Generator, sticker: Artefact | None = None) -> Iterator[Shot]:
    """People walking across the view at 2–20 m, sometimes with a stop sign at the roadside."""
    p, c = spec["pedestrians"], spec["camera"]
    cam = Camera(
        c["width"], c["height"], c["hfov_deg"], (0.0, c["height_m"], 0.0), 0.0, float(rng.uniform(-4, 1))
    )
    people = []
    for i in range(int(rng.integers(p["count"][0], p["count"][1] + 1))):
        z = float(rng.uniform(*p["distance_m"]))
        x = float(rng.uniform(*p["lateral_m"])) * z / 10
        height_px = int(min(640, 1.3 * cam.focal_px * 1.95 / z))
        people.append(
            (
                person_object(i + 1, rng, (x, 0.0, z), max(48, height_px), 0.0),
                float(rng.uniform(-1.4, 1.4)),
            )
        )
    scenery = []
    if rng.random() < p["sign_probability"]:
        z = float(rng.uniform(5, 25))
        centre = _sign_centre(spec, float(rng.uniform(-4, 4)) * z / 10, z)
        yaw = float(rng.uniform(-30, 30))
        scenery = [
            pole_object(centre, centre[1], yaw),
            sign_object(100, spec["sign"]["class"], centre, yaw, sticker),
        ]
    effects = draw_effects(rng, spec["effects"])
    for k in range(p["frames"]):
        t = k / p["fps"]
        moved = []
        for person, vx in people:
            cx, cy, cz = person.centre
            moved.append(replace(person, centre=(cx + vx * t, cy, cz)))
        yield Shot(cam, scenery + moved, effects, t)


SHOTS = {"lab": lab_shots, "driveby": driveby_shots, "pedestrians": pedestrian_shots}


def count_frames(spec: dict) -> int:
    """How many frames a spec renders (for progress bars)."""
    if spec["kind"] == "lab":
        return len(spec["lab"]["poses"]) * spec["lab"]["draws_per_pose"]
    if spec["kind"] == "pedestrians":
        return spec["pedestrians"]["frames"]
    d = spec["driveby"]
    step = d["speed_kmh"] / 3.6 / d["fps"]
    return int(math.floor(((d["start_ft"] - d["end_ft"]) * FT) / step + 1e-9)) + 1


def render_scene(
    spec: dict, sticker: Artefact | None = None, patch: Artefact | None = None
) -> Iterator[tuple[torch.Tensor, FrameTruth]]:
    """Frames of a validated spec, deterministic for its seed: ``([3, H, W] tensor, FrameTruth)``.

    ``sticker`` goes on every sign face (its image spans the face), ``patch`` on every person's torso."""
    rng = np.random.default_rng(spec["seed"])
    generator = torch.Generator().manual_seed(int(spec["seed"]))
    backdrop = make_backdrop(rng)
    for index, shot in enumerate(SHOTS[spec["kind"]](spec, rng, sticker)):
        yield render_shot(shot, backdrop, index, generator, patch)
