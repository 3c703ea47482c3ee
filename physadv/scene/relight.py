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
MIN_SPREAD = 0.15  # a channel's reference levels must spread this much (std) to fit its own offset


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


def _fit(observed: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel least squares ``observed ≈ gain · reference + offset`` over ``[3, N]`` pixels.

    A clipped pixel (a channel at 0 or 1) only says the light puts it beyond the clip: it counts,
    at the clip level, where the fit would not clip it (Tobit-like). A channel in which the surface
    spans too few levels to tell gain from offset (a stop sign's red and white are close in red:
    reference spread below :data:`MIN_SPREAD`) takes the mean offset of the other channels and
    fits its gain alone. The fit is trimmed twice of the pixels that fit far worse than the rest
    (what stands in front of the surface: a pole, a branch). Returns gain ``[3]``, offset ``[3]``
    and the kept pixels ``[N]``."""
    keep = torch.ones(observed.shape[1], dtype=torch.bool)
    low, high = observed <= 0.01, observed >= 0.985
    gain, offset = torch.ones(3), torch.zeros(3)
    for _ in range(4):
        predicted = gain[:, None] * reference + offset[:, None]
        counted = ~(low | high) | (high & (predicted < 0.985)) | (low & (predicted > 0.01))
        spread = [float(reference[c, keep & counted[c]].std()) if int((keep & counted[c]).sum()) > 10 else 0.0
                  for c in range(3)]  # fmt: skip
        wide = [c for c in range(3) if spread[c] >= MIN_SPREAD]
        for c in wide:
            m = keep & counted[c]
            r, o = reference[c, m].double(), observed[c, m].double()
            g = float(((r - r.mean()) * (o - o.mean())).sum() / ((r - r.mean()) ** 2).sum())
            gain[c], offset[c] = g, float(o.mean() - g * r.mean())
        shared = float(offset[wide].mean()) if wide else 0.0
        for c in set(range(3)) - set(wide):
            m = keep & counted[c]
            if int(m.sum()) < 10:
                continue
            r, o = reference[c, m].double(), observed[c, m].double()
            gain[c], offset[c] = float((r * (o - shared)).sum() / (r * r).sum().clamp(min=1e-9)), shared
        misfit = ((observed - gain[:, None] * reference - offset[:, None]).abs() * ~(low | high)).amax(0)
        keep = misfit <= max(0.03, 3 * float(misfit[keep].median()))
    return gain, offset, keep


def fit_light(
    frame: torch.Tensor, reference: torch.Tensor, coverage: torch.Tensor, usable: torch.Tensor
) -> Light | None:
    """Fit the frame's light and blur to a reference surface warped to where it is seen.

    Shape:
        - frame: ``[3, H, W]`` the observed frame (or a window of it), RGB in [0, 1]
        - reference: ``[3, H, W]`` the reference surface's colours, premultiplied by ``coverage``
        - coverage: ``[1, H, W]`` where the surface is (its warped alpha)
        - usable: ``[1, H, W]`` bool, the pixels to fit on (on the surface, away from artefacts)
        - returns: the best :class:`Light` over :data:`BLUR_SIGMAS_PX` (by the RMS misfit of the
          pixels kept), or None if fewer than 30 pixels are usable or the surface shows a single
          colour there (no gain can be told from offset)
    """
    usable = usable[0]
    if int(usable.sum()) < 30:
        return None
    best = None
    for sigma in BLUR_SIGMAS_PX:
        ref = predicted_surface(reference, coverage, sigma)[:, usable]
        if float(ref.std(1).max()) < 0.02:
            return None
        observed = frame[:, usable]
        gain, offset, keep = _fit(observed, ref)
        misfit = (observed - gain[:, None] * ref - offset[:, None])[:, keep]
        unclipped = ((observed > 0.01) & (observed < 0.985))[:, keep]
        residual = float(misfit[unclipped].pow(2).mean().sqrt())
        if best is None or residual < best.residual:
            best = Light(gain, offset, sigma, residual, int(keep.sum()))
    return best


def predicted_surface(reference: torch.Tensor, coverage: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """The surface's colours ``[3, H, W]`` as a camera blurring by ``sigma_px`` sees them: the
    premultiplied colour and the coverage are blurred together and divided, so the surface keeps
    its own colours at its blurred edge."""
    layer = blur(torch.cat([reference, coverage])[None], sigma_px)[0]
    return layer[:3] / layer[3:].clamp(min=1e-3)


def occluded(
    frame: torch.Tensor, reference: torch.Tensor, coverage: torch.Tensor, light: Light
) -> torch.Tensor:
    """``[1, H, W]`` bool: surface pixels the relit reference cannot explain — something in front
    of the surface (an artefact put on it stays behind those); not judged within two pixels of the
    surface's edge."""
    predicted = light.gain.view(3, 1, 1) * predicted_surface(reference, coverage, light.blur_px)
    predicted = predicted + light.offset.view(3, 1, 1)
    misfit = (frame - predicted).abs().amax(0, keepdim=True)
    # two pixels in from the surface's edge: there a pixel of misregistration already misfits
    inside = F.max_pool2d((coverage < 0.99).float()[None], 5, 1, 2)[0] == 0
    return (misfit > max(0.15, 4 * light.residual)) & inside


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
