"""Expectation over Transformation for a patch worn on a person (Thys et al. 2019), with Kornia.

Placement: a square of side ``scale · √(w² + h²)`` of the person's box, centred on the torso (the
box centre, shifted up by ``lift · h``). Each draw then jitters the patch as a held, printed sheet
would move: size, position, in-plane rotation, perspective tilt (corner displacement), a crease,
brightness, contrast, sensor noise and blur. Draws are sampled once (:meth:`PatchEOT.draw`) and
applied deterministically (:func:`place_patches`), so a draw can be logged and replayed exactly.

The patch is composited through an explicit alpha (1 on the printed square, 0 elsewhere, warped with
the patch), never by treating black pixels as transparent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F

from physadv.eot.colour import ColourTransfer, clamp_straight_through

NOISE_PX = 64


@dataclass
class PatchEOT:
    """Ranges of the random transformations (uniform; Thys et al.'s values by default).

    ``tilt`` is the largest corner displacement as a fraction of the patch side (a sheet turned
    out of the image plane); ``blur_px`` the camera blur's σ range in screen pixels; ``crease`` the
    probability of a fold line that shades one side by up to ``crease_shade``.
    """

    scale: float = 0.2
    lift: float = 0.1
    size_jitter: tuple[float, float] = (0.85, 1.15)
    shift: float = 0.05  # fraction of the box's width / height
    rotation_deg: float = 20.0
    tilt: float = 0.12
    brightness: tuple[float, float] = (-0.1, 0.1)
    contrast: tuple[float, float] = (0.8, 1.2)
    noise: float = 0.1
    blur_px: tuple[float, float] = (0.0, 1.0)
    crease: float = 0.0
    crease_shade: float = 0.25

    def draw(self, n: int, generator: torch.Generator, patch_px: int) -> dict[str, torch.Tensor]:
        """Parameters for ``n`` placements (CPU tensors). The noise is drawn at the patch's resolution,
        at most :data:`NOISE_PX` per side (it is the camera's noise, not the print's), and resized with
        the patch to its on-screen size."""
        patch_px = min(patch_px, NOISE_PX)

        def uniform(low, high, *shape):
            return torch.rand(n, *shape, generator=generator) * (high - low) + low

        return {
            "size": uniform(*self.size_jitter),
            "shift": uniform(-self.shift, self.shift, 2),
            "rotation": uniform(-self.rotation_deg, self.rotation_deg),
            "tilt": uniform(-self.tilt, self.tilt, 4, 2),
            "brightness": uniform(*self.brightness),
            "contrast": uniform(*self.contrast),
            "noise": uniform(-self.noise, self.noise, 3, patch_px, patch_px),
            "blur": uniform(*self.blur_px),
            "crease": (torch.rand(n, generator=generator) < self.crease).float(),
            "crease_angle": uniform(0, math.pi),
            "crease_offset": uniform(-0.5, 0.5),
            "crease_shade": uniform(0.0, self.crease_shade),
        }

    def fixed(self, n: int, patch_px: int) -> dict[str, torch.Tensor]:
        """The patch held straight: no jitter, no photometric change (for evaluation)."""
        patch_px = min(patch_px, NOISE_PX)
        zeros = torch.zeros(n)
        return {
            "size": torch.ones(n),
            "shift": torch.zeros(n, 2),
            "rotation": zeros,
            "tilt": torch.zeros(n, 4, 2),
            "brightness": zeros,
            "contrast": torch.ones(n),
            "noise": torch.zeros(n, 3, patch_px, patch_px),
            "blur": zeros,
            "crease": zeros,
            "crease_angle": zeros,
            "crease_offset": zeros,
            "crease_shade": zeros,
        }


def patch_corners(boxes: torch.Tensor, params: dict, eot: PatchEOT) -> torch.Tensor:
    """Where each patch lands: ``[N, 4, 2]`` corners (TL, TR, BR, BL) in image pixels.

    Shape:
        - boxes: ``[N, 4]`` the persons' boxes, xyxy pixels
    """
    wh = boxes[:, 2:] - boxes[:, :2]
    side = eot.scale * wh.norm(dim=1) * params["size"]  # [N]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    centre = centre + params["shift"] * wh - torch.stack([torch.zeros_like(side), eot.lift * wh[:, 1]], 1)
    unit = boxes.new_tensor([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    square = (unit + params["tilt"]) * side[:, None, None]  # [N, 4, 2]
    a = torch.deg2rad(params["rotation"])
    rot = torch.stack([torch.cos(a), -torch.sin(a), torch.sin(a), torch.cos(a)], 1).view(-1, 2, 2)
    return centre[:, None] + square @ rot.transpose(1, 2)


def _crease(patches: torch.Tensor, params: dict) -> torch.Tensor:
    """Shade one side of a fold line (a soft step), as a folded sheet catches less light."""
    n, _, h, w = patches.shape
    yy, xx = torch.meshgrid(
        torch.linspace(-0.5, 0.5, h, device=patches.device),
        torch.linspace(-0.5, 0.5, w, device=patches.device),
        indexing="ij",
    )
    a, off = params["crease_angle"].view(n, 1, 1), params["crease_offset"].view(n, 1, 1)
    side = torch.sigmoid((xx * torch.cos(a) + yy * torch.sin(a) - off) * 40)
    shade = (params["crease"] * params["crease_shade"]).view(n, 1, 1)
    return patches * (1 - shade * side)[:, None]


def _blur(texture: torch.Tensor, sigma_tex: torch.Tensor) -> torch.Tensor:
    """Gaussian blur with a per-sample σ (texture pixels); σ below 0.3 px is left sharp."""
    if float(sigma_tex.max()) < 0.3:
        return texture
    k = min(31, 2 * math.ceil(3 * float(sigma_tex.max())) + 1)
    sigma = sigma_tex.clamp(min=1e-3)[:, None].expand(-1, 2)
    return kornia.filters.gaussian_blur2d(texture, (k, k), sigma)


def _warp_windows(
    texture: torch.Tensor, corners: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp RGBA textures into square windows around their corners.

    Only the window is sampled (fast), and a pixel whose inverse-mapped homogeneous coordinate is
    not positive (beyond the homography's horizon, which a small tilted quad can put inside a large
    image) samples nothing instead of dividing by zero.

    Shape:
        - texture: ``[N, 4, p, p]``; corners: ``[N, 4, 2]`` image pixels
        - returns: windows ``[N, 4, size, size]`` (RGB premultiplied) and their ``[N, 2]`` integer
          top-left positions (x, y) in image pixels
    """
    n, _, p, _ = texture.shape
    origin = (corners.detach().amin(dim=1).floor() - 1).long()  # [N, 2]
    src = corners.new_tensor([[0, 0], [p - 1, 0], [p - 1, p - 1], [0, p - 1]]).expand(n, -1, -1)
    local = (corners - origin[:, None].to(corners)).detach()
    inverse = torch.linalg.inv(
        kornia.geometry.transform.get_perspective_transform(src, local)
    )  # window → texture
    ys, xs = torch.meshgrid(
        torch.arange(size, device=corners.device, dtype=corners.dtype),
        torch.arange(size, device=corners.device, dtype=corners.dtype),
        indexing="ij",
    )
    pixels = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).view(1, -1, 3)
    mapped = pixels @ inverse.transpose(1, 2)  # [N, size², 3]
    w = mapped[..., 2:]
    ahead = w > 1e-6
    uv = torch.where(ahead, mapped[..., :2] / w.clamp(min=1e-6), torch.full_like(mapped[..., :2], -10.0))
    grid = (uv / (p - 1) * 2 - 1).view(n, size, size, 2)
    premult = torch.cat([texture[:, :3] * texture[:, 3:], texture[:, 3:]], dim=1)
    return F.grid_sample(premult, grid, mode="bilinear", padding_mode="zeros", align_corners=True), origin


