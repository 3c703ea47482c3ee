"""Trained defenses for classifiers: what each training batch becomes.

- ``pgd``: PGD adversarial training (Madry et al. 2018): 7 steps of ε/4 from a random start;
- ``fast``: fast adversarial training (Wong et al. 2020): one FGSM step of 1.25·ε from a random start;
- ``roa``: training on rectangular-occlusion attacks (Wu et al. 2020), the physically realisable
  threat (a sticker-sized square of any colours where it hurts most);
- ``distill``: defensive distillation (Papernot et al. 2016): a teacher trained at temperature T
  labels the data softly at T, a fresh student learns those labels at T and is deployed at T = 1.
  Carlini & Wagner (2016) broke it — its logits grow T-fold and saturate the softmax, so
  cross-entropy gradients vanish (gradient masking); a known-broken baseline worth showing;
- ``alp``: adversarial logit pairing (Kannan et al. 2018): half clean, half PGD cross-entropy plus
  ``pairing`` × the mean squared difference between the clean and the adversarial logits.
  Engstrom et al. (2018) broke it with a stronger PGD: judge it with many steps;
- ``mixed:ALPHA``: Goodfellow et al. (2015)'s loss ``ALPHA·J(x) + (1 − ALPHA)·J(x + ε·sign ∇J)``
  (FGSM examples; ALPHA 0.5 in the paper);
- ``msd``: Maini et al. (2020)'s multi steepest descent: the worst of an L∞, an L2 and an L1 PGD step
  each step (:mod:`physadv.attacks.multi_norm`), for robustness to all three at once;
- ``denoise``: feature-denoising blocks (Xie et al. 2019) built into LISA-CNN, trained with PGD;
- ``thermometer``: a 16-level thermometer code of the input (Buckman et al. 2018) built into the
  model, trained with PGD whose gradients pass the code by BPDA (Buckman et al. used LS-PGA, an attack
  on the code itself; BPDA is what Athalye et al. 2018 broke it with). The code has no useful
  gradient, so a plain gradient attack on the trained model fails: gradient masking, which
  ``physadv baselines`` flags and ``--bpda`` undoes;
- ``reconstruct``: MagNet's reformer (Meng & Chen 2017): an autoencoder trained to rebuild clean
  inputs from noisy ones (Gaussian noise of std ``noise``), put in front of the classifier given
  by ``--init``, which stays as it is. Carlini & Wagner (2017) broke it by attacking through it.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from physadv.attacks.digital import fgsm, pgd, rectangular_occlusion
from physadv.attacks.multi_norm import msd
from physadv.config import Settings, setting
from physadv.errors import PhysadvError
from physadv.models.robust_nets import bpda

DEFENSES = (
    "none", "pgd", "fast", "roa", "distill", "alp", "mixed", "msd", "denoise", "thermometer", "reconstruct",
)  # fmt: skip
BUILT_IN = ("denoise", "thermometer", "reconstruct")  # defenses that are layers of the model
PGD_CRAFTED = ("pgd", "alp", "denoise", "thermometer")


@dataclass
class TrainingDefense(Settings):
    """A trained defense and its settings (``parse("mixed:0.3")`` reads the CLI's form)."""

    name: str = setting("none", "the trained defense: " + ", ".join(DEFENSES))
    eps: float = setting(8 / 255, "L∞ budget of the training attack, in [0, 1] pixel units", minimum=0)
    temperature: float = setting(20.0, "distill: the temperature T", minimum=1)
    alpha: float = setting(0.5, "mixed: weight of the clean loss", minimum=0, maximum=1)
    pairing: float = setting(0.5, "alp: weight of the logit-pairing term", minimum=0)
    steps: int = setting(7, "steps of the training attack (pgd, alp, denoise, thermometer, msd)", minimum=1)
    eps_l2: float = setting(0.5, "msd: L2 budget, in [0, 1] pixel units", minimum=0)
    eps_l1: float = setting(12.0, "msd: L1 budget, in [0, 1] pixel units", minimum=0)
    noise: float = setting(0.025, "reconstruct: std of the noise on the autoencoder's inputs", minimum=0)

    def __post_init__(self):
        if self.name not in DEFENSES:
            raise PhysadvError(f"unknown training defense '{self.name}': use {', '.join(DEFENSES)}")
        super().__post_init__()

    @classmethod
    def parse(cls, text: str, **settings) -> TrainingDefense:
        """``"pgd"``, ``"mixed:0.3"`` (ALPHA) → a defense; other settings by keyword."""
        name, _, value = text.strip().partition(":")
        if value and name != "mixed":
            raise PhysadvError(f"training defense '{name}' takes no ':' setting (only mixed:ALPHA does)")
        if value:
            try:
                settings["alpha"] = float(value)
            except ValueError:
                raise PhysadvError(
                    f"bad training defense '{text}': want mixed:ALPHA, ALPHA from 0 to 1"
                ) from None
        return cls(name, **settings)

    @property
    def phases(self) -> int:
        """Distillation trains twice (teacher, then student); the others once."""
        return 2 if self.name == "distill" else 1

    def architecture(self, base: str) -> str:
        """The architecture to train: ``base``, or ``base+defense`` where the defense is a layer."""
        return f"{base}+{self.name}" if self.name in BUILT_IN else base

    def trainable(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        """The parameters this defense trains (MagNet's reformer: only the autoencoder)."""
        return list((model.autoencoder if self.name == "reconstruct" else model).parameters())

    def record(self) -> dict:
        """The settings that matter for this defense, for the trained file's metadata."""
        keys = {"pgd": ("eps", "steps"), "fast": ("eps",), "distill": ("temperature",)}
        keys |= {"alp": ("eps", "steps", "pairing"), "mixed": ("eps", "alpha"), "denoise": ("eps", "steps")}
        keys |= {"msd": ("eps", "eps_l2", "eps_l1", "steps"), "thermometer": ("eps", "steps")}
        keys |= {"reconstruct": ("noise",)}
        return {k: getattr(self, k) for k in keys.get(self.name, ())}

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
        if self.name == "reconstruct":
            noisy = (x + self.noise * torch.randn(x.shape, generator=generator).to(x)).clamp(0, 1)
            return F.mse_loss(model.autoencoder(noisy), x)
        if self.name == "none":
            return F.cross_entropy(logits(x), y)
        adv = self.craft(model, logits, x, y, generator)
        if self.name == "alp":
            clean, attacked = logits(x), logits(adv)
            pairs = F.mse_loss(attacked, clean)
            return 0.5 * F.cross_entropy(clean, y) + 0.5 * F.cross_entropy(attacked, y) + self.pairing * pairs
        if self.name == "mixed":
            return self.alpha * F.cross_entropy(logits(x), y) + (1 - self.alpha) * F.cross_entropy(
                logits(adv), y
            )
        return F.cross_entropy(logits(adv), y)

    def craft(
        self, model: torch.nn.Module, logits, x: torch.Tensor, y: torch.Tensor, generator
    ) -> torch.Tensor:
        """The adversarial examples of this batch, made with the weights as they are (eval mode;
        through BPDA where the model has a thermometer code)."""
        model.eval()
        with bpda(model) if self.name == "thermometer" else nullcontext():
            if self.name in PGD_CRAFTED:
                adv = pgd(logits, x, y, self.eps, generator, steps=self.steps)
            elif self.name == "fast":
                adv = fgsm(logits, x, y, self.eps, generator, random_start=True)
            elif self.name == "mixed":
                adv = fgsm(logits, x, y, self.eps)
            elif self.name == "msd":
                adv = msd(logits, x, y, self.eps, generator, self.steps, self.eps_l2, self.eps_l1)
            else:
                adv = rectangular_occlusion(logits, x, y)
        model.train()
        return adv
