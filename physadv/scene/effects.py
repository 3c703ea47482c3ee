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


def _padded_terms(
    p: EffectParams, like: torch.Tensor, canvas: tuple[int, int], generator, cache: dict | None
):
    """:func:`_fixed_terms` for a ``like``-sized frame on the top-left of a larger ``canvas`` (h, w): the
    shadow and noise padded (1, 0: as not applying them), and where a replicate-padded blur input reads
    each canvas pixel from (``[(h + 2·pad)·(w + 2·pad)]`` flat indices; pad from the kernel's side,
    unknown until the batch's largest kernel: made on use). Kept in ``cache`` for that canvas."""
    key = (like.device, like.dtype, tuple(like.shape), tuple(canvas))
    if cache is not None and cache.get("padded_key") == key:
        return cache["padded"]
    gain, shadow, kernel, noise = _fixed_terms(p, like, generator, cache)
    h, w = like.shape[-2:]
    margin = (0, canvas[1] - w, 0, canvas[0] - h)
    shadow = None if shadow is None else F.pad(shadow, margin, value=1.0)
    noise = None if noise is None else F.pad(noise, margin)
    terms = [gain, shadow, kernel, noise, {}]
    if cache is not None:
        cache.update(padded_key=key, padded=terms)
    return terms


def _replicate_index(
    size: tuple[int, int], canvas: tuple[int, int], pad: int, reads: dict, device
) -> torch.Tensor:
    """Flat canvas indices that replicate-pad a ``size`` frame on the top-left of ``canvas`` by ``pad``
    (``F.pad(mode="replicate")`` of that frame alone), the rest of the padded canvas reading its edge."""
    if pad not in reads:
        (h, w), (hc, wc) = size, canvas
        rows = (torch.arange(hc + 2 * pad) - pad).clamp(0, h - 1)
        cols = (torch.arange(wc + 2 * pad) - pad).clamp(0, w - 1)
        reads[pad] = (rows[:, None] * wc + cols[None, :]).reshape(-1).to(device)
    return reads[pad]


def _stacked(terms: list, blank: torch.Tensor) -> torch.Tensor | None:
    """Per-view terms ``[1, C, H, W]`` (None: none drawn) stacked to ``[B, C, H, W]``, ``blank`` (ones
    for a factor, zeros for an addend: the same pixels as not applying it) where a view has none."""
    if all(t is None for t in terms):
        return None
    return torch.cat([blank if t is None else t for t in terms])


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
        padded.append(identity if k is None else F.pad(k, (margin,) * 4) if margin else k)
    return torch.cat(padded)


def apply_effects_each(
    frames: torch.Tensor,
    params: list[EffectParams],
    generators: list[torch.Generator | None],
    caches: list[dict | None],
    sizes: list[tuple[int, int]] | None = None,
) -> torch.Tensor:
    """Apply a different draw to each of ``[B, 3, H, W]`` frames in [0, 1] in a few batched operations:
    the same pixels as :func:`apply_effects` with ``compress=False`` on each frame alone (within float
    rounding), and the same per-draw ``caches``. Light as ``[B, 3, 1, 1]`` gains, shadows and noise
    stacked, motion blur as one grouped convolution. JPEG is left to :func:`jpeg_batches`.

    ``sizes``: each frame's own (h, w) on the top-left of the batch's canvas (None: all the canvas);
    outside it the pixels are left as they come (to be cut off by the caller).

    Shape:
        - frames: ``[B, 3, H, W]``; params, generators, caches (and sizes): B each
        - returns: ``[B, 3, H, W]``
    """
    b, c, h, w = frames.shape
    sizes = sizes or [(h, w)] * b
    likes = {size: frames.new_empty(1, c, *size) for size in set(sizes)}  # what each frame's terms are like
    terms = [
        _padded_terms(p, likes[size], (h, w), g, cache)
        for p, g, cache, size in zip(params, generators, caches, sizes, strict=True)
    ]
    gains, shadows, kernels, noises, reads = zip(*terms, strict=True)
    contrast = frames.new_tensor([p.contrast for p in params]).view(-1, 1, 1, 1)
    brightness = frames.new_tensor([p.brightness for p in params]).view(-1, 1, 1, 1)
    x = ((frames - 0.5) * contrast + 0.5) * brightness * torch.cat(gains)
    shadow = _stacked(list(shadows), frames.new_ones(1, 1, h, w))
    if shadow is not None:
        x = x * shadow
    kernel = _stacked_kernels(list(kernels), frames)
    if kernel is not None:
        pad = kernel.shape[-1] // 2
        index = torch.stack(
            [_replicate_index(s, (h, w), pad, r, frames.device) for s, r in zip(sizes, reads, strict=True)]
        )
        padded = x.reshape(b, c, h * w).gather(2, index[:, None].expand(-1, c, -1))
        x = F.conv2d(padded.view(1, b * c, h + 2 * pad, w + 2 * pad), kernel, groups=b * c).view(b, c, h, w)
    noise = _stacked(list(noises), frames.new_zeros(1, c, h, w))
    if noise is not None:
        x = x + noise
    return x.clamp(0, 1)


def jpeg_batches(
    frames: list[torch.Tensor], qualities: list[list[int]], sizes: list[list[tuple[int, int]]] | None = None
) -> list[torch.Tensor]:
    """Real JPEG round trips (Pillow) of the frames whose quality is above 0, each at its own quality,
    gradients passed straight through (BPDA), as :func:`jpeg_each`; the others unchanged. One copy to
    the host and one back for all the batches, and a few operations per batch.

    ``sizes``: each frame's own (h, w) on the top-left of its batch's canvas (None: all of it); only
    that part goes through the codec.

    Shape:
        - frames: ``[B_i, 3, H_i, W_i]`` batches; qualities (and sizes): B_i per batch (0: not compressed)
        - returns: the batches, same shapes
    """
    chosen = [torch.tensor([j for j, q in enumerate(qs) if q > 0], dtype=torch.long) for qs in qualities]
    picked = [x[idx.to(x.device)] for x, idx in zip(frames, chosen, strict=True) if len(idx)]
    if not picked:
        return list(frames)
    host = torch.cat([p.detach().reshape(-1) for p in picked]).cpu().split([p.numel() for p in picked])
    levels = iter(q for qs in qualities for q in qs if q > 0)
    own = iter(
        [sizes[i][j] if sizes else None for i, qs in enumerate(qualities) for j, q in enumerate(qs) if q > 0]
    )
    decoded = []
    for p, flat in zip(picked, host, strict=True):
        images = flat.view(p.shape).permute(0, 2, 3, 1).numpy().copy()
        for image in images:  # in place: the canvas around a frame stays as it was
            h, w = next(own) or image.shape[:2]
            image[:h, :w] = _jpeg_round_trip(np.ascontiguousarray(image[:h, :w]), next(levels))
        decoded.append(torch.from_numpy(images))
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
