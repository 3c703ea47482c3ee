"""The light, blur and noise of a real frame, measured where a known surface is seen, so an
artefact put into the frame looks as if it had been there.

A sign's reference face (:func:`physadv.scene.signs.render_face`) warped to where the sign is seen
predicts its pixels up to the frame's light and camera: a per-channel gain and offset (REAP, Hingun
et al. 2023, relit real signs this way) and a blur. :func:`fit_light` fits them, by least squares,
on the sign's pixels outside the artefact; :func:`noise_level` measures the sensor noise of the frame
(Immerkær 1996, "Fast noise variance estimation").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F

BLUR_SIGMAS_PX = (0.0, 0.4, 0.7, 1.0, 1.4, 2.0, 2.8)  # candidate camera blurs, frame pixels


@dataclass
class Light:
    """How a frame shows a known surface: observed = ``gain`` · blur(reference, ``blur_px``) +
    ``offset`` per channel (``[3]`` tensors, colours in [0, 1]); ``residual`` the RMS misfit,
    ``pixels`` how many pixels it was fitted on."""

    gain: torch.Tensor
    offset: torch.Tensor
    blur_px: float
    residual: float
    pixels: int

    def as_dict(self) -> dict:
        return {
            "gain": [round(float(v), 4) for v in self.gain],
            "offset": [round(float(v), 4) for v in self.offset],
            "blur_px": self.blur_px,
            "residual": round(self.residual, 4),
            "pixels": self.pixels,
        }


def blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Gaussian blur of ``[B, C, H, W]`` by ``sigma_px`` pixels (σ below 0.2: unchanged)."""
    if sigma_px < 0.2:
        return x
    k = 2 * math.ceil(3 * sigma_px) + 1
    return kornia.filters.gaussian_blur2d(x, (k, k), (sigma_px, sigma_px), border_type="replicate")


def _fit(observed: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per-channel least squares ``observed ≈ gain · reference + offset`` over ``[3, N]`` pixels."""
    mean_r, mean_o = reference.mean(1), observed.mean(1)
    dr, do = reference - mean_r[:, None], observed - mean_o[:, None]
    gain = (dr * do).sum(1) / (dr * dr).sum(1).clamp(min=1e-6)
    offset = mean_o - gain * mean_r
    residual = float((observed - gain[:, None] * reference - offset[:, None]).pow(2).mean().sqrt())
    return gain, offset, residual


def fit_light(
    frame: torch.Tensor, reference: torch.Tensor, coverage: torch.Tensor, usable: torch.Tensor
) -> Light | None:
    """Fit the frame's light and blur to a reference surface warped to where it is seen.

    Shape:
        - frame: ``[3, H, W]`` the observed frame (or a window of it), RGB in [0, 1]
        - reference: ``[3, H, W]`` the reference surface's colours, premultiplied by ``coverage``
        - coverage: ``[1, H, W]`` where the surface is (its warped alpha)
        - usable: ``[1, H, W]`` bool, the pixels to fit on (on the surface, away from artefacts)
        - returns: the best :class:`Light` over :data:`BLUR_SIGMAS_PX`, or None if fewer than 30
          pixels are usable or the surface shows a single colour (no gain can be told from offset)
    """
    usable = usable[0]
    if int(usable.sum()) < 30:
        return None
    best = None
    for sigma in BLUR_SIGMAS_PX:
        # blurring the premultiplied colour and the coverage together, then dividing, keeps the
        # surface's own colours at its blurred edge
        layer = blur(torch.cat([reference, coverage])[None], sigma)[0]
        colours = layer[:3] / layer[3:].clamp(min=1e-3)
        ref = colours[:, usable]
        if float(ref.std(1).max()) < 0.02:
            return None
        gain, offset, residual = _fit(frame[:, usable], ref)
        if best is None or residual < best.residual:
            best = Light(gain, offset, sigma, residual, int(usable.sum()))
    return best


def noise_level(frame: torch.Tensor) -> float:
    """The standard deviation of the frame's sensor noise (grey levels in [0, 1]), Immerkær's
    estimator: the mean absolute response of a Laplacian-difference mask that cancels smooth image
    structure. Shape: ``frame`` ``[3, H, W]``."""
    gray = frame.mean(0)[None, None]
    if min(gray.shape[-2:]) < 3:
        return 0.0
    mask = gray.new_tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])[None, None]
    response = F.conv2d(gray, mask).abs()
    return float(response.mean() * math.sqrt(math.pi / 2) / 6)
