"""Box geometry shared by attacks and judges. Boxes are ``x1, y1, x2, y2`` pixels (xyxy).

torchvision's ``box_iou`` is pairwise over two 2-D lists; attacks need the IoU of every candidate
with every object of every image in one broadcast (``[B, K, 1, 4]`` against ``[B, 1, A, 4]``), so
physadv keeps this broadcasting form. It equals ``torchvision.ops.box_iou`` on 2-D inputs (tested).
"""

from __future__ import annotations

import torch


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes ``a`` ``[..., 4]`` with ``b`` ``[..., 4]`` (xyxy, broadcast; differentiable).

    Shape:
        - a, b: any shapes ``[..., 4]`` that broadcast together
        - returns: the broadcast shape without the last axis
    """
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter + 1e-9)
