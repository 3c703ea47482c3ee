"""Built-in sign-classifier architectures from the RP2 paper (Eykholt et al. 2018).

Both take RGB images already resized to 32×32 and normalised by the adapter. Names that
:func:`build_architecture` understands: ``lisa_cnn``, ``gtsrb_cnn``, ``lisa_cnn_wK`` (LISA-CNN at
width scale K: 8K, 16K, 16K channels; K = 8 is LISA-CNN, used by Madry et al.'s capacity study),
and a base name with a trained defense built in: ``lisa_cnn+denoise`` (Xie et al.'s feature-denoising
blocks), ``lisa_cnn+thermometer`` (Buckman et al.'s 16-level thermometer code) and
``<base>+reconstruct`` (MagNet's reformer in front of the base); see :mod:`physadv.models.robust_nets`.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from physadv.models.robust_nets import NonLocalDenoise, ReconstructingClassifier, ThermometerClassifier

THERMOMETER_LEVELS = 16  # Buckman et al.'s choice for CIFAR-10


class LisaCNN(nn.Module):
    """LISA-CNN: conv 64 8×8/2 → conv 128 6×6/2 → conv 128 5×5/1 → dense (Eykholt et al. 2018).

    Shape:
        - Input: ``[B, 3, 32, 32]``
        - Output: ``[B, num_classes]`` logits
    """

    input_size = (32, 32)

    def __init__(self, num_classes: int, width: int = 8, in_channels: int = 3):
        super().__init__()
        wide, wider = 8 * width, 16 * width  # width 8: RP2's 64, 128, 128
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, wide, 8, stride=2, padding=3),
            nn.ReLU(inplace=True),  # 32 → 16
            nn.Conv2d(wide, wider, 6, stride=2),
            nn.ReLU(inplace=True),  # 16 → 6
            nn.Conv2d(wider, wider, 5, stride=1),
            nn.ReLU(inplace=True),  # 6 → 2
        )
        self.classifier = nn.Linear(wider * 2 * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class DenoisingLisaCNN(LisaCNN):
    """LISA-CNN with a feature-denoising block (Xie et al. 2019) after the first and the second
    convolution; the other weights keep LISA-CNN's names, so a LISA-CNN can be fine-tuned into it.

    Shape:
        - Input: ``[B, 3, 32, 32]``
        - Output: ``[B, num_classes]`` logits
    """

    def __init__(self, num_classes: int, width: int = 8):
        super().__init__(num_classes, width)
        self.denoise = nn.ModuleList([NonLocalDenoise(8 * width), NonLocalDenoise(16 * width)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.denoise[0](self.features[:2](x))
        x = self.denoise[1](self.features[2:4](x))
        return self.classifier(self.features[4:](x).flatten(1))


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


def _width(key: str) -> int | None:
    """The width scale of ``lisa_cnn`` (8) or ``lisa_cnn_wK`` (K); None for other names."""
    if key == "lisa_cnn":
        return 8
    found = re.fullmatch(r"lisa_cnn_w([1-9][0-9]*)", key)
    return int(found.group(1)) if found else None


def build_architecture(name: str, num_classes: int) -> nn.Module:
    """Build a named architecture with fresh weights (names: see the module docstring)."""
    from physadv.errors import ModelError

    key = name.lower().replace("-", "_")
    base, _, defense = key.partition("+")
    width = _width(base)
    known = ", ".join([*ARCHITECTURES, "lisa_cnn_wK", "<base>+denoise|thermometer|reconstruct"])
    if base not in ARCHITECTURES and width is None:
        raise ModelError(f"unknown architecture '{name}': choose one of {known}")
    if defense in ("denoise", "thermometer") and width is None:
        raise ModelError(f"'{defense}' is built into LISA-CNN only, not '{base}'")
    if defense == "denoise":
        return DenoisingLisaCNN(num_classes, width)
    if defense == "thermometer":
        net = LisaCNN(num_classes, width, in_channels=3 * THERMOMETER_LEVELS)
        return ThermometerClassifier(net, THERMOMETER_LEVELS)
    if defense not in ("", "reconstruct"):
        raise ModelError(f"unknown architecture '{name}': choose one of {known}")
    net = ARCHITECTURES[base](num_classes) if base in ARCHITECTURES else LisaCNN(num_classes, width)
    return ReconstructingClassifier(net) if defense == "reconstruct" else net
