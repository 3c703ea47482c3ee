"""Differentiable compositing of planar textures (sign faces, person sprites, patches) into frames.

The renderer and the attacks both call :func:`composite`, so an attack optimises through exactly
the geometry the replays render. Corners are pixels, ordered top-left, top-right, bottom-right,
bottom-left; the homography maps texture pixels to frame pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_perspective_transform, warp_perspective


def texture_corners(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """``[1, 4, 2]`` corners of a ``height × width`` texture in its own pixel coordinates."""
    return like.new_tensor(
        [[[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]], dtype=torch.float32
    )


def _prefilter(texture: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """Shrink the texture (antialiased) towards its on-screen size, so far objects don't alias."""
    h, w = texture.shape[-2:]
    span = (corners.amax(dim=1) - corners.amin(dim=1)).amax(dim=0)  # [2]: on-screen width, height
    target_w, target_h = int(span[0].clamp(min=4) * 1.5), int(span[1].clamp(min=4) * 1.5)
    if target_w >= w and target_h >= h:
        return texture
    size = (max(4, min(h, target_h)), max(4, min(w, target_w)))
    return F.interpolate(texture, size=size, mode="bilinear", align_corners=False, antialias=True)


def warp_texture(
    texture: torch.Tensor, corners: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp an RGBA texture to frame pixels: premultiplied RGB ``[B, 3, H, W]`` and alpha ``[B, 1, H, W]``."""
    b = corners.shape[0]
    texture = _prefilter(texture, corners.detach())
    h, w = texture.shape[-2:]
    rgb_premult = torch.cat([texture[:, :3] * texture[:, 3:], texture[:, 3:]], dim=1).expand(b, -1, -1, -1)
    matrix = get_perspective_transform(texture_corners(h, w, corners).expand(b, -1, -1), corners.float())
    warped = warp_perspective(rgb_premult, matrix, size, align_corners=True)
    return warped[:, :3], warped[:, 3:]


def composite(frames: torch.Tensor, texture: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """Paste an RGBA texture into frames at the given corners (alpha-blended, differentiable).

    Shape:
        - frames: ``[B, 3, H, W]`` RGB in [0, 1]
        - texture: ``[B, 4, h, w]`` or ``[1, 4, h, w]`` RGBA in [0, 1]
        - corners: ``[B, 4, 2]`` frame pixels (TL, TR, BR, BL)
        - returns: ``[B, 3, H, W]``
    """
    rgb, alpha = warp_texture(texture, corners, tuple(frames.shape[-2:]))
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
