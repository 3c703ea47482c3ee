"""Input-transform defenses: JPEG, median blur, Gaussian blur, bit-depth reduction, random
resize-and-pad (Xie et al. 2018), and Local Gradient Smoothing (Naseer et al. 2019).

Each defense maps ``[B, 3, H, W]`` RGB in [0, 1] to the same shape and has a gradient path for
adaptive attacks: exact where the operation is differentiable (Kornia's differentiable JPEG, blurs,
interpolation), straight-through (BPDA, Athalye et al. 2018) where it is not (rounding, LGS's
thresholded mask). Random defenses draw from the generator they are given, so an adaptive attack
takes the expectation over their randomness (EOT) simply by drawing anew every step.

A defense that moves pixels (resize-and-pad) also says how to map boxes found in its output back
to the input's pixels (:meth:`Defense.boxes_back`).
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia
import torch
import torch.nn.functional as F


def straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``y``'s value with ``x``'s gradient (BPDA with the identity)."""
    return x + (y - x).detach()


class Defense:
    """A preprocessing step in front of a model."""

    name = "defense"
    random = False

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def boxes_back(self, boxes: torch.Tensor) -> torch.Tensor:
        """Boxes ``[..., 4]`` found in the last output → the input's pixels (identity by default)."""
        return boxes


@dataclass
class Jpeg(Defense):
    """JPEG compression at ``quality`` (Kornia's differentiable codec: exact gradients)."""

    quality: float = 75.0

    @property
    def name(self) -> str:
        return f"jpeg:{self.quality:g}"

    def __call__(self, x, generator=None):
        q = torch.full((len(x),), float(self.quality), device=x.device)
        h, w = x.shape[-2:]
        # the codec works on 16-pixel blocks: pad (replicate) and crop back
        ph, pw = (-h) % 16, (-w) % 16
        padded = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        return kornia.enhance.jpeg_codec_differentiable(padded.float(), q)[..., :h, :w].clamp(0, 1)


@dataclass
class MedianBlur(Defense):
    """Median filter of ``size`` × ``size`` pixels (gradient through each window's median)."""

    size: int = 3

    @property
    def name(self) -> str:
        return f"median:{self.size}"

    def __call__(self, x, generator=None):
        return kornia.filters.median_blur(x, self.size)


@dataclass
class GaussianBlur(Defense):
    """Gaussian blur with σ ``sigma`` pixels."""

    sigma: float = 1.0

    @property
    def name(self) -> str:
        return f"gauss:{self.sigma:g}"

    def __call__(self, x, generator=None):
        k = 2 * max(1, round(3 * self.sigma)) + 1
        return kornia.filters.gaussian_blur2d(x, (k, k), (self.sigma, self.sigma))


@dataclass
class BitDepth(Defense):
    """Quantise each channel to ``bits`` bits (feature squeezing); straight-through gradient."""

    bits: int = 4

    @property
    def name(self) -> str:
        return f"bits:{self.bits}"

    def __call__(self, x, generator=None):
        levels = 2**self.bits - 1
        return straight_through(x, torch.round(x * levels) / levels)


@dataclass
class ResizePad(Defense):
    """Shrink by a random factor in [``min_scale``, 1] and pad at a random offset back to the input
    size with grey (Xie et al.'s randomisation). Exact gradients; EOT over the draw."""

    min_scale: float = 0.85
    random = True

    def __post_init__(self):
        self._last = (1.0, 0, 0)

    @property
    def name(self) -> str:
        return f"resize:{self.min_scale:g}"

    def __call__(self, x, generator=None):
        h, w = x.shape[-2:]
        r = torch.rand(3, generator=generator).tolist()
        s = self.min_scale + (1 - self.min_scale) * r[0]
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        top, left = int(r[1] * (h - nh)), int(r[2] * (w - nw))
        small = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        self._last = (nw / w, left, top)
        return F.pad(small, (left, w - nw - left, top, h - nh - top), value=0.5)

    def boxes_back(self, boxes):
        s, left, top = self._last
        offset = boxes.new_tensor([left, top, left, top])
        return (boxes - offset) / s


@dataclass
class LocalGradientSmoothing(Defense):
    """Local Gradient Smoothing (Naseer et al. 2019): where a window's normalised gradient magnitude
    is high on average (a patch's busy texture), damp the image in proportion to its gradient.

    Windows ``window`` × ``window`` pixels overlapping by ``overlap``; a window is smoothed when its
    mean normalised gradient exceeds ``threshold``; the damping is ``clip(scale · ‖∇x‖, 0, 1)``.
    The mask is treated as constant in the backward pass (BPDA): ``x · (1 − M)`` keeps its gradient.
    """

    window: int = 15
    overlap: int = 5
    threshold: float = 0.1
    scale: float = 2.3

    @property
    def name(self) -> str:
        return "lgs"

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, H, W]`` damping in [0, 1]."""
        grey = kornia.color.rgb_to_grayscale(x)
        grad = kornia.filters.spatial_gradient(grey, mode="diff", order=1)  # [B, 1, 2, H, W]
        magnitude = grad.pow(2).sum(dim=2).add(1e-12).sqrt()
        top = magnitude.flatten(1).amax(dim=1).clamp(min=1e-8).view(-1, 1, 1, 1)
        magnitude = magnitude / top
        stride = self.window - self.overlap
        h, w = x.shape[-2:]

        def pad(n: int) -> int:  # windows tile the padded image exactly
            return self.window - n if n <= self.window else (-(n - self.window)) % stride

        padded = F.pad(magnitude, (0, pad(w), 0, pad(h)))
        busy = F.avg_pool2d(padded, self.window, stride) > self.threshold  # [B, 1, nh, nw]
        # a pixel is smoothed if any window covering it is busy
        cover = F.conv_transpose2d(
            busy.float(), torch.ones(1, 1, self.window, self.window, device=x.device), stride=stride
        )
        flagged = cover[..., :h, :w] > 0
        return (self.scale * magnitude).clamp(0, 1) * flagged

    def __call__(self, x, generator=None):
        return x * (1 - self.mask(x.detach()))
