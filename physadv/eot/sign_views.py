"""Expectation over Transformation on the sign plane: random views of one sign.

A view is drawn once (camera pose, backdrop, light, blur, noise, compression) and rendered many
times: its background and the sign's post are rendered when the view is drawn, and each step only
composites the current sign face (sticker included) at the view's corners and applies the view's
effects. That is the renderer's own geometry (:func:`physadv.scene.compose.composite`) and effects
(:func:`physadv.scene.effects.apply_effects`), so the attack optimises through what the replays show.

Two kinds of view:

- ``crop``: a camera framing the sign as the classifier's training crops do
  (:func:`physadv.scene.dataset.crop_camera`).
- ``frame``: a whole camera frame (4:3) with the sign somewhere in it, for detectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from physadv.eot.view_range import ViewRange
from physadv.scene.backgrounds import ground_map, make_backdrop, render_background
from physadv.scene.camera import Camera, facing_normal, plane_corners, viewing_angle_deg
from physadv.scene.compose import Texture, WarpPlan, composite, plan_warp, resize_weights
from physadv.scene.dataset import crop_camera
from physadv.scene.effects import (
    EffectParams,
    apply_effects,
    apply_effects_each,
    draw_effects,
    jpeg_batches,
    jpeg_each,
)
from physadv.scene.render import pole_object
from physadv.scene.signs import SIGNS
from physadv.scene.spec import FT

REF_WIDTH_PX, REF_HFOV_DEG = 640, 60.0  # the lab and drive-by cameras in scenes/


@dataclass
class SignView:
    """One drawn view. Pixels: u right, v down; corners TL, TR, BR, BL of the face rectangle.

    Attributes:
        base: ``[3, h, w]`` background and post, before effects; the sign face is composited on it.
        corners: ``[4, 2]`` the face's corners in view pixels.
        box: ``(x1, y1, x2, y2)`` the face's box in view pixels (clipped to the view).
    """

    base: torch.Tensor
    corners: torch.Tensor
    box: tuple[float, float, float, float]
    effects: EffectParams
    distance_m: float
    angle_deg: float
    noise_seed: int
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # see render_views

    def warp_plan(self, face: torch.Tensor) -> WarpPlan:
        """The face's warp into this view, worked out on first use for a face of that size."""
        key = ("warp", tuple(face.shape[-2:]))
        if key not in self.cache:
            self.cache[key] = plan_warp(key[1], self.corners[None])
        return self.cache[key]


def _effects(rng: np.random.Generator, r: ViewRange) -> EffectParams:
    ranges = dict(r.effects)
    if rng.random() < r.jpeg_probability:
        ranges["jpeg_quality"] = list(r.jpeg_quality)
    return draw_effects(rng, ranges)


def _pose(rng: np.random.Generator, sign: str, r: ViewRange) -> tuple[tuple, float, tuple, float]:
    """A sign centre, its yaw, and a camera position at the drawn distance and viewing angle."""
    spec = SIGNS[sign]
    distance = float(np.exp(rng.uniform(math.log(r.distance_ft[0] * FT), math.log(r.distance_ft[1] * FT))))
    angle = float(rng.uniform(*r.angle_deg))
    yaw = float(rng.uniform(-10, 10))
    centre = (0.0, float(rng.uniform(*r.sign_height_m)) + spec.height_m / 2, 30.0)
    offset = facing_normal(yaw + angle) * distance
    position = (float(offset[0]), float(rng.uniform(*r.camera_height_m)), centre[2] + float(offset[2]))
    return centre, yaw, position, distance


def _frame_camera(rng: np.random.Generator, centre, position, width: int) -> Camera:
    height = width * 3 // 4
    aimed = Camera(width, height, REF_HFOV_DEG, position).looking_at(centre)
    vfov = REF_HFOV_DEG * height / width
    return Camera(
        width,
        height,
        REF_HFOV_DEG,
        position,
        aimed.yaw_deg + float(rng.uniform(-0.38, 0.38)) * REF_HFOV_DEG,
        aimed.pitch_deg + float(rng.uniform(-0.3, 0.3)) * vfov,
    )


