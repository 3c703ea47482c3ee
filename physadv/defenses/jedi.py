"""Jedi: entropy-based localisation and removal of adversarial patches (Tarchoun et al., CVPR 2023;
the authors' ``jedi.m`` gives the numbers below). Training-free.

An optimised patch packs many grey levels into a small area, so windows over it have a high Shannon
entropy. Jedi slides windows of three sizes over the grey image — ``s``, ``1.5·s`` and ``2·s`` pixels
with ``s = max(8, ⌈side / 100⌉ rounded up to even)`` and a stride of half the window — computes each
window's entropy (256 grey levels, bits), and marks the pixels of windows above a threshold:

    threshold = μ_p + 1.5·σ_p − m·σ_p + σ_p·(ē − μ_c) / σ_c,    m = 2·(μ_p − μ_c) / μ_p

where ``μ_p, σ_p`` describe patch windows and ``μ_c, σ_c`` clean windows of that size, and ``ē`` is
this image's mean window entropy (a busy image gets a higher threshold). Regions under 0.5 % of the
image are dropped; what is left is the located patch, which raises the alarm, and is inpainted.

Where physadv differs, and why:

- Jedi completes the located region with an autoencoder trained on patch masks. physadv fills each
  region's convex hull instead (training-free, no second model to ship); say so when comparing.
- Jedi inpaints with Matlab's ``inpaintCoherent`` (coherence transport, Bornemann & März 2007);
  physadv uses OpenCV's ``INPAINT_TELEA`` (Telea 2004, the fast-marching method coherence transport
  extends), radius 5 as Matlab's default.
- ``calibrate`` re-measures ``μ_c, σ_c`` on the user's clean images (Jedi's are from Pascal VOC),
  and then raises all thresholds by one offset (bits) until at most ``false_alarms`` (5 %) of those
  images raise the alarm: with the paper's thresholds alone, 42 % of physadv's rendered street
  scenes were flagged (``physadv defend``, docs/defenses.md). Without ``calibrate`` the paper's
  values are used as they are.

Adaptive attack: BPDA through the inpainting (identity), and :meth:`Jedi.evasion_penalty` — the
entropy of the windows above the threshold, with the gradient of a coarser differentiable one
(linear binning) — which an attacker minimises to keep its patch's entropy under it, as the
authors' own adaptive attack (a low-entropy patch by colour reduction) does.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from physadv.defenses.alarms import MaskingDetector

# (mean, std) of window entropy in bits for the three window sizes, from the authors' jedi.m
PATCH_STATS = ((5.32, 0.32), (6.06, 0.34), (6.47, 0.35))
CLEAN_STATS = ((2.75, 1.16), (3.19, 1.13), (3.47, 1.07))
LEVELS = 256
COARSE = 8  # grey levels per bin of the attacker's differentiable entropy


def window_sizes(height: int, width: int) -> tuple[int, int, int]:
    """Jedi's three window sizes (pixels) for an image of this size."""

    def even_up(n: int) -> int:
        c = math.ceil(n / 100)
        return c + c % 2

    s = max(even_up(height), even_up(width), 8)
    mid = int(s * 1.5)
    return s, mid + mid % 2, 2 * s


