"""Loss terms shared by the attacks, each a small differentiable callable.

Images are ``[B, 3, H, W]`` (or ``[3, H, W]``) RGB in [0, 1].
"""

from __future__ import annotations

import torch


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt that is exactly 0 at 0 with a finite gradient everywhere."""
    return torch.where(x > 0, x.clamp_min(1e-12).sqrt(), torch.zeros_like(x))


def nps(image: torch.Tensor, palette: torch.Tensor, mode: str = "min") -> torch.Tensor:
    """Non-printability score.

    ``mode="min"`` (adversarial-yolo): mean over pixels of the distance to the nearest printable
    colour — 0 for an image made of palette colours. ``mode="product"`` (Sharif et al., RP2): mean
    over pixels of the product of distances to every palette colour.

    Args:
        image: ``[B, 3, H, W]`` or ``[3, H, W]``.
        palette: ``[K, 3]`` printable colours.
    """
    x = image if image.ndim == 4 else image[None]
    pal = palette.to(x.device, x.dtype).view(1, -1, 3, 1, 1)
    d = _safe_sqrt(((x[:, None] - pal) ** 2).sum(dim=2))  # [B, K, H, W]
    if mode == "min":
        return d.min(dim=1).values.mean()
    if mode == "product":
        return d.prod(dim=1).mean()
    raise ValueError(f"unknown NPS mode '{mode}': use 'min' or 'product'")


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (smooth artefacts print and survive better)."""
    x = image if image.ndim == 4 else image[None]
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    return dx + dy


def mask_norm(delta: torch.Tensor, mask: torch.Tensor, p: int = 2) -> torch.Tensor:
    """RP2's ``‖M·δ‖_p``, normalised by pixel count: L1 = mean |Mδ|, L2 = sqrt(mean (Mδ)²).

    RP2 uses L1 first to find sticker locations, then L2.
    """
    md = mask * delta
    if p == 1:
        return md.abs().mean()
    if p == 2:
        return _safe_sqrt((md**2).mean())
    raise ValueError("mask_norm supports p=1 or p=2")
