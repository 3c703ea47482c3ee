"""Backgrounds seen through the scene's camera: sky, a far backdrop from real photographs, and a
ground plane with a road, all projected with the same pinhole geometry as the objects.

Real textures come from installed packages: scikit-image's brick, grass and gravel photographs,
and the building facade and cobblestones of Ultralytics' ``bus.jpg`` (only the rows with no
people in them, so detector training sees no unlabelled persons).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from physadv.scene.camera import Camera

GROUND_M_PER_PX = 0.05
GROUND_HALF_WIDTH_M = 30.0
GROUND_LENGTH_M = 160.0
LANE_WIDTH_M = 3.6


@functools.lru_cache(maxsize=1)
def textures() -> dict[str, np.ndarray]:
    """Named RGB uint8 texture photographs (loaded once, offline)."""
    import skimage.data as data

    def tint(gray: np.ndarray, rgb: tuple[float, float, float]) -> np.ndarray:
        return np.clip(gray[..., None].astype(np.float32) * np.array(rgb), 0, 255).astype(np.uint8)

    out = {
        "brick": tint(data.brick(), (1.05, 0.72, 0.6)),
        "grass": tint(data.grass(), (0.55, 0.85, 0.35)),
        "gravel": tint(data.gravel(), (0.78, 0.78, 0.76)),
    }
    import ultralytics

    bus = cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "bus.jpg"))
    if bus is not None:
        bus = cv2.cvtColor(bus, cv2.COLOR_BGR2RGB)
        out["facade"] = bus[:230]  # building front above the bus and the people
        out["cobbles"] = bus[930:]  # pavement below everyone's feet
    return out


# metres one texture photo spans on the ground (sets the scale of stones, grass, cobbles)
TEXTURE_SPAN_M = {"grass": 2.0, "gravel": 1.5, "cobbles": 3.0, "brick": 2.5, "facade": 20.0}


def _scaled(name: str, m_per_px: float) -> np.ndarray:
    """Texture ``name`` resized so one pixel covers ``m_per_px`` metres."""
    tex = textures()[name]
    scale = TEXTURE_SPAN_M[name] / tex.shape[1] / m_per_px
    size = (max(8, round(tex.shape[1] * scale)), max(8, round(tex.shape[0] * scale)))
    return cv2.resize(tex, size, interpolation=cv2.INTER_AREA)


def _tile(texture: np.ndarray, height: int, width: int) -> np.ndarray:
    reps = (-(-height // texture.shape[0]), -(-width // texture.shape[1]), 1)
    return np.tile(texture, reps)[:height, :width]


def ground_map(rng: np.random.Generator) -> np.ndarray:
    """Top-down RGB uint8 map of the ground: X across (columns), Z along the road (rows, far first).

    A two-lane asphalt road centred on X = 0 with dashed centre line and edge lines, kerbs, then
    grass, gravel or cobbles on each side.
    """
    t = textures()
    h, w = int(GROUND_LENGTH_M / GROUND_M_PER_PX), int(2 * GROUND_HALF_WIDTH_M / GROUND_M_PER_PX)
    side = _scaled(str(rng.choice([k for k in ("grass", "gravel", "cobbles") if k in t])), GROUND_M_PER_PX)
    ground = _tile(side, h, w).copy()
    asphalt = _tile(_scaled("gravel", GROUND_M_PER_PX * 2), h, w).astype(np.float32)
    asphalt = (asphalt * rng.uniform(0.3, 0.45) + 20).astype(np.uint8)
    x = (np.arange(w) - w / 2) * GROUND_M_PER_PX
    road = np.abs(x) < LANE_WIDTH_M
    ground[:, road] = asphalt[:, road]
    paint = np.array([235, 235, 225], np.uint8)
    line = round(0.12 / GROUND_M_PER_PX)
    for edge in (-LANE_WIDTH_M + 0.3, LANE_WIDTH_M - 0.3):
        c = round(w / 2 + edge / GROUND_M_PER_PX)
        ground[:, c - line // 2 : c + line // 2 + 1] = paint
    dash, period = round(3.0 / GROUND_M_PER_PX), round(9.0 / GROUND_M_PER_PX)
    rows = (np.arange(h) % period) < dash
    centre = round(w / 2)
    ground[rows, centre - line // 2 : centre + line // 2 + 1] = np.array([245, 200, 40], np.uint8)
    return ground


@dataclass(frozen=True)
class Backdrop:
    """What stays fixed through a scene: the ground map, the sky's colour and the far wall."""

    ground: np.ndarray
    sky_top: tuple[float, float, float]
    wall: str


