"""What detection defenses read inside a classifier, and the scores they compute from it.

- :func:`tapped`: the classifier's logits together with the activations of named layers (forward
  hooks on the adapter's module, removed afterwards; the victim is never changed);
- :class:`DetectorNet`: Metzen et al. (2017)'s detector subnetwork, a small convolutional network
  on one feature map of the classifier that outputs the logit of "adversarial";
- :func:`kernel_density`: Feinman et al. (2017)'s kernel density of an input's last-hidden-layer
  features among the training features of the class it is predicted as (Gaussian kernel,
  bandwidth ``σ``), as ``−log`` density: higher is more suspicious;
- :func:`local_intrinsic_dimensionality`: Ma et al. (2018)'s maximum-likelihood LID estimate of an
  input's activations in each layer, from its ``k`` nearest neighbours in a reference batch of clean
  inputs: ``LID = −(mean_{i≤k} log(r_i / r_k))⁻¹``.

Every score is differentiable in the input, so an adaptive attacker can lower it (Carlini & Wagner
2017 bypassed all three this way).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from physadv.errors import PhysadvError


def layer(module: nn.Module, name: str) -> nn.Module:
    """The sub-module ``name`` (``features.3``), or a one-line error listing the names there are."""
    found = dict(module.named_modules()).get(name)
    if found is None or not name:
        names = ", ".join(n for n, _ in module.named_modules() if n)
        raise PhysadvError(f"the classifier has no layer '{name}': choose one of {names}")
    return found


def penultimate(module: nn.Module) -> nn.Module:
    """The classifier's last linear layer, whose *input* is the last hidden layer's features."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise PhysadvError("this detection defense needs a classifier whose last layer is an nn.Linear")
    return linears[-1]


def lid_layers(module: nn.Module) -> list[nn.Module]:
    """The layers whose outputs LID is estimated in: every ReLU (Ma et al. used every layer)."""
    relus = [m for m in module.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise PhysadvError("the LID defense needs a classifier with nn.ReLU activations")
    return relus


def tapped(model, images: torch.Tensor, outputs=(), inputs=()) -> tuple[torch.Tensor, list, list]:
    """``model.logits(images)`` (a classifier adapter's), the outputs of the sub-modules in
    ``outputs`` and the inputs of those in ``inputs``, all differentiable in ``images``."""
    seen_out: dict[int, torch.Tensor] = {}
    seen_in: dict[int, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, k=k: seen_out.__setitem__(k, o))
        for k, m in enumerate(outputs)
    ]
    hooks += [
        m.register_forward_pre_hook(lambda m, i, k=k: seen_in.__setitem__(k, i[0]))
        for k, m in enumerate(inputs)
    ]
    try:
        logits = model.logits(images)
    finally:
        for h in hooks:
            h.remove()
    return logits, [seen_out[k] for k in range(len(outputs))], [seen_in[k] for k in range(len(inputs))]


class DetectorNet(nn.Module):
    """Metzen et al.'s detector on a ``[B, C, h, w]`` feature map: conv 96 3×3 → ReLU → max-pool 2 →
    conv 192 3×3 → ReLU → conv 1×1 to one channel → global average: ``[B]`` logits of "adversarial"
    (their CIFAR-10 detector, without its last pooling, for the small maps of a 32-pixel classifier)."""

    def __init__(self, channels: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, 96, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(96, 192, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(192, 1, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).mean(dim=(1, 2, 3))


def kernel_density(
    features: torch.Tensor,
    predicted: torch.Tensor,
    reference: torch.Tensor,
    labels: torch.Tensor,
    sigma: float,
) -> torch.Tensor:
    """``[B]`` = ``−log mean_j exp(−‖z − z_j‖² / σ²)`` over the reference features ``z_j`` (``[N, D]``)
    labelled as each input's predicted class (all of them where a class has none)."""
    d2 = torch.cdist(features.flatten(1), reference).pow(2)  # [B, N]
    same = labels[None, :] == predicted[:, None]
    same = same | ~same.any(dim=1, keepdim=True)
    logk = (-d2 / sigma**2).masked_fill(~same, float("-inf"))
    return -(torch.logsumexp(logk, dim=1) - same.sum(dim=1).log())


def local_intrinsic_dimensionality(
    activations: torch.Tensor, reference: torch.Tensor, k: int
) -> torch.Tensor:
    """``[B]`` LID of each input's activations ``[B, D]`` among the reference activations ``[N, D]``
    (an input that is also in the reference is skipped as its own neighbour)."""
    dist = torch.cdist(activations.flatten(1), reference.flatten(1))
    dist = dist.masked_fill(dist < 1e-9, float("inf"))
    near = (-dist).topk(min(k, reference.shape[0] - 1), dim=1).values.neg().clamp(min=1e-12)  # ascending
    return -1 / (near / near[:, -1:]).log().mean(dim=1).clamp(max=-1e-12)


def roc_auc(negative: torch.Tensor, positive: torch.Tensor) -> float:
    """The probability that a positive scores above a negative (ties count half)."""
    greater = (positive[:, None] > negative[None, :]).float().mean()
    ties = (positive[:, None] == negative[None, :]).float().mean()
    return float(greater + 0.5 * ties)


def fit_logistic(positive: torch.Tensor, negative: torch.Tensor, l2: float = 1e-3) -> dict:
    """A logistic regression (standardised features, L-BFGS) separating ``positive`` ``[P, L]`` from
    ``negative`` ``[N, L]``: ``{"mean", "std", "weight", "bias"}`` for :func:`logistic_score`."""
    x = torch.cat([negative, positive]).detach().double()
    y = torch.cat([torch.zeros(len(negative)), torch.ones(len(positive))]).double()
    mean, std = x.mean(dim=0), x.std(dim=0).clamp(min=1e-6)
    z = (x - mean) / std
    w = torch.zeros(x.shape[1], dtype=torch.double, requires_grad=True)
    b = torch.zeros((), dtype=torch.double, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z @ w + b, y) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return {"mean": mean.float(), "std": std.float(), "weight": w.detach().float(), "bias": float(b.detach())}


def logistic_score(fit: dict, x: torch.Tensor) -> torch.Tensor:
    """``[B]`` logits of the fitted regression on features ``[B, L]`` (differentiable)."""
    z = (x - fit["mean"].to(x)) / fit["std"].to(x)
    return z @ fit["weight"].to(x) + fit["bias"]
