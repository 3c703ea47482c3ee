"""Built-in sign-classifier architectures from the RP2 paper (Eykholt et al. 2018).

Both take RGB images already resized to 32×32 and normalised by the adapter.
"""

from __future__ import annotations

import torch
from torch import nn


class LisaCNN(nn.Module):
    """LISA-CNN: conv 64 8×8/2 → conv 128 6×6/2 → conv 128 5×5/1 → dense (Eykholt et al. 2018).

    Shape:
        - Input: ``[B, 3, 32, 32]``
        - Output: ``[B, num_classes]`` logits
    """

    input_size = (32, 32)

    def __init__(self, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 8, stride=2, padding=3),
            nn.ReLU(inplace=True),  # 32 → 16
            nn.Conv2d(64, 128, 6, stride=2),
            nn.ReLU(inplace=True),  # 16 → 6
            nn.Conv2d(128, 128, 5, stride=1),
            nn.ReLU(inplace=True),  # 6 → 2
        )
        self.classifier = nn.Linear(128 * 2 * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class GtsrbCNN(nn.Module):
    """Multi-scale GTSRB CNN as used by RP2: a 1×1 colour transform, three conv stages (32, 64, 128),
    features of every stage pooled and concatenated, then dense 1024 → 1024 → classes.

    Shape:
        - Input: ``[B, 3, 32, 32]``
        - Output: ``[B, num_classes]`` logits
    """

    input_size = (32, 32)

    def __init__(self, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.colour = nn.Conv2d(3, 3, 1)

        def stage(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 5, padding=2),
                nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 5, padding=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
                nn.Dropout(dropout),
            )

        self.stages = nn.ModuleList([stage(3, 32), stage(32, 64), stage(64, 128)])
        # stage outputs are 16², 8², 4²; pool the first two down to 4² before concatenating
        self.pools = nn.ModuleList([nn.MaxPool2d(4), nn.MaxPool2d(2), nn.Identity()])
        self.classifier = nn.Sequential(
            nn.Linear((32 + 64 + 128) * 4 * 4, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1024, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.colour(x)
        scales = []
        for stage, pool in zip(self.stages, self.pools, strict=True):
            x = stage(x)
            scales.append(pool(x).flatten(1))
        return self.classifier(torch.cat(scales, dim=1))


ARCHITECTURES: dict[str, type[nn.Module]] = {"lisa_cnn": LisaCNN, "gtsrb_cnn": GtsrbCNN}


def build_architecture(name: str, num_classes: int) -> nn.Module:
    """Build a named architecture (``lisa_cnn`` or ``gtsrb_cnn``) with fresh weights."""
    from physadv.errors import ModelError

    key = name.lower().replace("-", "_")
    if key not in ARCHITECTURES:
        raise ModelError(f"unknown architecture '{name}': choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[key](num_classes)
