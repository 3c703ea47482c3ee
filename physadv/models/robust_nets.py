"""Layers that trained defenses build into a classifier, so the defended model is one file that every
physadv command loads like any other classifier.

- :class:`NonLocalDenoise`: Xie et al. (2019)'s feature-denoising block — non-local means over the
  feature map (Gaussian affinity with embeddings, softmax over positions), a 1×1 convolution and a
  residual connection, its BatchNorm's scale initialised to zero so a new block starts as the
  identity (as in the authors' ImageNet-Adversarial-Training code);
- :class:`ThermometerEncoding`: Buckman et al. (2018)'s thermometer code of every pixel at ``levels``
  levels; its exact gradient is zero almost everywhere, so a gradient attack sees nothing unless
  ``bpda`` is on: then the backward pass uses the piecewise-linear relaxation of the code, bit ``i``
  rising from 0 to 1 as the pixel crosses ``[i/L, (i+1)/L]`` (Athalye et al. 2018's Backward Pass
  Differentiable Approximation), while the forward pass stays exact;
- :class:`Autoencoder`: MagNet's reformer (Meng & Chen 2017; its CIFAR-10 structure: two 3×3
  sigmoid convolutions and a 3×3 output convolution) that rebuilds the input on the manifold of clean
  images before the classifier sees it. MagNet's hidden layers have 3 channels; here 16, because
  with 3 the embedded sign classifier kept 71 % of its clean accuracy on rebuilt crops after 20
  epochs, with 16 it keeps 87.5 %.

Modules whose ``takes_pixels`` is true take RGB in [0, 1] (no normalisation outside them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class NonLocalDenoise(nn.Module):
    """``x + BN(conv1×1(NLM(x)))`` with ``NLM(x)_i = Σ_j softmax_j(θ(x_i)·φ(x_j)/√c') x_j``.

    Shape:
        - Input: ``[B, C, H, W]``; output: the same.
    """

    def __init__(self, channels: int):
        super().__init__()
        inner = max(1, channels // 2)
        self.theta = nn.Conv2d(channels, inner, 1, bias=False)
        self.phi = nn.Conv2d(channels, inner, 1, bias=False)
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.norm.weight)  # the block starts as the identity: fine-tuning keeps the model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        theta = self.theta(x).flatten(2)  # [B, c', HW]
        phi = self.phi(x).flatten(2)
        affinity = torch.softmax(theta.transpose(1, 2) @ phi / theta.shape[1] ** 0.5, dim=-1)  # [B, HW, HW]
        denoised = (x.flatten(2) @ affinity.transpose(1, 2)).view(b, c, h, w)
        return x + self.norm(self.conv(denoised))


class ThermometerEncoding(nn.Module):
    """Each channel value ``v`` in [0, 1] becomes ``levels`` bits, bit ``i`` (1-based) set when
    ``v ≥ (i − ½)/levels``: the rounding of the relaxation ``clamp(levels·v − (i − 1), 0, 1)``.

    Shape:
        - Input: ``[B, C, H, W]`` in [0, 1]; output: ``[B, C·levels, H, W]`` of 0/1, channel-major.
    """

    def __init__(self, levels: int = 16):
        super().__init__()
        self.levels = levels
        self.bpda = False  # gradients through the relaxation instead of the exact (zero) gradient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(self.levels, device=x.device, dtype=x.dtype).view(1, 1, -1, 1, 1)
        scaled = self.levels * x[:, :, None] - steps  # the relaxation of bit i, before clamping to [0, 1]
        hard = (scaled >= 0.5).to(x.dtype)
        if self.bpda:  # the relaxation's slope where it is not clamped, ends included (pixels at 0 or 1)
            band = ((scaled >= 0) & (scaled <= 1)).to(x.dtype)
            code = hard + (scaled - scaled.detach()) * band
        else:  # the code's true derivative, zero; the graph stays connected so attacks run (and stall)
            code = hard + 0 * scaled
        return code.flatten(1, 2)


class ThermometerClassifier(nn.Module):
    """A thermometer code in front of ``net`` (whose first layer takes ``3·levels`` channels)."""

    takes_pixels = True

    def __init__(self, net: nn.Module, levels: int = 16):
        super().__init__()
        self.encoding = ThermometerEncoding(levels)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.encoding(x))


class Autoencoder(nn.Module):
    """MagNet's CIFAR-10 reformer with ``channels`` per hidden layer: conv 3×3 sigmoid → conv 3×3
    sigmoid → conv 3×3 (3), the output squashed by a sigmoid into [0, 1].

    Shape:
        - Input: ``[B, 3, H, W]`` in [0, 1]; output: the same.
    """

    def __init__(self, channels: int = 16):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1),
            nn.Sigmoid(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.Sigmoid(),
            nn.Conv2d(channels, 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.layers(x))


class ReconstructingClassifier(nn.Module):
    """MagNet's reformer in front of a classifier ``net`` trained on normalised inputs: the
    autoencoder rebuilds the pixels, which are normalised with ``net``'s own mean and std (buffers,
    saved with the weights) before ``net`` sees them."""

    takes_pixels = True

    def __init__(self, net: nn.Module):
        super().__init__()
        self.autoencoder = Autoencoder()
        self.net = net
        self.register_buffer("net_mean", torch.full((1, 3, 1, 1), 0.5))
        self.register_buffer("net_std", torch.full((1, 3, 1, 1), 0.25))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.autoencoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((self.autoencoder(x) - self.net_mean) / self.net_std)


@contextmanager
def bpda(module: nn.Module, on: bool = True) -> Iterator[None]:
    """Within the block, every thermometer code in ``module`` passes gradients by BPDA (``on``) or
    exactly; the forward pass is the same either way."""
    codes = [m for m in module.modules() if isinstance(m, ThermometerEncoding)]
    before = [m.bpda for m in codes]
    for m in codes:
        m.bpda = on
    try:
        yield
    finally:
        for m, state in zip(codes, before, strict=True):
            m.bpda = state


def has_thermometer(module: nn.Module) -> bool:
    """Whether ``module`` holds a thermometer code (a layer without a useful gradient)."""
    return any(isinstance(m, ThermometerEncoding) for m in module.modules())


def from_base(model: nn.Module, state: dict, mean: torch.Tensor | None, std: torch.Tensor | None) -> dict:
    """The weights ``state`` of a base classifier (trained on inputs normalised by ``mean`` and
    ``std``, ``[1, 3, 1, 1]`` or None for raw pixels) as weights of ``model``, the same base with a
    defense built in; the defense's own layers are left out (they start fresh or as the identity).

    A thermometer model's first convolution is derived from the base's so that it computes the base
    model on the input quantised to the code's levels (a pixel is the number of set bits / levels):
    ``W'[o, c·L + i] = W[o, c] / (std_c·L)`` and ``b' = b − Σ W·mean/std`` — exact away from the
    image border, where the base padded with the mean colour and the code pads with black.
    """
    mean = torch.zeros(1, 3, 1, 1) if mean is None else mean.detach().cpu().view(1, 3, 1, 1)
    std = torch.ones(1, 3, 1, 1) if std is None else std.detach().cpu().view(1, 3, 1, 1)
    if isinstance(model, ReconstructingClassifier):
        return {f"net.{k}": v for k, v in state.items()} | {"net_mean": mean, "net_std": std}
    if not isinstance(model, ThermometerClassifier):
        return dict(state)
    first = next(k for k, v in state.items() if v.ndim == 4 and v.shape[1] == 3)
    weight, bias_key = state[first], first.removesuffix("weight") + "bias"
    levels = model.encoding.levels
    scaled = weight / std.view(1, 3, 1, 1)
    out = dict(state)
    out[first] = (scaled / levels).repeat_interleave(levels, dim=1)
    out[bias_key] = state[bias_key] - (scaled * mean.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    return {f"net.{k}": v for k, v in out.items()}