def place_patches(
    images: torch.Tensor,
    patch: torch.Tensor,
    boxes: torch.Tensor,
    valid: torch.Tensor,
    params: dict,
    eot: PatchEOT,
    transfer: ColourTransfer | None = None,
) -> torch.Tensor:
    """Composite one patch onto every valid person box (differentiable in ``patch``).

    Shape:
        - images: ``[B, 3, H, W]`` RGB in [0, 1]
        - patch: ``[3, P, P]`` the intended colours; ``transfer`` maps them to printed colours
        - boxes: ``[B, K, 4]`` xyxy pixels; valid: ``[B, K]``; params: from :meth:`PatchEOT.draw` with
          ``n = B·K`` (row-major: image, then slot)
        - returns: ``[B, 3, H, W]``
    """
    b, k = valid.shape
    n, dev = b * k, images.device
    params = {key: v.to(dev) for key, v in params.items()}
    # empty slots get a harmless box (a degenerate one has no homography) and alpha 0
    boxes = torch.where(valid[..., None], boxes, boxes.new_tensor([0.0, 0.0, 16.0, 32.0]))
    corners = patch_corners(boxes.reshape(n, 4), params, eot)
    span = (corners.detach().amax(dim=1) - corners.detach().amin(dim=1)).amax()
    size = int(span.ceil()) + 3
    printed = (transfer or ColourTransfer.identity())(patch)[None]
    p = min(printed.shape[-1], int(1.5 * size))  # the largest on-screen size needs no more pixels
    if p < printed.shape[-1]:  # shrink once (antialiased) before the per-placement work
        printed = F.interpolate(printed, size=(p, p), mode="bilinear", antialias=True)
    x = _crease(printed.expand(n, -1, -1, -1), params)
    x = kornia.enhance.adjust_contrast(x, params["contrast"], clip_output=False)
    x = kornia.enhance.adjust_brightness(x, params["brightness"], clip_output=False)
    x = clamp_straight_through(x + F.interpolate(params["noise"], size=(p, p), mode="nearest"))
    side_px = (corners[:, 1] - corners[:, 0]).norm(dim=1).clamp(min=1.0)
    texture = torch.cat([x, valid.reshape(n, 1, 1, 1).to(x).expand(-1, 1, p, p)], dim=1)
    texture = _blur(texture, params["blur"] * p / side_px.detach())
    windows, origin = _warp_windows(texture, corners, size)
    return _composite_windows(images, windows, origin, valid)


