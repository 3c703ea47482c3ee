"""The victim never changes: eval mode (BatchNorm uses running statistics) and no parameter gradients."""

from __future__ import annotations

import torch
from torch import nn


def freeze(module: nn.Module, device: torch.device) -> nn.Module:
    """Move ``module`` to ``device`` in float32, eval mode, parameters not requiring grad.

    Works for TorchScript modules too (they refuse ``requires_grad_``) and for ``torch.export``
    graphs (they refuse ``eval()``: their mode was fixed when they were exported).
    """
    module = module.to(device).float()
    try:
        module.eval()
    except NotImplementedError:
        pass
    for param in module.parameters():
        param.requires_grad_(False)
    return module
