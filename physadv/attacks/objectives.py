"""What an attack wants from the model, as a loss to minimise and a per-image success test.

Classifier objectives take logits ``[B, nc]``. Detector objectives take the adapter's pre-NMS
:class:`~physadv.models.detector.Candidates` and the object's box per image ``[B, 4]`` (xyxy, input
pixels): only candidates overlapping the object count, so the attack hides (or relabels) that object
and not the rest of the scene.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from physadv.boxes import box_iou
from physadv.models.detector import Candidates


def targeted_cross_entropy(logits: torch.Tensor, target: int) -> torch.Tensor:
    """RP2's target loss: cross-entropy towards ``target``."""
    return F.cross_entropy(logits, torch.full((len(logits),), target, device=logits.device))


def untargeted_margin(logits: torch.Tensor, true_class: int, kappa: float = 5.0) -> torch.Tensor:
    """Push the true class's logit below the best other class, by up to ``kappa`` (C&W margin)."""
    true = logits[:, true_class]
    other = logits.clone()
    other[:, true_class] = float("-inf")
    return (true - other.max(dim=1).values).clamp(min=-kappa).mean()


def overlapping(cands: Candidates, boxes: torch.Tensor, min_iou: float = 0.3) -> torch.Tensor:
    """``[B, A]`` 1 where a candidate's box overlaps the image's object box by ``min_iou`` or more."""
    return (box_iou(cands.boxes, boxes.to(cands.boxes)[:, None]) >= min_iou).float()


def hide_loss(cands: Candidates, boxes: torch.Tensor, hidden_class: int) -> torch.Tensor:
    """Thys et al.'s detection loss on the object: the highest ``hidden_class`` score among
    candidates over the object, averaged over the batch."""
    near = overlapping(cands, boxes)
    return (cands.scores[..., hidden_class] * near).max(dim=1).values.mean()


def relabel_loss(cands: Candidates, boxes: torch.Tensor, hidden_class: int, target: int) -> torch.Tensor:
    """Make the object read as ``target``: its own class down, the target class up."""
    near = overlapping(cands, boxes)
    own = (cands.scores[..., hidden_class] * near).max(dim=1).values
    wanted = (cands.scores[..., target] * near).max(dim=1).values
    return (own - wanted).mean()


def object_scores(
    cands: Candidates, boxes: torch.Tensor, classes: list[int], min_iou: float = 0.3
) -> torch.Tensor:
    """``[B, K, A]``: each candidate's best score among ``classes``, kept where its box overlaps
    object ``k``'s box by ``min_iou`` or more (0 elsewhere).

    Shape:
        - boxes: ``[B, K, 4]`` xyxy input pixels, several objects per image
    """
    near = box_iou(cands.boxes[:, None], boxes.to(cands.boxes)[:, :, None]) >= min_iou  # [B, K, A]
    score = cands.scores[..., classes].amax(dim=-1)  # [B, A]
    return score[:, None] * near


def reduce_object_scores(
    scores: torch.Tensor, how: str = "max", k: int = 5, threshold: float = 0.25
) -> torch.Tensor:
    """One detection score per object ``[B, K]`` from its candidates' ``[B, K, A]``.

    ``max``: Thys et al.'s loss (the strongest candidate); ``topk``: the mean of the ``k`` strongest,
    so the runner-up anchors are pushed down too; ``threshold``: the sum of the scores at or above
    ``threshold``, so only detections that would survive the confidence cut are attacked.
    """
    if how == "max":
        return scores.amax(dim=-1)
    if how == "topk":
        return scores.topk(min(k, scores.shape[-1]), dim=-1).values.mean(dim=-1)
    if how == "threshold":
        return (scores * (scores >= threshold)).sum(dim=-1)
    raise ValueError(f"unknown score reduction '{how}': use max, topk or threshold")
