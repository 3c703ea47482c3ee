"""Trained defenses for classifiers: what each training batch becomes.

- ``pgd``: PGD adversarial training (Madry et al. 2018): 7 steps of ε/4 from a random start;
- ``fast``: fast adversarial training (Wong et al. 2020): one FGSM step of 1.25·ε from a random start;
- ``roa``: training on rectangular-occlusion attacks (Wu et al. 2020), the physically realisable
  threat (a sticker-sized square of any colours where it hurts most);
- ``distill``: defensive distillation (Papernot et al. 2016): a teacher trained at temperature T
  labels the data softly at T, a fresh student learns those labels at T and is deployed at T = 1.
  Carlini & Wagner (2016) broke it — its logits grow T-fold and saturate the softmax, so
  cross-entropy gradients vanish (gradient masking); a known-broken baseline worth showing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from physadv.attacks.digital import fgsm, pgd, rectangular_occlusion
from physadv.errors import PhysadvError

DEFENSES = ("none", "pgd", "fast", "roa", "distill")


@dataclass
class TrainingDefense:
    name: str = "none"
    eps: float = 8 / 255
    temperature: float = 20.0

    def __post_init__(self):
        if self.name not in DEFENSES:
            raise PhysadvError(f"unknown training defense '{self.name}': use {', '.join(DEFENSES)}")

    @property
    def phases(self) -> int:
        """Distillation trains twice (teacher, then student); the others once."""
        return 2 if self.name == "distill" else 1

    def loss(
        self, model: torch.nn.Module, normalise, x: torch.Tensor, y: torch.Tensor, teacher, generator
    ) -> torch.Tensor:
        """The training loss of one batch (``x`` in [0, 1]; ``teacher``: the distillation teacher in
        the student phase, else None)."""

        def logits(images: torch.Tensor) -> torch.Tensor:
            return model(normalise(images))

        if self.name == "distill":
            t = self.temperature
            if teacher is None:
                return F.cross_entropy(logits(x) / t, y)
            with torch.no_grad():
                soft = F.softmax(teacher(normalise(x)) / t, dim=1)
            return -(soft * F.log_softmax(logits(x) / t, dim=1)).sum(dim=1).mean()
        if self.name != "none":
            model.eval()  # craft the examples with the weights as they are, then learn from them
            if self.name == "pgd":
                x = pgd(logits, x, y, self.eps, generator, steps=7)
            elif self.name == "fast":
                x = fgsm(logits, x, y, self.eps, generator, random_start=True)
            else:
                x = rectangular_occlusion(logits, x, y)
            model.train()
        return F.cross_entropy(logits(x), y)
