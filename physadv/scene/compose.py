"""Differentiable compositing of planar textures (sign faces, person sprites, patches) into frames.

The renderer and the attacks both call :func:`composite`, so an attack optimises through exactly
the geometry the replays render. Corners are pixels, ordered top-left, top-right, bottom-right,
bottom-left; the homography maps texture pixels to frame pixels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry import create_meshgrid
from kornia.geometry.conversions import normalize_homography
from kornia.geometry.linalg import transform_points
from kornia.geometry.transform import get_perspective_transform


def texture_corners(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """``[1, 4, 2]`` corners of a ``height × width`` texture in its own pixel coordinates."""
    return like.new_tensor(
        [[[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]], dtype=torch.float32
    )


@dataclass
class WarpPlan:
    """What warping a texture to fixed corners needs besides its pixels, worked out once.

    ``shrink_to``: the size (h, w) the texture is first shrunk to, antialiased, so far objects don't
    alias (None: used as it is); ``matrix``: ``[B, 3, 3]`` homography from the (shrunk) texture's
    pixels, ``texture_hw`` in size, to frame pixels. EOT views keep their plan, so a step only
    resamples the texture at the kept positions.
    """

    shrink_to: tuple[int, int] | None
    texture_hw: tuple[int, int]
    matrix: torch.Tensor
    grids: dict = field(default_factory=dict, repr=False)

    def grid(self, size: tuple[int, int]) -> torch.Tensor:
        """``[B, H, W, 2]``: where each pixel of a ``size`` frame samples the texture, in the
        texture's normalised coordinates (corner-aligned, as ``grid_sample`` reads them)."""
        size = tuple(size)
        if size not in self.grids:
            frame_from_texture = normalize_homography(self.matrix, self.texture_hw, size, align_corners=True)
            texture_from_frame = torch.linalg.inv(frame_from_texture.double()).float()
            pixels = create_meshgrid(*size, normalized_coordinates=True, device=self.matrix.device)
            self.grids[size] = transform_points(texture_from_frame[:, None], pixels)
        return self.grids[size]


def plan_warp(texture_hw: tuple[int, int], corners: torch.Tensor) -> WarpPlan:
    """The plan for a ``texture_hw`` texture at ``corners`` (``[B, 4, 2]`` frame pixels)."""
    h, w = texture_hw
    corners = corners.detach().float()
    span = (corners.amax(dim=1) - corners.amin(dim=1)).amax(dim=0)  # [2]: on-screen width, height
    target_w, target_h = int(span[0].clamp(min=4) * 1.5), int(span[1].clamp(min=4) * 1.5)
    shrink_to = None
    if target_w < w or target_h < h:
        shrink_to = (max(4, min(h, target_h)), max(4, min(w, target_w)))
        h, w = shrink_to
    own = texture_corners(h, w, corners).expand(corners.shape[0], -1, -1)
    return WarpPlan(shrink_to, (h, w), get_perspective_transform(own, corners))


