"""Digital attack baselines for classifiers, from the literature: Gaussian noise, the negative image
(Hosseini et al. 2017), FGSM (Goodfellow et al. 2015), BIM (Kurakin et al. 2017), PGD (Madry et al.
2018), DeepFool (Moosavi-Dezfooli et al. 2016) and Carlini–Wagner L2 (2017).

Every attack takes ``logits``, a function from images ``[B, 3, H, W]`` in [0, 1] to ``[B, nc]``
logits (a classifier adapter's ``logits``, a defended one's, or a module being trained), the images
and their true labels, and returns adversarial images in [0, 1]. ``eps`` is an L∞ budget in [0, 1]
units; DeepFool and CW are minimum-norm L2 attacks and ignore it.

Against a detection defense (one that flags inputs), PGD and CW take ``penalty``: a function from
images to ``[B]`` non-negative costs, 0 where the input goes unflagged (the defense's
``evasion_penalties``). PGD subtracts it from the loss it ascends and CW adds it to its objective
and counts only unflagged results as successes — Carlini & Wagner (2017)'s way of attacking a
classifier and its detector together.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Logits = Callable[[torch.Tensor], torch.Tensor]
Penalty = Callable[[torch.Tensor], torch.Tensor]


def _grad(logits: Logits, x: torch.Tensor, y: torch.Tensor, penalty: Penalty | None = None) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(logits(x), y, reduction="none")
    if penalty is not None:
        loss = loss - penalty(x)
    return torch.autograd.grad(loss.sum(), x)[0]


def gaussian_noise(logits, x, y, eps=8 / 255, generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise of standard deviation ``eps`` (the floor any attack must beat)."""
    noise = torch.randn(x.shape, generator=generator).to(x)
    return (x + eps * noise).clamp(0, 1)


def negative(logits, x, y, eps=None, generator=None) -> torch.Tensor:
    """The negative image ``1 − x``."""
    return 1 - x


def fgsm(logits, x, y, eps=8 / 255, generator=None, random_start: bool = False, alpha=None) -> torch.Tensor:
    """One signed-gradient step of ``alpha`` (default ``eps``); with ``random_start`` from a uniform
    point in the ε-ball and ``alpha = 1.25·eps`` (Wong et al. 2020's fast adversarial training)."""
    start = x
    if random_start:
        start = (x + (torch.rand(x.shape, generator=generator).to(x) * 2 - 1) * eps).clamp(0, 1)
        alpha = 1.25 * eps if alpha is None else alpha
    step = (alpha or eps) * _grad(logits, start, y).sign()
    return (x + (start + step - x).clamp(-eps, eps)).clamp(0, 1)


def pgd(
    logits,
    x,
    y,
    eps=8 / 255,
    generator=None,
    steps: int = 10,
    alpha=None,
    random_start: bool = True,
    penalty: Penalty | None = None,
) -> torch.Tensor:
    """Projected gradient descent on the cross-entropy in the L∞ ball (Madry et al.: random start,
    step ``alpha`` default ``eps / 4``), minus ``penalty`` where a detection defense is attacked too."""
    alpha = eps / 4 if alpha is None else alpha
    adv = x.clone()
    if random_start:
        adv = (x + (torch.rand(x.shape, generator=generator).to(x) * 2 - 1) * eps).clamp(0, 1)
    for _ in range(steps):
        adv = adv + alpha * _grad(logits, adv, y, penalty).sign()
        adv = (x + (adv - x).clamp(-eps, eps)).clamp(0, 1)
    return adv.detach()


def bim(logits, x, y, eps=8 / 255, generator=None, steps: int | None = None) -> torch.Tensor:
    """The basic iterative method: PGD without the random start, step 1/255, ``min(255·eps + 4,
    1.25·255·eps)`` steps (Kurakin et al.)."""
    if steps is None:
        steps = max(1, round(min(255 * eps + 4, 1.25 * 255 * eps)))
    return pgd(logits, x, y, eps, steps=steps, alpha=1 / 255, random_start=False)


def deepfool(
    logits, x, y, eps=None, generator=None, steps: int = 50, overshoot: float = 0.02
) -> torch.Tensor:
    """The smallest L2 step across the nearest linearised decision boundary, repeated until the label
    changes (every class is a candidate)."""
    adv = x.clone().detach()
    for _ in range(steps):
        adv.requires_grad_(True)
        out = logits(adv)
        active = out.argmax(1) == y
        if not active.any():
            break
        own = out.gather(1, y[:, None])[:, 0]
        grad_own = torch.autograd.grad(own.sum(), adv, retain_graph=True)[0]
        best = torch.full((len(x),), float("inf"), device=x.device)
        best_w = torch.zeros_like(x)
        for k in range(out.shape[1]):
            grad_k = torch.autograd.grad(out[:, k].sum(), adv, retain_graph=k < out.shape[1] - 1)[0]
            w = grad_k - grad_own
            norm = w.flatten(1).norm(dim=1).clamp(min=1e-12)
            dist = (out[:, k] - own).detach().abs() / norm
            better = (dist < best) & (y != k)
            best = torch.where(better, dist, best)
            best_w = torch.where(better[:, None, None, None], w / norm[:, None, None, None], best_w)
        step = (best + 1e-4)[:, None, None, None] * best_w * (1 + overshoot)
        adv = (adv.detach() + step * active[:, None, None, None]).clamp(0, 1)
    return adv.detach()


