"""A detection defense: Monte-Carlo dropout uncertainty (Feinman et al. 2017; Gal & Ghahramani 2016).

Dropout stays on at test time, in front of the classifier's last linear layer; ``samples`` passes
give a spread of softmax outputs, and an input whose spread (the summed variance over classes) is
above a threshold is *flagged* as adversarial. The threshold is set on clean inputs for a chosen
false-alarm rate; the false alarms on other clean inputs are part of the defense's cost.

Carlini & Wagner (2017) showed the adaptive attack: optimise through the dropout, one fresh draw per
call (EOT), which ``logits`` does, and keep the spread under the threshold, which
:meth:`MCDropout.evasion_penalty` adds to an attack's objective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from physadv.defenses.defended import ModelWrapper
from physadv.errors import PhysadvError


class MCDropout(ModelWrapper):
    """Dropout ``p`` before the last linear layer of a classifier adapter, ``samples`` passes."""

    kind = "classifier"

    def __init__(self, model, p: float = 0.2, samples: int = 20, false_alarm: float = 0.05, seed: int = 0):
        if model.kind != "classifier":
            raise PhysadvError("mcdropout is a classifier defense")
        linears = [m for m in getattr(model, "module", nn.Module()).modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise PhysadvError("mcdropout needs a classifier whose last layer is an nn.Linear")
        super().__init__(model, seed)
        self.p, self.samples, self.false_alarm = p, samples, false_alarm
        self.threshold: float | None = None
        self._on = False
        self._generator = torch.Generator(device=model.device).manual_seed(seed)
        linears[-1].register_forward_pre_hook(self._drop)

    @property
    def name(self) -> str:
        return f"mcdropout:{self.p:g}"

    def _drop(self, module, inputs):
        if not self._on:
            return None
        (x,) = inputs
        keep = torch.rand(x.shape, generator=self._generator, device=x.device) >= self.p
        return (x * keep / (1 - self.p),)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits with one dropout draw (differentiable)."""
        self._on = True
        try:
            return self.model.logits(images)
        finally:
            self._on = False

    def evasion_penalty(self, images: torch.Tensor, draws: int = 4) -> torch.Tensor:
        """Differentiable: the mean spread over ``draws`` dropout passes, in units of the threshold —
        what an adaptive attacker adds to its loss to stay unflagged (0 before calibration)."""
        if self.threshold is None:
            return images.new_zeros(())
        probs = torch.stack([F.softmax(self.logits(images), dim=1) for _ in range(draws)])
        return probs.var(dim=0).sum(dim=1).mean() / max(self.threshold, 1e-8)

    def evasion_penalties(self, images: torch.Tensor, draws: int = 4) -> torch.Tensor:
        """``[B]`` differentiable: how far each input's spread over ``draws`` passes is above the
        threshold, in thresholds (0: not flagged, or not calibrated yet) — what a digital attack pays."""
        if self.threshold is None:
            return images.new_zeros(len(images))
        probs = torch.stack([F.softmax(self.logits(images), dim=1) for _ in range(draws)])
        return (probs.var(dim=0).sum(dim=1) / max(self.threshold, 1e-8) - 1).clamp(min=0)

    @torch.no_grad()
    def _probs(self, images: torch.Tensor) -> torch.Tensor:
        """``[samples, B, nc]`` softmax outputs."""
        return torch.stack([F.softmax(self.logits(images), dim=1) for _ in range(self.samples)])

    @torch.no_grad()
    def uncertainty(self, images: torch.Tensor) -> torch.Tensor:
        """``[B]`` summed variance over classes of the sampled softmax outputs."""
        return self._probs(images).var(dim=0).sum(dim=1).cpu()

    @torch.no_grad()
    def calibrate(self, clean: torch.Tensor, batch: int = 256) -> float:
        """Set the threshold so that a fraction ``false_alarm`` of these clean inputs is flagged."""
        spread = torch.cat([self.uncertainty(clean[i : i + batch]) for i in range(0, len(clean), batch)])
        self.threshold = float(torch.quantile(spread, 1 - self.false_alarm))
        return self.threshold

    @torch.no_grad()
    def flag(self, images: torch.Tensor) -> torch.Tensor:
        """``[B]`` bool: the input looks adversarial."""
        if self.threshold is None:
            raise RuntimeError("calibrate MCDropout on clean inputs before flagging")
        return self.uncertainty(images) > self.threshold

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels and probabilities averaged over the dropout samples."""
        probs = self._probs(images).mean(dim=0)
        return probs.argmax(dim=1), probs