def grey_levels(images: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` RGB in [0, 1] → ``[B, 1, H, W]`` grey in [0, 255] (not rounded: the caller
    rounds for the true entropy, or keeps it continuous for the differentiable one)."""
    weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True).clamp(0, 1) * (LEVELS - 1)


def _windows(grey: torch.Tensor, size: int) -> tuple[torch.Tensor, int, int]:
    """``[B, L, n]`` pixels of every window (``size + 1`` pixels a side, as ``x:x+size`` in Matlab),
    centred on every ``size / 2``-th pixel; and the grid's rows and columns."""
    stride, pad = size // 2, size // 2
    padded = F.pad(grey, (pad, pad, pad, pad), mode="reflect")
    cols = F.unfold(padded, size + 1, stride=stride)  # [B, n, L]
    h, w = grey.shape[-2:]
    return cols.transpose(1, 2), (h - 1) // stride + 1, (w - 1) // stride + 1


def _entropy(counts: torch.Tensor, n: int) -> torch.Tensor:
    p = counts / n
    return -(p * torch.log2(p.clamp(min=1e-12))).sum(dim=-1)


def window_entropy(grey: torch.Tensor, size: int) -> torch.Tensor:
    """``[B, rows, cols]`` entropy (bits, 256 levels) of each window, exactly (no gradient)."""
    pixels, rows, cols = _windows(grey.round().clamp(0, LEVELS - 1), size)
    levels = pixels.long()
    counts = torch.zeros(*pixels.shape[:2], LEVELS, dtype=torch.int32, device=grey.device)
    counts.scatter_add_(2, levels, torch.ones_like(levels, dtype=torch.int32))
    # −Σ_v p_v log p_v = log n − (1/n) Σ_pixels log c(pixel's level): no log over empty levels
    n = pixels.shape[-1]
    own = counts.gather(2, levels).float()
    return (math.log2(n) - torch.log2(own).sum(dim=-1) / n).view(-1, rows, cols)


def soft_window_entropy(grey: torch.Tensor, size: int, levels: int = LEVELS) -> torch.Tensor:
    """As :func:`window_entropy` (``grey`` in [0, ``levels`` − 1]), differentiable: each pixel's
    weight is split between its two nearest levels (linear binning)."""
    pixels, rows, cols = _windows(grey.clamp(0, levels - 1), size)
    low = pixels.detach().floor().clamp(max=levels - 2)
    frac = pixels - low
    counts = torch.zeros(*pixels.shape[:2], levels, device=grey.device, dtype=pixels.dtype)
    counts = counts.scatter_add(2, low.long(), 1 - frac).scatter_add(2, low.long() + 1, frac)
    return _entropy(counts, pixels.shape[-1]).view(-1, rows, cols)


def _spread(grid: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    """``[B, rows, cols]`` window values → ``[B, 1, H, W]``: each pixel takes the value of the window
    centred nearest to it."""
    stride = size // 2
    ys = (torch.arange(height, device=grid.device) / stride).round().long().clamp(max=grid.shape[1] - 1)
    xs = (torch.arange(width, device=grid.device) / stride).round().long().clamp(max=grid.shape[2] - 1)
    return grid[:, ys[:, None], xs[None, :]][:, None]


class Jedi(MaskingDetector):
    """Jedi in front of a detector adapter.

    Args:
        model: the detector adapter.
        min_region: regions smaller than this share of the image are dropped (Jedi: 0.005).
        radius: the inpainting radius, pixels.
        margin: the adaptive attacker keeps windows this many bits under the threshold.
        false_alarms: :meth:`calibrate` raises the thresholds until at most this share of the clean
            photos is flagged (``None``: the paper's thresholds as they are).
    """

    kind = "detector"

    def __init__(
        self,
        model,
        min_region: float = 0.005,
        radius: int = 5,
        margin: float = 0.25,
        false_alarms: float | None = 0.05,
        seed=0,
    ):
        super().__init__(model, seed)
        self.min_region, self.radius, self.margin = min_region, radius, margin
        self.false_alarms, self.clean_stats, self.offset = false_alarms, CLEAN_STATS, 0.0

    @property
    def name(self) -> str:
        return f"jedi:{self.min_region:g}"

    @torch.no_grad()
    def calibrate(self, clean: torch.Tensor, batch: int = 16) -> tuple:
        """On ``clean [N, 3, H, W]`` photos (the defender's own, never the judged ones): measure the
        clean windows' entropy (mean, std per window size), then raise every threshold by the
        smallest offset (bits, bisection) that flags at most :attr:`false_alarms` of these photos."""
        sizes = window_sizes(*clean.shape[-2:])
        grids = []
        for i in range(0, len(clean), batch):
            grey = grey_levels(clean[i : i + batch].to(self.device).float())
            grids.append([window_entropy(grey, size) for size in sizes])
        found = [torch.cat([g[k] for g in grids]) for k in range(len(sizes))]
        self.clean_stats = tuple((float(f.mean()), float(f.std())) for f in found)
        self.offset = 0.0
        if self.false_alarms is not None:
            self.offset = self._offset_for(found, clean.shape[-2:])
        return self.clean_stats

    def _offset_for(self, grids: list[torch.Tensor], size: tuple[int, int], rounds: int = 10) -> float:
        def flagged(offset: float) -> float:
            return (
                self._regions(self._marked(grids, size, offset)).flatten(1).any(dim=1).float().mean().item()
            )

        low, high = 0.0, 4.0  # bits; windows hold at most log2(289) ≈ 8.2 bits
        if flagged(low) <= self.false_alarms:
            return low
        for _ in range(rounds):
            mid = (low + high) / 2
            low, high = (low, mid) if flagged(mid) <= self.false_alarms else (mid, high)
        return high

    def thresholds(self, image_means: torch.Tensor, k: int) -> torch.Tensor:
        """``[B]`` entropy thresholds (bits) for window size ``k`` given each image's mean entropy."""
        (mp, sp), (mc, sc) = PATCH_STATS[k], self.clean_stats[k]
        base = mp + 1.5 * sp - 2 * (mp - mc) / mp * sp
        return base + sp * (image_means - mc) / sc

    def _marked(self, grids: list[torch.Tensor], size: tuple[int, int], offset: float) -> torch.Tensor:
        """``[B, 1, H, W]`` bool: pixels of windows above their threshold (+ ``offset`` bits)."""
        h, w = size
        marked = torch.zeros(len(grids[0]), 1, h, w, dtype=torch.bool, device=grids[0].device)
        for k, (grid, window) in enumerate(zip(grids, window_sizes(h, w), strict=True)):
            limit = self.thresholds(grid.flatten(1).mean(dim=1), k).view(-1, 1, 1) + offset
            marked |= _spread(grid > limit, window, h, w)
        return marked

    @torch.no_grad()
    def heat(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 1, H, W]`` bool: pixels of windows of any size above their threshold."""
        grey = grey_levels(images.float())
        grids = [window_entropy(grey, size) for size in window_sizes(*images.shape[-2:])]
        return self._marked(grids, images.shape[-2:], self.offset)

    def _regions(self, marked: torch.Tensor) -> torch.Tensor:
        """Marked regions of at least ``min_region`` of the image, each filled to its convex hull."""
        device, marked = marked.device, marked.cpu().numpy().astype(np.uint8)
        out = np.zeros_like(marked)
        smallest = self.min_region * marked.shape[-1] * marked.shape[-2]
        for b in range(len(marked)):
            count, labels, stats, _ = cv2.connectedComponentsWithStats(marked[b, 0], connectivity=8)
            for c in range(1, count):
                if stats[c, cv2.CC_STAT_AREA] >= smallest:
                    points = cv2.findNonZero((labels == c).astype(np.uint8))
                    cv2.fillConvexPoly(out[b, 0], cv2.convexHull(points), 1)
        return torch.from_numpy(out.astype(bool)).to(device)

    @torch.no_grad()
    def locate(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 1, H, W]`` bool: the located patch — marked regions of at least ``min_region`` of the
        image, each filled to its convex hull."""
        return self._regions(self.heat(images))

    @torch.no_grad()
    def clean(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Inpaint the located pixels (OpenCV Telea); the rest of the image is left exactly as it was."""
        out = images.clone()
        for b in torch.nonzero(mask.flatten(1).any(dim=1)).flatten().tolist():
            rgb = (images[b].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()
            m = mask[b, 0].cpu().numpy().astype(np.uint8)
            filled = cv2.inpaint(np.ascontiguousarray(rgb), m, self.radius, cv2.INPAINT_TELEA)
            filled = torch.from_numpy(filled).to(images).permute(2, 0, 1) / 255
            out[b] = torch.where(mask[b], filled, images[b])
        return out

    def evasion_penalty(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable: how far the windows above ``threshold − margin`` rise above it (bits, in
        units of the patch windows' spread σ_p), averaged over those windows, sizes and images.

        The value is the exact entropy's; the gradient is a coarse one's (32 levels, linear binning),
        because an attack's step moves a pixel by several grey levels, past where a 256-level
        histogram's gradient means anything."""
        images = images.to(self.device)
        grey = grey_levels(images.float())
        terms = []
        for k, size in enumerate(window_sizes(*images.shape[-2:])):
            with torch.no_grad():
                exact = window_entropy(grey, size).flatten(1)
                limit = self.thresholds(exact.mean(dim=1), k) + self.offset - self.margin
                over = exact > limit[:, None]
            coarse = soft_window_entropy(grey / COARSE, size, LEVELS // COARSE).flatten(1)
            entropy = exact + coarse - coarse.detach()
            excess = torch.where(over, entropy - limit[:, None], torch.zeros_like(entropy))
            terms.append(excess.sum(dim=1) / over.sum(dim=1).clamp(min=1) / PATCH_STATS[k][1])
        return torch.stack(terms).mean()