def cw_l2(
    logits,
    x,
    y,
    eps=None,
    generator=None,
    steps: int = 50,
    c: float = 1.0,
    searches: int = 3,
    lr: float = 0.01,
    kappa: float = 0.0,
    penalty: Penalty | None = None,
) -> torch.Tensor:
    """Carlini–Wagner L2: Adam in tanh space on ``‖δ‖² + c·max(Z_y − max_{i≠y} Z_i, −κ)``, with a
    binary search over ``c`` per image; returns the smallest successful perturbation found (or the
    clean image where none was). With ``penalty``, ``c·penalty`` joins the objective and a success
    must also go unflagged."""
    n = len(x)
    lo, hi = torch.zeros(n, device=x.device), torch.full((n,), 1e10, device=x.device)
    const = torch.full((n,), c, device=x.device)
    best, best_l2 = x.clone(), torch.full((n,), float("inf"), device=x.device)
    target = torch.atanh((x * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
    for _ in range(searches):
        w = target.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=lr)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        for _ in range(steps):
            adv = (torch.tanh(w) + 1) / 2
            out = logits(adv)
            own = out.gather(1, y[:, None])[:, 0]
            other = out.masked_fill(F.one_hot(y, out.shape[1]).bool(), float("-inf")).amax(dim=1)
            l2 = (adv - x).flatten(1).pow(2).sum(dim=1)
            cost = penalty(adv) if penalty is not None else torch.zeros_like(l2)
            loss = (l2 + const * ((own - other).clamp(min=-kappa) + cost)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                ok = (out.argmax(1) != y) & (cost <= 0)
                better = ok & (l2 < best_l2)
                best_l2 = torch.where(better, l2, best_l2)
                best[better] = adv.detach()[better]
                found |= ok
        # success: try a smaller c; failure: a larger one
        hi = torch.where(found, torch.minimum(hi, const), hi)
        lo = torch.where(found, lo, torch.maximum(lo, const))
        const = torch.where(hi < 1e9, (lo + hi) / 2, const * 10)
    return best.detach()


def rectangular_occlusion(
    logits,
    x,
    y,
    eps=None,
    generator=None,
    size: float = 0.22,
    stride: int = 2,
    candidates: int = 10,
    steps: int = 7,
    alpha: float = 0.1,
) -> torch.Tensor:
    """Rectangular occlusion attack (Wu et al. 2020): a square of side ``size`` × the image side,
    placed where it hurts most — among the ``candidates`` positions (on a ``stride`` grid) with the
    largest input gradient, the one whose grey square raises the loss most — then filled by PGD with
    any colours (``steps`` of ``alpha``)."""
    h, w = x.shape[-2:]
    side = max(1, round(size * min(h, w)))
    energy = F.avg_pool2d(_grad(logits, x, y).pow(2).sum(dim=1, keepdim=True), side, stride)
    cols = energy.shape[-1]
    top = energy.flatten(1).topk(min(candidates, energy[0].numel()), dim=1).indices  # [B, C]
    rows_, cols_ = torch.arange(h, device=x.device), torch.arange(w, device=x.device)

    def masks(pos: torch.Tensor) -> torch.Tensor:
        r0, c0 = (pos // cols * stride)[:, None], (pos % cols * stride)[:, None]
        inside_r = (rows_[None] >= r0) & (rows_[None] < r0 + side)
        inside_c = (cols_[None] >= c0) & (cols_[None] < c0 + side)
        return (inside_r[:, :, None] & inside_c[:, None, :])[:, None].to(x)

    best_loss = torch.full((len(x),), float("-inf"), device=x.device)
    best = torch.zeros_like(x[:, :1])
    with torch.no_grad():
        for k in range(top.shape[1]):
            m = masks(top[:, k])
            loss = F.cross_entropy(logits(x * (1 - m) + 0.5 * m), y, reduction="none")
            better = loss > best_loss
            best_loss = torch.where(better, loss, best_loss)
            best = torch.where(better[:, None, None, None], m, best)
    adv = x * (1 - best) + 0.5 * best
    for _ in range(steps):
        adv = (adv + alpha * _grad(logits, adv, y).sign() * best).clamp(0, 1)
    return adv.detach()


ATTACKS: dict[str, Callable] = {
    "noise": gaussian_noise,
    "negative": negative,
    "fgsm": fgsm,
    "bim": bim,
    "pgd": pgd,
    "deepfool": deepfool,
    "cw_l2": cw_l2,
    "roa": rectangular_occlusion,
}
