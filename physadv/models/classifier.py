"""Adapter for image classifiers: any ``nn.Module``, a TorchScript file, or safetensors weights
plus a named built-in architecture.

Conventions: images are RGB float in [0, 1], ``[B, 3, H, W]``, any H and W; the adapter resizes
to the model's input size and normalises inside, so attacks never see either. The victim is frozen.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from physadv.device import autocast
from physadv.models.classes import ClassNames
from physadv.models.frozen import freeze


class Classifier:
    """A frozen classifier behind physadv's contract: differentiable ``logits`` and no-grad ``predict``.

    Args:
        module: maps normalised ``[B, 3, h, w]`` to ``[B, nc]`` logits.
        names: class names, in logit order.
        input_size: ``(h, w)`` the module expects, in pixels.
        mean, std: per-channel normalisation applied after resizing (``None``: none).
        device: where the model runs.
        amp: float16 autocast on CUDA.
    """

    kind = "classifier"
    file_format = "a module in memory"  # what load_model read it from

    def __init__(
        self,
        module: nn.Module,
        names: ClassNames | Sequence[str],
        input_size: tuple[int, int] = (32, 32),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        device: torch.device | str = "cpu",
        amp: bool = False,
    ):
        self.device = torch.device(device)
        self.module = freeze(module, self.device)
        self.names = names if isinstance(names, ClassNames) else ClassNames(names)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean = None if mean is None else torch.tensor(mean, device=self.device).view(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std, device=self.device).view(1, -1, 1, 1)
        self.amp = amp

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Resize to the input size (antialiased when shrinking) and normalise; differentiable."""
        x = images.to(self.device)
        if tuple(x.shape[-2:]) != self.input_size:
            shrink = x.shape[-2] > self.input_size[0] or x.shape[-1] > self.input_size[1]
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False, antialias=shrink)
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        return x

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable logits.

        Shape:
            - images: ``[B, 3, H, W]`` RGB in [0, 1]
            - returns: ``[B, nc]`` float32
        """
        with autocast(self.device, self.amp):
            out = self.module(self.preprocess(images))
        if out.ndim != 2 or out.shape[1] != self.num_classes:
            raise ValueError(
                f"classifier returned shape {tuple(out.shape)}, expected [B, {self.num_classes}]"
            )
        return out.float()

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-1 labels ``[B]`` and softmax probabilities ``[B, nc]``."""
        probs = self.logits(images).softmax(dim=1)
        return probs.argmax(dim=1), probs
