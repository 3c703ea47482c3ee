"""Where the stickers go, learned: RP2's first stage.

RP2 finds sticker locations by optimising an L1-penalised perturbation over the whole face and
keeping where it is largest. Thresholding that perturbation scatters the budget over small cells
(physadv's first ``auto`` mask: 0 % targeted success at 15 % of the face). Here the places are
optimised directly: a logit per cell of a grid over the face, a soft mask ``sigmoid(logit / T)``
whose temperature falls during the stage so it ends near binary, and a penalty on area above the
budget. The stage ends by keeping the highest-scoring cells that fit in the budget.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

AREA_PENALTY = 50.0  # per unit of face area over the budget: the soft mask stays near the budget
FINAL_TEMPERATURE = 0.1  # the soft mask's temperature at the end of the stage (it starts at 1)
MIN_COVER = 0.5  # a cell may hold a sticker when more than this share of it is sign


class CellPlacement:
    """Sticker places on a ``cells`` × ``cells`` grid over the face, at most ``area`` of it.

    Only cells mostly on the sign (over half of the cell) may hold a sticker; a kept cell is cut to
    the sign's shape.

    Args:
        face_alpha: ``[1, R, R]`` the sign's shape at the sticker's resolution, in {0, 1}.
    """

    def __init__(self, face_alpha: torch.Tensor, cells: int, area: float):
        self.alpha, self.cells, self.area = face_alpha, cells, area
        self.face_px = float(face_alpha.sum())
        cover = F.adaptive_avg_pool2d(face_alpha[None], cells)[0]  # [1, g, g] share of each cell on the sign
        self.eligible = (cover > MIN_COVER).float()
        self.cell_area = (cover * face_alpha[0].numel() / cells**2 / self.face_px).flatten()  # of the face
        start = math.log(area / (1 - area))  # every cell starts at the budget's share
        self.logits = torch.full((1, cells, cells), start, device=face_alpha.device, requires_grad=True)

    def _spread(self, cell_mask: torch.Tensor) -> torch.Tensor:
        size = tuple(self.alpha.shape[-2:])
        return F.interpolate(cell_mask[None], size=size, mode="nearest")[0] * self.alpha

    def temperature(self, progress: float) -> float:
        """The soft mask's temperature at ``progress`` (0 → 1) through the stage."""
        return FINAL_TEMPERATURE**progress

    def soft(self, temperature: float) -> torch.Tensor:
        """The soft mask ``[1, R, R]`` in [0, 1], differentiable in the logits."""
        return self._spread(torch.sigmoid(self.logits / temperature) * self.eligible)

    def penalty(self, mask: torch.Tensor) -> torch.Tensor:
        """The charge for covering more of the face than the budget."""
        return AREA_PENALTY * F.relu(mask.sum() / self.face_px - self.area)

    def hard(self) -> torch.Tensor:
        """The binary mask ``[1, R, R]``: cells in order of their logits, each kept if it still fits."""
        logits = self.logits.detach().flatten()
        eligible = self.eligible.flatten() > 0
        keep = torch.zeros_like(logits)
        used = 0.0
        for i in logits.argsort(descending=True).tolist():
            share = float(self.cell_area[i])
            if eligible[i] and used + share <= self.area:
                keep[i], used = 1.0, used + share
        return self._spread(keep.view(1, self.cells, self.cells))