def draw_views(
    rng: np.random.Generator,
    count: int,
    sign: str = "stop",
    kind: str = "crop",
    view_range: ViewRange | None = None,
    frame_width: int = 320,
    max_crop_px: int = 128,
    device: torch.device | str = "cpu",
) -> list[SignView]:
    """Draw ``count`` views of ``sign`` (``kind`` is ``"crop"`` or ``"frame"``; frames are
    ``frame_width`` wide, 4:3)."""
    r = view_range or ViewRange()
    spec = SIGNS[sign]
    # a ground map takes seconds to draw: share a few across the views (sky and far wall vary per view)
    grounds = [ground_map(rng) for _ in range(min(4, 1 + count // 128))]
    views = []
    while len(views) < count:
        centre, yaw, position, distance = _pose(rng, sign, r)
        if kind == "crop":
            cam = crop_camera(rng, sign, centre, position, distance, max_crop_px, REF_WIDTH_PX, REF_HFOV_DEG)
        else:
            cam = _frame_camera(rng, centre, position, frame_width)
        world = plane_corners(centre, spec.width_m, spec.height_m, yaw)
        corners = cam.project(world)
        x1, y1 = corners.min(axis=0).clip(0, None)
        x2, y2 = corners.max(axis=0)
        x2, y2 = min(x2, cam.width), min(y2, cam.height)
        if x2 - x1 < 4 or y2 - y1 < 4 or (x2 - x1) * (y2 - y1) < 0.6 * np.prod(np.ptp(corners, axis=0)):
            continue  # the sign must be (mostly) in view
        backdrop = make_backdrop(rng, grounds[len(views) % len(grounds)])
        base = torch.from_numpy(render_background(cam, backdrop)).permute(2, 0, 1)[None]
        pole = pole_object(centre, centre[1], yaw)
        pole_corners = cam.project(plane_corners(pole.centre, pole.width_m, pole.height_m, yaw))
        base = composite(base, pole.texture[None], torch.from_numpy(pole_corners).float()[None])[0]
        views.append(
            SignView(
                base.to(device),
                torch.from_numpy(corners).float().to(device),
                (float(x1), float(y1), float(x2), float(y2)),
                _effects(rng, r),
                distance,
                viewing_angle_deg(position, centre, yaw),
                int(rng.integers(2**31)),
            )
        )
    return views


def render_views(
    face: torch.Tensor, views: list[SignView], out_size: tuple[int, int], batched_shrink: bool | None = None
) -> torch.Tensor:
    """Composite the sign ``face`` (``[4, h, w]`` RGBA, differentiable) into each view, apply the
    view's effects and resize to ``out_size`` (H, W).

    All the views render as one batch, each on the top-left of a canvas as large as the largest view
    (crop views come in many sizes): one warp of the face into every view, the effects as batched
    operations (:func:`physadv.scene.effects.apply_effects_each`), one resize, and one trip to the host
    for all the JPEG round trips. Each view keeps what does not change between steps (where its pixels
    sample the face; its light, shadow, blur kernel and noise; its place on the canvas). The same pixels
    as rendering each view alone (:func:`_render_views_each`), within float rounding. ``batched_shrink``:
    shrink the face for all the views at once (:meth:`physadv.scene.compose.Texture.canvas`), not one
    resize per view; None: on a GPU (on the CPU one resize per view is faster).

    Shape:
        - returns: ``[len(views), 3, H, W]`` RGB in [0, 1]
    """
    sizes = [tuple(v.base.shape[-2:]) for v in views]
    canvas = (max(s[0] for s in sizes), max(s[1] for s in sizes))
    batched = face.device.type == "cuda" if batched_shrink is None else batched_shrink
    x = _composite(face, views, canvas, batched)
    noise = [torch.Generator().manual_seed(v.noise_seed) for v in views]
    x = apply_effects_each(x, [v.effects for v in views], noise, [v.cache for v in views], sizes)
    x = jpeg_batches([x], [[v.effects.jpeg_quality for v in views]], [sizes])[0]
    if all(s == canvas for s in sizes):
        return _resize(x, out_size)
    rows, cols = zip(*(_resize_matrices(v, canvas, out_size, x) for v in views), strict=True)
    return torch.stack(rows) @ x @ torch.stack(cols)  # per view: rows [1, H, h] · x · cols [1, w, W]


def _on_canvas(v: SignView, face: torch.Tensor, canvas: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The view's base ``[1, 3, H, W]`` and sampling grid ``[1, H, W, 2]`` on the top-left of ``canvas``
    (the grid far outside the face beyond the view), kept for that canvas."""
    key = (tuple(face.shape[-2:]), tuple(canvas))
    if v.cache.get("canvas", (None,))[0] != key:  # one canvas kept: a view's batches share it mostly
        (h, w), grid = v.base.shape[-2:], v.warp_plan(face).grid(tuple(v.base.shape[-2:]))
        base, far = v.base[None], grid
        if (h, w) != tuple(canvas):
            base = F.pad(base, (0, canvas[1] - w, 0, canvas[0] - h))
            far = grid.new_full((1, *canvas, 2), -3.0)
            far[:, :h, :w] = grid
        v.cache["canvas"] = (key, base, far)
    return v.cache["canvas"][1:]


def _composite(
    face: torch.Tensor, views: list[SignView], canvas: tuple[int, int], batched: bool
) -> torch.Tensor:
    """Composite the face into every view with one warp: each view's shrunk copy of the face
    (:class:`physadv.scene.compose.Texture`) on a common zero texture canvas, the views' kept sampling
    grids rescaled to it (zero padding samples as grid_sample's own zeros outside a texture).

    Shape:
        - returns: ``[len(views), 3, H, W]`` (``canvas``)
    """
    plans = [v.warp_plan(face) for v in views]
    texture = Texture(face[None]).canvas([p.shrink_to for p in plans], batched)
    hm, wm = texture.shape[-2:]
    # align_corners: a normalised -1..1 spans pixel centres 0..n-1; the texture canvas is (hm, wm)
    scale = torch.tensor(
        [[(p.texture_hw[1] - 1) / (wm - 1), (p.texture_hw[0] - 1) / (hm - 1)] for p in plans],
        dtype=torch.float64,
    )
    bases, grids = zip(*(_on_canvas(v, face, canvas) for v in views), strict=True)
    grids = torch.cat(grids)
    grid = ((grids.double() + 1) * scale.to(grids.device)[:, None, None] - 1).to(texture)
    warped = F.grid_sample(texture, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return torch.cat(bases).to(warped) * (1 - warped[:, 3:]) + warped[:, :3]


def _resize_matrices(v: SignView, canvas: tuple[int, int], out_size: tuple[int, int], like: torch.Tensor):
    """The resize of the view (on the top-left of ``canvas``) to ``out_size`` as the resize of it alone
    does it (:func:`_resize`): ``[1, H_out, H]`` rows and ``[1, W, W_out]`` columns, kept."""
    key = (tuple(canvas), tuple(out_size), like.dtype, like.device)
    if v.cache.get("resize", (None,))[0] != key:
        (h, w), (ho, wo) = v.base.shape[-2:], out_size
        shrink = h > ho  # as _resize: antialiased when it shrinks the height
        rows = np.zeros((ho, canvas[0]), np.float32)
        cols = np.zeros((wo, canvas[1]), np.float32)
        rows[:, :h], cols[:, :w] = resize_weights(h, ho, shrink), resize_weights(w, wo, shrink)
        v.cache["resize"] = (
            key,
            torch.from_numpy(rows)[None].to(like),
            torch.from_numpy(cols).T[None].to(like),
        )
    return v.cache["resize"][1:]


def _resize(x: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(out_size):
        return x
    shrink = x.shape[-2] > out_size[0]
    return F.interpolate(x, size=out_size, mode="bilinear", align_corners=False, antialias=shrink)


def _render_views_each(face: torch.Tensor, views: list[SignView], out_size: tuple[int, int]) -> torch.Tensor:
    """:func:`render_views` one view at a time (the reference its batches are tested and timed against)."""
    frames, texture = [], Texture(face[None])
    for v in views:
        x = composite(v.base[None], texture, v.corners[None], v.warp_plan(face))
        noise = torch.Generator().manual_seed(v.noise_seed)
        frames.append(apply_effects(x, v.effects, noise, compress=False, cache=v.cache))
    compressed = [i for i, v in enumerate(views) if v.effects.jpeg_quality > 0]
    qualities = [views[i].effects.jpeg_quality for i in compressed]
    for i, x in zip(compressed, jpeg_each([frames[i] for i in compressed], qualities), strict=True):
        frames[i] = x
    return torch.cat([_resize(x, out_size) for x in frames])


def scaled_boxes(views: list[SignView], out_size: tuple[int, int]) -> torch.Tensor:
    """The views' sign boxes ``[B, 4]`` (xyxy) in ``out_size`` pixels."""
    rows = []
    for v in views:
        sy, sx = out_size[0] / v.base.shape[-2], out_size[1] / v.base.shape[-1]
        x1, y1, x2, y2 = v.box
        rows.append([x1 * sx, y1 * sy, x2 * sx, y2 * sy])
    return torch.tensor(rows)