def _composite_windows(
    images: torch.Tensor, windows: torch.Tensor, origin: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Blend each window into its image with indexed reads and writes, so neither the forward nor
    the backward pass touches more than the windows (plus one elementwise pass per slot).

    Shape:
        - images: ``[B, 3, H, W]``; windows: ``[B·K, 4, s, s]`` premultiplied RGB + alpha;
          origin: ``[B·K, 2]`` (x, y) of each window's top-left, image pixels; valid: ``[B, K]``
    """
    k, (h, w) = valid.shape[1], images.shape[-2:]
    n, size, dev = windows.shape[0], windows.shape[-1], images.device
    out = F.pad(images, (0, 1, 0, 1))  # one spare row and column take window pixels off the image
    offsets = torch.arange(size, device=dev)
    xs = origin[:, :1].to(dev) + offsets
    ys = origin[:, 1:].to(dev) + offsets
    xs = torch.where((xs >= 0) & (xs < w), xs, w)
    ys = torch.where((ys >= 0) & (ys < h), ys, h)
    owner = torch.arange(n, device=dev) // k
    channels = torch.arange(3, device=dev).view(1, 3, 1, 1)
    for slot in range(k):  # one window per image in a slot; overlapping people: later slots on top
        sel = torch.arange(slot, n, k, device=dev)[valid[:, slot]]
        if not len(sel):
            continue
        index = (
            owner[sel].view(-1, 1, 1, 1),
            channels,
            ys[sel].view(-1, 1, size, 1),
            xs[sel].view(-1, 1, 1, size),
        )
        cover = windows[sel, 3:].detach()  # geometry only: no gradient to the patch
        out = out.index_put(index, out[index] * (1 - cover) + windows[sel, :3])
    return out[..., :h, :w]
