"""Detection defenses for classifiers that flag adversarial inputs, from a file that
``physadv train detector-net`` wrote for one classifier:

- ``detector-net``: Metzen et al. (2017)'s detector subnetwork on a feature map of the classifier,
  trained on clean and PGD inputs;
- ``kd``: Feinman et al. (2017)'s kernel density of the last hidden layer's features among the
  training features of the predicted class;
- ``lid``: Ma et al. (2018)'s local intrinsic dimensionality of every layer's activations among a
  reference batch of clean inputs, combined by a logistic regression trained on clean and PGD inputs.

Each wrapper keeps the classifier's answers and adds ``flag``: the score is above a threshold set on
clean inputs for a false-alarm rate (:meth:`FlaggingDefense.calibrate`; until then, the threshold
the training found on its own held-out crops). The adaptive attacker (Carlini & Wagner 2017, who
bypassed all three) attacks the classifier and the score together: ``evasion_penalties`` is what it
pays for being flagged, in units of the spread of clean scores.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from physadv.defenses.defended import ModelWrapper
from physadv.defenses.features import (
    DetectorNet,
    kernel_density,
    layer,
    lid_layers,
    local_intrinsic_dimensionality,
    logistic_score,
    penultimate,
    tapped,
)
from physadv.errors import PhysadvError
from physadv.statefile import load_state

FORMAT = "physadv-detector-net/1"


def classifier_digest(module: torch.nn.Module) -> str:
    """A digest of a classifier's weights: a detector file serves the classifier it was trained on."""
    sha = hashlib.sha1()
    for key, value in sorted(module.state_dict().items()):
        sha.update(key.encode())
        sha.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()[:16]


def read_detectors(path: str | Path, model) -> dict:
    """The detector file at ``path``, checked to belong to ``model`` (a classifier adapter)."""
    path = Path(path)
    if not path.is_file():
        raise PhysadvError(f"detector file '{path}' not found (make one with 'physadv train detector-net')")
    saved = load_state(path, "detector-net file")
    if saved.get("format") != FORMAT:
        raise PhysadvError(f"'{path}' is not a file from 'physadv train detector-net'")
    if saved["classifier_digest"] != classifier_digest(model.module):
        raise PhysadvError(
            f"'{path}' was trained for another classifier ({saved['classifier']}); train one for this "
            "model with 'physadv train detector-net --model …'"
        )
    return saved


class FlaggingDefense(ModelWrapper):
    """A classifier adapter plus a differentiable ``score`` ``[B]`` (higher: more suspicious) and a
    threshold on it. Subclasses set ``key`` and ``score``."""

    kind = "classifier"
    key = "flagging"

    def __init__(self, model, path: str | Path, false_alarm: float = 0.05, seed: int = 0):
        if model.kind != "classifier":
            raise PhysadvError(f"{self.key} is a classifier defense")
        super().__init__(model, seed)
        self.saved = read_detectors(path, model)
        self.false_alarm = false_alarm
        self.threshold, self.spread = self.saved[self.key]["threshold"], self.saved[self.key]["spread"]

    @property
    def name(self) -> str:
        return self.key

    def score(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def scores(self, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """``[B]`` scores on the CPU, in chunks."""
        return torch.cat([self.score(images[i : i + batch]).cpu() for i in range(0, len(images), batch)])

    @torch.no_grad()
    def calibrate(self, clean: torch.Tensor, batch: int = 256) -> float:
        """Set the threshold so that a fraction ``false_alarm`` of these clean inputs is flagged."""
        values = self.scores(clean, batch)
        self.threshold = float(torch.quantile(values, 1 - self.false_alarm))
        self.spread = max(float(values.std()), 1e-6) if len(values) > 1 else self.spread
        return self.threshold

    @torch.no_grad()
    def flag(self, images: torch.Tensor) -> torch.Tensor:
        """``[B]`` bool: the input looks adversarial."""
        return self.scores(images) > self.threshold

    def evasion_penalties(self, images: torch.Tensor) -> torch.Tensor:
        """``[B]`` differentiable: how far each score is above the threshold, in clean spreads (0:
        not flagged)."""
        return (self.score(images) - self.threshold).clamp(min=0) / self.spread

    def evasion_penalty(self, images: torch.Tensor) -> torch.Tensor:
        """The mean of :meth:`evasion_penalties`: what the sticker attack adds to its loss."""
        return self.evasion_penalties(images).mean()


class DetectorNetDefense(FlaggingDefense):
    """Metzen et al.'s detector subnetwork on the saved layer's feature map."""

    key = "detector-net"

    def __init__(self, model, path: str | Path, false_alarm: float = 0.05, seed: int = 0):
        super().__init__(model, path, false_alarm, seed)
        saved = self.saved["detector-net"]
        self.layer = layer(model.module, saved["layer"])
        self.net = DetectorNet(saved["channels"])
        self.net.load_state_dict(saved["weights"])
        self.net = self.net.to(model.device).eval().requires_grad_(False)

    def score(self, images: torch.Tensor) -> torch.Tensor:
        _, (features,), _ = tapped(self.model, images, outputs=[self.layer])
        return self.net(features)


class KernelDensity(FlaggingDefense):
    """Feinman et al.'s kernel density, as ``−log`` density (low density: flagged)."""

    key = "kd"

    def __init__(self, model, path: str | Path, false_alarm: float = 0.05, seed: int = 0):
        super().__init__(model, path, false_alarm, seed)
        saved = self.saved["kd"]
        self.last = penultimate(model.module)
        self.reference = saved["features"].to(model.device)
        self.labels = saved["labels"].to(model.device)
        self.sigma = float(saved["sigma"])

    def score(self, images: torch.Tensor) -> torch.Tensor:
        logits, _, (features,) = tapped(self.model, images, inputs=[self.last])
        return kernel_density(features, logits.argmax(1), self.reference, self.labels, self.sigma)


class LocalIntrinsicDimensionality(FlaggingDefense):
    """Ma et al.'s LID in every ReLU's output and the logits, through the saved logistic regression."""

    key = "lid"

    def __init__(self, model, path: str | Path, false_alarm: float = 0.05, seed: int = 0):
        super().__init__(model, path, false_alarm, seed)
        saved = self.saved["lid"]
        self.layers = lid_layers(model.module)
        self.k, self.fit = int(saved["k"]), saved["regression"]
        with torch.no_grad():
            self.reference = lid_activations(model, saved["reference"].to(model.device), self.layers)

    def score(self, images: torch.Tensor) -> torch.Tensor:
        return logistic_score(self.fit, lid_features(self.model, images, self.layers, self.reference, self.k))


def lid_activations(model, images: torch.Tensor, layers: list) -> list[torch.Tensor]:
    """The activations LID is estimated in: each layer's output and the logits, ``[B, D]`` each."""
    logits, outputs, _ = tapped(model, images, outputs=layers)
    return [o.flatten(1) for o in outputs] + [logits]


def lid_features(model, images: torch.Tensor, layers: list, reference: list, k: int) -> torch.Tensor:
    """``[B, L]``: the LID of each input in each layer, among the reference activations."""
    acts = lid_activations(model, images, layers)
    return torch.stack(
        [local_intrinsic_dimensionality(a, r, k) for a, r in zip(acts, reference, strict=True)], 1
    )
