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
from dataclasses import asdict, dataclass

import kornia
import torch
import torch.nn.functional as F

from physadv.printing.colour import ColourTransfer, clamp_straight_through


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

    def as_dict(self) -> dict:
        return asdict(self)

    def draw(self, n: int, generator: torch.Generator, patch_px: int) -> dict[str, torch.Tensor]:
        """Parameters for ``n`` placements (CPU tensors; the noise is ``[n, 3, patch_px, patch_px]``)."""

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
    if p > 1.5 * size:  # antialias towards the on-screen size before sampling
        texture = F.interpolate(texture, size=(int(1.5 * size),) * 2, mode="bilinear", antialias=True)
        p = texture.shape[-1]
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
    n, p = b * k, patch.shape[-1]
    dev = images.device
    params = {key: v.to(dev) for key, v in params.items()}
    printed = (transfer or ColourTransfer.identity())(patch)
    x = _crease(printed.expand(n, -1, -1, -1), params)
    x = kornia.enhance.adjust_contrast(x, params["contrast"], clip_output=False)
    x = kornia.enhance.adjust_brightness(x, params["brightness"], clip_output=False)
    x = clamp_straight_through(x + params["noise"])
    # empty slots get a harmless box (a degenerate one has no homography) and alpha 0
    boxes = torch.where(valid[..., None], boxes, boxes.new_tensor([0.0, 0.0, 16.0, 32.0]))
    corners = patch_corners(boxes.reshape(n, 4), params, eot)
    side_px = (corners[:, 1] - corners[:, 0]).norm(dim=1).clamp(min=1.0)
    texture = torch.cat([x, valid.reshape(n, 1, 1, 1).to(x).expand(-1, 1, p, p)], dim=1)
    texture = _blur(texture, params["blur"] * p / side_px.detach())
    span = (corners.detach().amax(dim=1) - corners.detach().amin(dim=1)).amax()
    size = int(span.ceil()) + 3
    windows, origin = _warp_windows(texture, corners, size)
    h, w = images.shape[-2:]
    out = F.pad(images, (size, size, size, size))  # windows may reach past the image's edges
    for i in valid.flatten().nonzero().flatten().tolist():  # overlapping people: later slots on top
        x0, y0 = (origin[i] + size).tolist()
        x0, y0 = min(max(x0, 0), w + size), min(max(y0, 0), h + size)
        region = out[i // k, :, y0 : y0 + size, x0 : x0 + size]
        # alpha is geometry only (no gradient to the patch), so the region need not be kept for backward
        cover = windows[i, 3:].detach()
        out[i // k, :, y0 : y0 + size, x0 : x0 + size] = region * (1 - cover) + windows[i, :3]
    return out[..., size : size + h, size : size + w]
