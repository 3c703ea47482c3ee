"""Attacks in several norms at once: Maini et al. (2020)'s multi steepest descent (MSD), which trains
a classifier against the union of L∞, L2 and L1 perturbations.

Each step takes the steepest-ascent step of every norm from the current point — the signed gradient
(L∞), the normalised gradient (L2), the k coordinates with the largest gradient (L1, k drawn from
5–20 each step as in the authors' code, coordinates stuck at 0 or 1 skipped) — projects each into
its own ball, and keeps, per image, the one with the highest loss. Inputs are ``[B, 3, H, W]`` in
[0, 1]; budgets are in [0, 1] pixel units (the authors' CIFAR-10 values, for the same 3×32×32
inputs: L∞ 0.03, L2 0.5, L1 12).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _norms(delta: torch.Tensor, p: float) -> torch.Tensor:
    return delta.flatten(1).norm(p=p, dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)


def project_l1(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Euclidean projection of every image's ``delta`` onto the L1 ball of radius ``eps`` (Duchi et
    al. 2008: soft-threshold at the level found by sorting the magnitudes)."""
    flat = delta.flatten(1)
    inside = flat.abs().sum(dim=1) <= eps
    mags = flat.abs().sort(dim=1, descending=True).values
    cums = mags.cumsum(dim=1)
    ranks = torch.arange(1, flat.shape[1] + 1, device=delta.device, dtype=delta.dtype)
    above = mags - (cums - eps) / ranks > 0
    count = above.sum(dim=1).clamp(min=1)
    theta = ((cums.gather(1, (count - 1)[:, None])[:, 0] - eps) / count).clamp(min=0)
    shrunk = flat.sign() * (flat.abs() - theta[:, None]).clamp(min=0)
    return torch.where(inside[:, None], flat, shrunk).view_as(delta)


def _l1_direction(grad: torch.Tensor, adv: torch.Tensor, k: int) -> torch.Tensor:
    """Signs of the ``k`` largest gradient coordinates that can still move (not pinned at 0 or 1)."""
    stuck = ((grad < 0) & (adv <= 0)) | ((grad > 0) & (adv >= 1))
    flat = grad.masked_fill(stuck, 0).flatten(1)
    kth = flat.abs().topk(k, dim=1).values[:, -1:]
    return ((flat.abs() >= kth) & (flat != 0)).to(grad).mul(flat.sign()).view_as(grad)


def msd(
    logits,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float = 0.03,
    generator: torch.Generator | None = None,
    steps: int = 10,
    eps_l2: float = 0.5,
    eps_l1: float = 12.0,
) -> torch.Tensor:
    """Multi steepest descent (Maini et al. 2020) from the clean image: L∞ step ``eps/4``, L2 step
    ``eps_l2/4``, L1 step 1 in total (spread over k coordinates); returns the highest-loss point
    seen per image."""
    delta = torch.zeros_like(x)
    best, best_loss = x.clone(), torch.full((len(x),), float("-inf"), device=x.device)
    for _ in range(steps):
        probe = (x + delta).requires_grad_(True)
        grad = torch.autograd.grad(F.cross_entropy(logits(probe), y), probe)[0]
        k = int(torch.randint(5, 21, (1,), generator=generator))
        candidates = (
            (delta + eps / 4 * grad.sign()).clamp(-eps, eps),
            delta + eps_l2 / 4 * grad / _norms(grad, 2),
            project_l1(delta + _l1_direction(grad, x + delta, k) / k, eps_l1),
        )
        loss = torch.full_like(best_loss, float("-inf"))
        with torch.no_grad():
            for n, step in enumerate(candidates):
                if n == 1:
                    step = step * (eps_l2 / _norms(step, 2)).clamp(max=1)
                step = (x + step).clamp(0, 1) - x
                trial = F.cross_entropy(logits(x + step), y, reduction="none")
                better = trial > loss
                delta = torch.where(better[:, None, None, None], step, delta) if n else step
                loss = torch.where(better, trial, loss)
            improved = loss > best_loss
            best = torch.where(improved[:, None, None, None], x + delta, best)
            best_loss = torch.where(improved, loss, best_loss)
    return best.detach()
