"""Camera and lighting effects on rendered frames, in torch: differentiable where the physics is
(brightness, colour temperature, shadow, blur, noise) and shared by the renderer and the EOT.

Every effect draws its parameters once (:func:`draw_effects`) and applies them deterministically
(:func:`apply_effects`), so a draw can be logged and replayed.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class EffectParams:
    """One draw of the effects for one frame."""

    brightness: float = 1.0  # multiplies the image
    contrast: float = 1.0  # around mid-grey
    colour_temperature_k: float = 6500.0  # white balance of the light (6500 K: neutral)
    shadow: float = 0.0  # darkening (0..1) of a half-plane shadow across the frame
    shadow_angle_deg: float = 0.0
    shadow_offset: float = 0.0  # where the shadow edge crosses, as a fraction from the centre
    motion_blur_px: float = 0.0
    motion_blur_angle_deg: float = 0.0
    noise_std: float = 0.0
    jpeg_quality: int = 0  # 0: no compression

    def as_dict(self) -> dict:
        return asdict(self)


def kelvin_to_rgb_gain(kelvin: float) -> tuple[float, float, float]:
    """Approximate RGB gains of a light of ``kelvin`` relative to 6500 K (Planckian locus fit)."""

    def rgb(k: float) -> np.ndarray:
        t = k / 100
        r = 255 if t <= 66 else 329.7 * (t - 60) ** -0.1332
        g = 99.47 * math.log(t) - 161.1 if t <= 66 else 288.1 * (t - 60) ** -0.0755
        b = 255 if t >= 66 else (0 if t <= 19 else 138.5 * math.log(t - 10) - 305.0)
        return np.clip([r, g, b], 1, 255)

    gain = rgb(kelvin) / rgb(6500)
    return tuple(float(v) for v in gain / gain.max())


def draw_effects(rng: np.random.Generator, ranges: dict) -> EffectParams:
    """Draw parameters uniformly from ``ranges`` (key → ``[low, high]`` or a constant)."""

    def pick(key: str, default: float) -> float:
        value = ranges.get(key, default)
        return float(rng.uniform(*value)) if isinstance(value, (list, tuple)) else float(value)

    return EffectParams(
        brightness=pick("brightness", 1.0),
        contrast=pick("contrast", 1.0),
        colour_temperature_k=pick("colour_temperature_k", 6500.0),
        shadow=pick("shadow", 0.0),
        shadow_angle_deg=float(rng.uniform(0, 360)),
        shadow_offset=float(rng.uniform(-0.5, 0.5)),
        motion_blur_px=pick("motion_blur_px", 0.0),
        motion_blur_angle_deg=float(rng.uniform(-20, 20)),
        noise_std=pick("noise_std", 0.0),
        jpeg_quality=int(pick("jpeg_quality", 0)),
    )


def _motion_kernel(length: float, angle_deg: float) -> torch.Tensor:
    size = max(3, int(math.ceil(length)) | 1)
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    for t in np.linspace(-length / 2, length / 2, max(2, int(length * 3))):
        kernel[int(round(c + t * dy)), int(round(c + t * dx))] = 1
    return torch.from_numpy(kernel / kernel.sum())


def _fixed_terms(p: EffectParams, like: torch.Tensor, generator: torch.Generator | None, cache: dict | None):
    """What a draw applies that does not depend on the image: the light's RGB gain ``[1, 3, 1, 1]``,
    the shadow's factor ``[1, 1, H, W]``, the motion-blur kernel and the noise (None where the draw
    has none), on ``like``'s device. ``cache`` keeps them, so a view applied every step (EOT) makes
    them once; the noise is drawn on the CPU from ``generator``, the same on every device."""
    key = (like.device, like.dtype, tuple(like.shape))
    if cache is not None and cache.get("key") == key:
        return cache["terms"]
    gain = like.new_tensor(kelvin_to_rgb_gain(p.colour_temperature_k)).view(1, 3, 1, 1)
    shadow = kernel = noise = None
    h, w = like.shape[-2:]
    if p.shadow > 0:
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        a = math.radians(p.shadow_angle_deg)
        edge = torch.sigmoid((xx * math.cos(a) + yy * math.sin(a) - p.shadow_offset) * 25)
        shadow = (1 - p.shadow * edge).to(like)[None, None]
    if p.motion_blur_px >= 1:
        kernel = _motion_kernel(p.motion_blur_px, p.motion_blur_angle_deg).to(like).expand(3, 1, -1, -1)
    if p.noise_std > 0:
        noise = torch.randn(like.shape, generator=generator, device="cpu").to(like) * p.noise_std
    terms = (gain, shadow, kernel, noise)
    if cache is not None:
        cache.update(key=key, terms=terms)
    return terms


def apply_effects(
    frame: torch.Tensor,
    p: EffectParams,
    generator: torch.Generator | None = None,
    compress: bool = True,
    cache: dict | None = None,
) -> torch.Tensor:
    """Apply one draw to ``[B, 3, H, W]`` frames in [0, 1].

    JPEG (if any, and ``compress``) passes gradients straight through (BPDA: the backward pass treats
    the codec as the identity), so EOT can include compression; with ``compress=False`` the caller
    compresses (:func:`jpeg_each`). ``cache``: a dict kept with the draw (see :func:`_fixed_terms`)."""
    gain, shadow, kernel, noise = _fixed_terms(p, frame, generator, cache)
    x = ((frame - 0.5) * p.contrast + 0.5) * p.brightness * gain
    if shadow is not None:
        x = x * shadow
    if kernel is not None:
        pad = kernel.shape[-1] // 2
        x = F.conv2d(F.pad(x, (pad,) * 4, mode="replicate"), kernel, groups=3)
    if noise is not None:
        x = x + noise
    x = x.clamp(0, 1)
    if compress and p.jpeg_quality > 0:
        x = jpeg_each([x], [p.jpeg_quality])[0]
    return x


def _jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """One ``[H, W, 3]`` float image through Pillow's JPEG at ``quality``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((image * 255).round().astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"), np.float32) / 255


