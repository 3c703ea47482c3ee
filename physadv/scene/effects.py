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


def apply_effects(
    frame: torch.Tensor, p: EffectParams, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply one draw to ``[B, 3, H, W]`` frames in [0, 1].

    JPEG (if any) passes gradients straight through (BPDA: the backward pass treats the codec as
    the identity), so EOT can include compression."""
    x = frame
    gain = x.new_tensor(kelvin_to_rgb_gain(p.colour_temperature_k)).view(1, 3, 1, 1)
    x = ((x - 0.5) * p.contrast + 0.5) * p.brightness * gain
    if p.shadow > 0:
        h, w = x.shape[-2:]
        yy, xx = torch.meshgrid(
            torch.linspace(-1, 1, h, device=x.device),
            torch.linspace(-1, 1, w, device=x.device),
            indexing="ij",
        )
        a = math.radians(p.shadow_angle_deg)
        edge = torch.sigmoid((xx * math.cos(a) + yy * math.sin(a) - p.shadow_offset) * 25)
        x = x * (1 - p.shadow * edge)
    if p.motion_blur_px >= 1:
        k = _motion_kernel(p.motion_blur_px, p.motion_blur_angle_deg).to(x)
        pad = k.shape[-1] // 2
        x = F.conv2d(F.pad(x, (pad,) * 4, mode="replicate"), k.expand(3, 1, -1, -1), groups=3)
    if p.noise_std > 0:
        x = x + torch.randn(x.shape, generator=generator, device="cpu").to(x) * p.noise_std
    x = x.clamp(0, 1)
    if p.jpeg_quality > 0:
        x = x + (jpeg(x, p.jpeg_quality) - x).detach()
    return x


def jpeg(frames: torch.Tensor, quality: int) -> torch.Tensor:
    """Real JPEG compression round trip (Pillow) of ``[B, 3, H, W]`` frames; no gradient."""
    from PIL import Image

    out = []
    for f in frames.detach().cpu():
        buffer = io.BytesIO()
        Image.fromarray((f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(
            buffer, "JPEG", quality=quality
        )
        decoded = np.asarray(Image.open(buffer).convert("RGB"), np.float32) / 255
        out.append(torch.from_numpy(decoded).permute(2, 0, 1))
    return torch.stack(out).to(frames)