def make_backdrop(rng: np.random.Generator, ground: np.ndarray | None = None) -> Backdrop:
    """Draw a backdrop (a new ground map unless one is given to reuse)."""
    ground = ground_map(rng) if ground is None else ground
    sky = tuple(float(v) for v in rng.uniform([0.25, 0.5, 0.8], [0.45, 0.7, 0.95]))
    wall = str(rng.choice([k for k in ("facade", "brick", "grass") if k in textures()]))
    return Backdrop(ground, sky, wall)


def render_background(camera: Camera, backdrop: Backdrop, ground_origin_z: float = -20.0) -> np.ndarray:
    """The background through ``camera``: ``[H, W, 3]`` float32 RGB in [0, 1].

    Every pixel's ray is intersected with the ground plane (Y = 0) and with a wall 70 m ahead; the
    sky fills the rest. The ground map's near edge lies at ``ground_origin_z`` metres.
    """
    h, w = camera.height, camera.width
    v = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    top, horizon = np.array(backdrop.sky_top, np.float32), np.float32(0.88)
    frame = np.broadcast_to(top * (1 - v) + horizon * v, (h, w, 3)).copy()
    rays = _rays(camera)
    origin = np.asarray(camera.position, np.float32)
    wall_z, wall_height = origin[2] + 70.0, 12.0
    m_per_px = wall_height / 480
    wall = _scaled(backdrop.wall, m_per_px)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_wall = (wall_z - origin[2]) / rays[..., 2]
        t_ground = -origin[1] / rays[..., 1]
    hit_wall = (t_wall > 0) & (origin[1] + t_wall * rays[..., 1] <= wall_height)
    hit_ground = (t_ground > 0) & (rays[..., 1] < 0) & ~(hit_wall & (t_wall < t_ground))
    hit_wall &= ~hit_ground
    # wall: texture coordinates from the hit point (X along the wall, Y up it)
    x_w = (origin[0] + t_wall * rays[..., 0]) / m_per_px
    y_w = (wall_height - (origin[1] + t_wall * rays[..., 1])) / m_per_px
    frame = _sample(frame, wall, x_w % wall.shape[1], np.clip(y_w, 0, wall.shape[0] - 1), hit_wall)
    # ground: the map's columns are X (centred), rows are Z (far first)
    ground = backdrop.ground
    gh, gw = ground.shape[:2]
    x_g = (origin[0] + t_ground * rays[..., 0]) / GROUND_M_PER_PX + gw / 2
    z_g = (origin[2] + t_ground * rays[..., 2] - ground_origin_z) / GROUND_M_PER_PX
    inside = hit_ground & (x_g >= 0) & (x_g < gw - 1) & (z_g >= 0) & (z_g < gh - 1)
    return _sample(frame, ground, x_g, gh - 1 - z_g, inside)


def _rays(camera: Camera) -> np.ndarray:
    """``[H, W, 3]`` world-space ray directions through every pixel centre."""
    f = camera.focal_px
    u = (np.arange(camera.width, dtype=np.float32) + 0.5 - camera.width / 2) / f
    v = -(np.arange(camera.height, dtype=np.float32) + 0.5 - camera.height / 2) / f
    cam = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1), np.float32)), axis=-1)
    return cam @ camera.rotation.astype(np.float32)  # rotation is world→camera; its transpose maps back


def _sample(
    frame: np.ndarray, texture: np.ndarray, x: np.ndarray, y: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Bilinear lookup of ``texture`` (uint8 RGB) at (x, y) where ``mask`` holds."""
    if not mask.any():
        return frame
    mx = np.where(mask, x, -1).astype(np.float32)
    my = np.where(mask, y, -1).astype(np.float32)
    looked = (
        cv2.remap(texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT).astype(np.float32) / 255
    )
    return np.where(mask[..., None], looked, frame)