def jpeg_each(frames: list[torch.Tensor], qualities: list[int]) -> list[torch.Tensor]:
    """Real JPEG round trips (Pillow) of ``[B, 3, H, W]`` frames of any sizes, each batch at its
    quality, gradients passed straight through (BPDA). One copy to the host and one back for all."""
    if not frames:
        return []
    host = torch.cat([f.detach().reshape(-1) for f in frames]).cpu().split([f.numel() for f in frames])
    decoded = []
    for f, flat, quality in zip(frames, host, qualities, strict=True):
        images = flat.view(f.shape).permute(0, 2, 3, 1).numpy()
        decoded.append(torch.from_numpy(np.stack([_jpeg_round_trip(i, quality) for i in images])))
    back = torch.cat([d.permute(0, 3, 1, 2).reshape(-1) for d in decoded]).to(frames[0])
    return [
        f + (flat.view(f.shape) - f).detach()
        for f, flat in zip(frames, back.split([f.numel() for f in frames]), strict=True)
    ]


def _stacked(terms: list, like: torch.Tensor, blank: float) -> torch.Tensor | None:
    """Per-view terms ``[1, C, H, W]`` (None: none drawn) stacked to ``[B, C, H, W]``, ``blank`` (1 for
    a factor, 0 for an addend: the same pixels as not applying it) where a view has none."""
    if all(t is None for t in terms):
        return None
    shape = next(t for t in terms if t is not None).shape
    fill = like.new_full(shape, blank)
    return torch.cat([fill if t is None else t for t in terms])