class Texture:
    """An RGBA texture ``[B, 4, h, w]`` ready to warp: its colour premultiplied by its alpha (so
    filtering leaves no dark fringes), and shrunk copies made on demand from a chain of halvings, so
    the many views of one texture in an EOT step share most of their filtering."""

    def __init__(self, rgba: torch.Tensor):
        self.levels = [torch.cat([rgba[:, :3] * rgba[:, 3:], rgba[:, 3:]], dim=1)]

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.levels[0].shape[-2:])

    def at(self, size: tuple[int, int] | None) -> torch.Tensor:
        """The texture shrunk (antialiased) to ``size`` (h, w); None: as it is."""
        if size is None:
            return self.levels[0]
        level = self.levels[self.level(size)]
        return level if tuple(level.shape[-2:]) == tuple(size) else _resize(level, size)

    def level(self, size: tuple[int, int]) -> int:
        """The index of the level that ``size`` is shrunk from: the smallest at least that size."""
        while True:  # halve while the next level is still at least the size asked for
            h, w = self.levels[-1].shape[-2:]
            if h // 2 < size[0] or w // 2 < size[1]:
                break
            self.levels.append(_resize(self.levels[-1], (h // 2, w // 2)))
        return next(
            i
            for i in reversed(range(len(self.levels)))
            if self.levels[i].shape[-2] >= size[0] and self.levels[i].shape[-1] >= size[1]
        )

    def canvas(self, sizes: list[tuple[int, int] | None], batched: bool = False) -> torch.Tensor:
        """Shrunk copies of a one-texture ``[1, 4, h, w]`` at ``sizes`` (as :meth:`at`), top-left on a
        zero canvas as large as the largest: ``[len(sizes), 4, H, W]``. ``batched``: in a few operations
        per level instead of one resize per size — the same antialiased filter as a resize (torch's own
        weights, :func:`_taps`), applied as two weighted sums (``embedding_bag``), columns then rows."""
        own = [self.size if s is None else tuple(s) for s in sizes]
        hm, wm = max(s[0] for s in own), max(s[1] for s in own)
        if not batched:
            return torch.cat([F.pad(self.at(s), (0, wm - s[1], 0, hm - s[0])) for s in own])
        levels = [self.level(s) for s in own]
        parts, order = [], []
        for lv in sorted(set(levels)):
            chosen = [i for i, v in enumerate(levels) if v == lv]
            parts.append(_shrink_level(self.levels[lv][0], [own[i] for i in chosen], (hm, wm)))
            order += chosen
        out = torch.cat(parts)
        return out if order == sorted(order) else out[torch.tensor(order).argsort().to(out.device)]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


@functools.lru_cache(maxsize=4096)
def resize_weights(n_in: int, n_out: int, antialias: bool = True) -> np.ndarray:
    """``[n_out, n_in]``: torch's bilinear resize (``align_corners=False``) of ``n_in`` samples to
    ``n_out`` as a matrix, read off by resizing the identity (n_in = n_out: the identity)."""
    if n_in == n_out:
        return np.eye(n_in, dtype=np.float32)
    eye = torch.eye(n_in).view(n_in, 1, 1, n_in)
    resized = F.interpolate(eye, size=(1, n_out), mode="bilinear", align_corners=False, antialias=antialias)
    return resized[:, 0, 0, :].T.numpy()


@functools.lru_cache(maxsize=4096)
def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`resize_weights` (antialiased) as ``[n_out, K]`` input indices and weights, in input order
    (zero weights pad the rows)."""
    weights = resize_weights(n_in, n_out)
    k = int((weights != 0).sum(axis=1).max())
    index = np.argsort(weights == 0, axis=1, kind="stable")[:, :k]
    return index, np.take_along_axis(weights, index, axis=1)


def _bags(taps: list[tuple[np.ndarray, np.ndarray]], rows: int, offsets: list[int], like: torch.Tensor):
    """One ``embedding_bag`` input for several resizes: each one's taps (shifted by its offset in the
    table) padded to ``rows`` output rows and to the widest K with zero weights."""
    k = max(t[0].shape[1] for t in taps)
    index = np.zeros((len(taps), rows, k), np.int64)
    weight = np.zeros((len(taps), rows, k), np.float32)
    for b, ((i, w), off) in enumerate(zip(taps, offsets, strict=True)):
        index[b, : len(i), : i.shape[1]], weight[b, : len(w), : w.shape[1]] = i + off, w
    return (
        torch.from_numpy(index.reshape(-1, k)).to(like.device),
        torch.from_numpy(weight.reshape(-1, k)).to(like),
    )


def _shrink_level(level: torch.Tensor, sizes: list[tuple[int, int]], canvas: tuple[int, int]) -> torch.Tensor:
    """``level`` (``[C, h, w]``) resized as :func:`_resize` to each of ``sizes``, on zero canvases:
    ``[len(sizes), C, H, W]``. Columns first, then rows, as torch's separable resize."""
    c, h, w = level.shape
    hm, wm = canvas
    n = len(sizes)
    table = level.permute(2, 0, 1).reshape(w, c * h)  # a row per input column
    index, weight = _bags([_taps(w, s[1]) for s in sizes], wm, [0] * n, level)
    cols = F.embedding_bag(index, table, mode="sum", per_sample_weights=weight)  # [(n, wm), (c, h)]
    table = cols.view(n, wm, c, h).permute(0, 3, 1, 2).reshape(n * h, wm * c)  # a row per (view, input row)
    index, weight = _bags([_taps(h, s[0]) for s in sizes], hm, [b * h for b in range(n)], level)
    rows = F.embedding_bag(index, table, mode="sum", per_sample_weights=weight)  # [(n, hm), (wm, c)]
    return rows.view(n, hm, wm, c).permute(0, 3, 1, 2)


def warp_texture(
    texture: torch.Tensor | Texture,
    corners: torch.Tensor,
    size: tuple[int, int],
    plan: WarpPlan | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp an RGBA texture to frame pixels: premultiplied RGB ``[B, 3, H, W]`` and alpha ``[B, 1, H, W]``.

    ``plan``: from :func:`plan_warp` for this texture size and these corners (worked out if not given).
    """
    texture = texture if isinstance(texture, Texture) else Texture(texture)
    plan = plan or plan_warp(texture.size, corners)
    source = texture.at(plan.shrink_to).expand(corners.shape[0], -1, -1, -1)
    grid = plan.grid(size).to(source)
    warped = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return warped[:, :3], warped[:, 3:]


def composite(
    frames: torch.Tensor,
    texture: torch.Tensor | Texture,
    corners: torch.Tensor,
    plan: WarpPlan | None = None,
) -> torch.Tensor:
    """Paste an RGBA texture into frames at the given corners (alpha-blended, differentiable).

    Shape:
        - frames: ``[B, 3, H, W]`` RGB in [0, 1]
        - texture: ``[B, 4, h, w]`` or ``[1, 4, h, w]`` RGBA in [0, 1] (or a :class:`Texture` of one)
        - corners: ``[B, 4, 2]`` frame pixels (TL, TR, BR, BL)
        - plan: optional, :func:`plan_warp` for this texture size and these corners
        - returns: ``[B, 3, H, W]``
    """
    rgb, alpha = warp_texture(texture, corners, tuple(frames.shape[-2:]), plan)
    return frames * (1 - alpha) + rgb


def paste_in_texture(
    texture: torch.Tensor,
    patch: torch.Tensor,
    box: tuple[int, int, int, int],
    patch_alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """Place a patch (``[B, 3, ph, pw]``) into an RGBA texture's axis-aligned ``box`` (x0, y0, x1, y1
    in texture pixels), keeping the texture's own alpha. Differentiable in ``patch``."""
    x0, y0, x1, y1 = box
    b = max(texture.shape[0], patch.shape[0])
    resized = F.interpolate(
        patch, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False, antialias=True
    )
    a = (
        torch.ones_like(resized[:, :1])
        if patch_alpha is None
        else F.interpolate(patch_alpha, size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False)
    )
    out = texture.expand(b, -1, -1, -1).clone()
    region = out[:, :3, y0:y1, x0:x1]
    out[:, :3, y0:y1, x0:x1] = region * (1 - a) + resized * a
    return out
