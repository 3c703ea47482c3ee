"""PGD and Carlini–Wagner L2 beside the sticker in the defense table (``physadv defend --digital``),
on the same held-out views of the sign, cropped as the classifier sees them:

- ``non_adaptive``: the attack made once on the bare model, judged through each defense;
- ``adaptive``: the attack made through the defense — its gradients, BPDA where it has none, a fresh
  draw of its randomness every step, and, for a defense that flags inputs, its score in the
  attacker's objective (``evasion_penalties``; Carlini & Wagner 2017).

A flagged attacked input counts as a stopped attack (as for the sticker). Athalye et al.'s signs of
gradient masking become warnings: the adaptive attack doing worse than the non-adaptive one, and
the unbounded CW attack leaving inputs correct (or flagged) through the defense.
"""

from __future__ import annotations

import torch

from physadv.attacks.digital import cw_l2, pgd
from physadv.eot.sign_views import render_views, scaled_boxes
from physadv.harness.crops import model_inputs
from physadv.harness.sources import batched
from physadv.results import Rate

DIGITAL = ("pgd", "cw_l2")
EPS = 8 / 255  # PGD's L∞ budget, as in the baselines table
PGD_STEPS = 40  # an adaptive PGD through JPEG needed 40 steps to beat the non-adaptive one (tests)
MARGIN = 0.05
UNBOUNDED_LEFT = 0.1


def digital_inputs(attack, views) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean views as the classifier sees them ``[N, 3, h, w]`` and their true labels ``[N]``."""
    crops = []
    for chunk in batched(views, 32):
        with torch.no_grad():
            frames = render_views(attack.face, chunk, attack.out_size)
        crops.append(model_inputs(attack.model, frames, scaled_boxes(chunk, attack.out_size)))
    x = torch.cat(crops)
    return x, torch.full((len(x),), attack.config.true_class, device=x.device)


def run_attack(
    name: str, model, x: torch.Tensor, y: torch.Tensor, seed: int, batch: int = 100
) -> torch.Tensor:
    """``name`` (pgd or cw_l2) made against ``model``, with its evasion penalty where it flags inputs."""
    penalty = getattr(model, "evasion_penalties", None)
    generator = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(x), batch):
        xs, ys = x[i : i + batch], y[i : i + batch]
        if name == "pgd":
            out.append(pgd(model.logits, xs, ys, EPS, generator, steps=PGD_STEPS, penalty=penalty))
        else:
            out.append(cw_l2(model.logits, xs, ys, penalty=penalty))
    return torch.cat(out)


def _judge(model, adv: torch.Tensor, y: torch.Tensor) -> tuple[dict, dict | None]:
    """Accuracy with flags as stopped attacks, and the flag rate (None without flags)."""
    with torch.no_grad():
        correct = torch.cat([model.predict(c)[0].to(y) for c in adv.split(100)]) == y
    if not hasattr(model, "flag"):
        return Rate(int(correct.sum()), len(y)).as_dict(), None
    flagged = torch.cat([model.flag(c).to(y.device) for c in adv.split(100)])
    return Rate(int((correct | flagged).sum()), len(y)).as_dict(), Rate(int(flagged.sum()), len(y)).as_dict()


def digital_columns(defended, x, y, made_on_bare: dict[str, torch.Tensor], seed: int, bare: bool) -> dict:
    """``{attack: {"non_adaptive", "adaptive"[, "flagged"]}}`` for one defense (``bare``: no defense,
    so the non-adaptive attack is the adaptive one)."""
    columns = {}
    for name, transferred in made_on_bare.items():
        adaptive = transferred if bare else run_attack(name, defended, x, y, seed)
        (na, na_flags), (ad, ad_flags) = _judge(defended, transferred, y), _judge(defended, adaptive, y)
        columns[name] = {"non_adaptive": na, "adaptive": ad}
        if na_flags is not None:
            columns[name]["flagged"] = {"non_adaptive": na_flags, "adaptive": ad_flags}
        columns[name]["mean_l2"] = round(float((adaptive - x).flatten(1).norm(dim=1).mean()), 4)
    return columns


def digital_warnings(columns: dict) -> list[str]:
    """Signs of gradient masking in one defense's digital columns."""
    out = []
    for name, c in columns.items():
        na, ad = c["non_adaptive"]["rate"], c["adaptive"]["rate"]
        if ad > na + MARGIN:
            out.append(
                f"the adaptive {name} ({100 * ad:.1f} %) did worse than the one made on the bare model "
                f"({100 * na:.1f} %): gradient masking, or too few steps; trust the lower number"
            )
        if name == "cw_l2" and ad > UNBOUNDED_LEFT:
            out.append(
                f"cw_l2 left {100 * ad:.1f} % correct or flagged through the defense although its size is "
                "unbounded: gradients may be masked"
            )
    return out