def _stacked_kernels(kernels: list, like: torch.Tensor) -> torch.Tensor | None:
    """Per-view blur kernels ``[3, 1, k, k]`` as one grouped-convolution weight ``[B·3, 1, K, K]``:
    each zero-padded to the largest side K (the same sums), a view without blur as the identity."""
    if all(k is None for k in kernels):
        return None
    side = max(k.shape[-1] for k in kernels if k is not None)
    identity = like.new_zeros(3, 1, side, side)
    identity[..., side // 2, side // 2] = 1
    padded = []
    for k in kernels:
        margin = (side - k.shape[-1]) // 2 if k is not None else 0
        padded.append(identity if k is None else F.pad(k, (margin,) * 4))
    return torch.cat(padded)


def apply_effects_each(
    frames: torch.Tensor,
    params: list[EffectParams],
    generators: list[torch.Generator | None],
    caches: list[dict | None],
) -> torch.Tensor:
    """Apply a different draw to each of ``[B, 3, H, W]`` frames in [0, 1] in a few batched operations:
    the same pixels as :func:`apply_effects` with ``compress=False`` on each frame alone (within float
    rounding), and the same per-draw ``caches``. Light as ``[B, 3, 1, 1]`` gains, shadows and noise
    stacked, motion blur as one grouped convolution. JPEG is left to :func:`jpeg_batches`.

    Shape:
        - frames: ``[B, 3, H, W]``; params, generators, caches: B each
        - returns: ``[B, 3, H, W]``
    """
    like = frames[:1]  # the fixed terms are made (and cached) per frame, as apply_effects makes them
    gains, shadows, kernels, noises = zip(
        *(_fixed_terms(p, like, g, c) for p, g, c in zip(params, generators, caches, strict=True)),
        strict=True,
    )
    contrast = frames.new_tensor([p.contrast for p in params]).view(-1, 1, 1, 1)
    brightness = frames.new_tensor([p.brightness for p in params]).view(-1, 1, 1, 1)
    x = ((frames - 0.5) * contrast + 0.5) * brightness * torch.cat(gains)
    shadow = _stacked(list(shadows), like, 1.0)
    if shadow is not None:
        x = x * shadow
    kernel = _stacked_kernels(list(kernels), like)
    if kernel is not None:
        b, c, h, w = x.shape
        pad = kernel.shape[-1] // 2
        x = F.conv2d(
            F.pad(x, (pad,) * 4, mode="replicate").view(1, b * c, h + 2 * pad, w + 2 * pad),
            kernel,
            groups=b * c,
        )
        x = x.view(b, c, h, w)
    noise = _stacked(list(noises), like, 0.0)
    if noise is not None:
        x = x + noise
    return x.clamp(0, 1)


def jpeg_batches(frames: list[torch.Tensor], qualities: list[list[int]]) -> list[torch.Tensor]:
    """Real JPEG round trips (Pillow) of the frames whose quality is above 0, each at its own quality,
    gradients passed straight through (BPDA), as :func:`jpeg_each`; the others unchanged. One copy to
    the host and one back for all the batches, and a few operations per batch.

    Shape:
        - frames: ``[B_i, 3, H_i, W_i]`` batches; qualities: B_i per batch (0: not compressed)
        - returns: the batches, same shapes
    """
    chosen = [torch.tensor([j for j, q in enumerate(qs) if q > 0], dtype=torch.long) for qs in qualities]
    picked = [x[idx.to(x.device)] for x, idx in zip(frames, chosen, strict=True) if len(idx)]
    if not picked:
        return list(frames)
    host = torch.cat([p.detach().reshape(-1) for p in picked]).cpu().split([p.numel() for p in picked])
    levels = iter(q for qs in qualities for q in qs if q > 0)
    decoded = []
    for p, flat in zip(picked, host, strict=True):
        images = flat.view(p.shape).permute(0, 2, 3, 1).numpy()
        decoded.append(torch.from_numpy(np.stack([_jpeg_round_trip(i, next(levels)) for i in images])))
    back = torch.cat([d.permute(0, 3, 1, 2).reshape(-1) for d in decoded]).to(picked[0])
    back = iter(zip(picked, back.split([p.numel() for p in picked]), strict=True))
    out = []
    for x, idx in zip(frames, chosen, strict=True):
        if len(idx):
            p, flat = next(back)
            out.append(x.index_copy(0, idx.to(x.device), p + (flat.view(p.shape) - p).detach()))
        else:
            out.append(x)
    return out
