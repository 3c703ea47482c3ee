"""How printed-then-photographed colours differ from intended ones, and how far apart colours are."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from physadv.errors import PhysadvError


def clamp_straight_through(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] with the identity's gradient. ``torch.clamp`` has zero gradient at the bounds,
    so a colour an optimiser pushed to exactly 0 or 1 would never move again."""
    return x + (x.clamp(0, 1) - x).detach()


class ColourTransfer:
    """Affine colour model ``measured = M · intended + b`` fitted from a photographed chart.

    Applied inside EOT so the artefact is optimised as it will look once printed and seen by a camera.

    Shape:
        - matrix: ``[3, 3]``, bias: ``[3]``; images ``[..., 3, H, W]`` in [0, 1]
    """

    def __init__(self, matrix: torch.Tensor, bias: torch.Tensor):
        self.matrix = torch.as_tensor(matrix, dtype=torch.float32).reshape(3, 3)
        self.bias = torch.as_tensor(bias, dtype=torch.float32).reshape(3)

    @classmethod
    def identity(cls) -> ColourTransfer:
        return cls(torch.eye(3), torch.zeros(3))

    @classmethod
    def typical_print(cls) -> ColourTransfer:
        """physadv's estimate of an uncalibrated office print photographed in daylight, the same one its
        default palette assumes: paper white 0.92, black 0.10, saturation 20 % lower. Not a measurement:
        ``physadv calibrate`` measures your printer's."""
        desaturate = 0.8 * torch.eye(3) + 0.2 / 3 * torch.ones(3, 3)
        return cls(0.82 * desaturate, torch.full((3,), 0.10))

    @classmethod
    def fit(cls, intended: torch.Tensor, measured: torch.Tensor) -> ColourTransfer:
        """Least-squares fit from ``[N, 3]`` intended to ``[N, 3]`` measured colours (N ≥ 4)."""
        ones = torch.ones(len(intended), 1)
        design = torch.cat([intended.float(), ones], dim=1)  # [N, 4]
        solution = torch.linalg.lstsq(design, measured.float()).solution  # [4, 3]
        return cls(solution[:3].T, solution[3])

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        m = self.matrix.to(image.device, image.dtype)
        b = self.bias.to(image.device, image.dtype).view(3, 1, 1)
        return clamp_straight_through(torch.einsum("ij,...jhw->...ihw", m, image) + b)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(
            json.dumps(
                {"model": "affine", "matrix": self.matrix.tolist(), "bias": self.bias.tolist()}, indent=2
            )
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> ColourTransfer:
        try:
            data = json.loads(Path(path).read_text())
            return cls(torch.tensor(data["matrix"]), torch.tensor(data["bias"]))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise PhysadvError(f"cannot read colour transfer '{path}': {exc}") from None


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``[..., 3]`` in [0, 1] → CIELAB (D65) ``[..., 3]``."""
    from kornia.color import rgb_to_lab as kornia_rgb_to_lab

    return kornia_rgb_to_lab(rgb.reshape(-1, 3).T[None, :, :, None])[0, :, :, 0].T.reshape(rgb.shape)


def delta_e2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 colour difference between CIELAB colours ``[..., 3]`` (Sharma et al. 2005)."""
    l1, a1, b1 = lab1.unbind(-1)
    l2, a2, b2 = lab2.unbind(-1)
    c_bar = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2
    g = 0.5 * (1 - torch.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.atan2(b1, a1p) % (2 * math.pi)
    h2p = torch.atan2(b2, a2p) % (2 * math.pi)
    dl, dc = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = torch.where(dh > math.pi, dh - 2 * math.pi, torch.where(dh < -math.pi, dh + 2 * math.pi, dh))
    dh = torch.where(c1p * c2p == 0, torch.zeros_like(dh), dh)
    d_h = 2 * torch.sqrt(c1p * c2p) * torch.sin(dh / 2)
    l_bar, c_bar_p = (l1 + l2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = torch.where((h1p - h2p).abs() > math.pi, (h_sum + 2 * math.pi) / 2, h_sum / 2)
    h_bar = torch.where(c1p * c2p == 0, h_sum, h_bar)
    t = (
        1
        - 0.17 * torch.cos(h_bar - math.radians(30))
        + 0.24 * torch.cos(2 * h_bar)
        + 0.32 * torch.cos(3 * h_bar + math.radians(6))
        - 0.20 * torch.cos(4 * h_bar - math.radians(63))
    )
    d_theta = math.radians(30) * torch.exp(-(((torch.rad2deg(h_bar) - 275) / 25) ** 2))
    r_c = 2 * torch.sqrt(c_bar_p**7 / (c_bar_p**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / torch.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * c_bar_p
    s_h = 1 + 0.015 * c_bar_p * t
    r_t = -torch.sin(2 * d_theta) * r_c
    return torch.sqrt((dl / s_l) ** 2 + (dc / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (dc / s_c) * (d_h / s_h))
