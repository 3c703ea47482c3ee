"""Printable palettes in the field's format: one ``r,g,b`` line per colour, floats in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import torch

from physadv.errors import PhysadvError

DEFAULT_PALETTE = Path(__file__).resolve().parent.parent / "assets" / "palettes" / "default.txt"


class Palette:
    """A set of printable colours.

    Shape:
        - colours: ``[K, 3]`` RGB in [0, 1]
    """

    def __init__(self, colours: torch.Tensor):
        colours = torch.as_tensor(colours, dtype=torch.float32)
        if colours.ndim != 2 or colours.shape[1] != 3 or len(colours) == 0:
            raise ValueError(f"a palette is [K, 3] RGB, got {tuple(colours.shape)}")
        self.colours = colours.clamp(0, 1)

    def __len__(self) -> int:
        return len(self.colours)

    @classmethod
    def load(cls, path: str | Path) -> Palette:
        """Read ``r,g,b`` lines (commas or spaces; ``#`` comments and blank lines ignored)."""
        path = Path(path)
        if not path.is_file():
            raise PhysadvError(f"palette file '{path}' not found")
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.replace(",", " ").split()
            try:
                values = [float(p) for p in parts]
            except ValueError:
                values = []
            if len(values) != 3 or not all(0.0 <= v <= 1.0 for v in values):
                raise PhysadvError(
                    f"palette '{path}' line {number}: expected 'r,g,b' floats in [0,1], got '{line}'"
                )
            rows.append(values)
        if not rows:
            raise PhysadvError(f"palette '{path}' has no colours")
        return cls(torch.tensor(rows))

    @classmethod
    def default(cls) -> Palette:
        """physadv's shipped palette: a conservative estimate of an office inkjet on plain paper."""
        return cls.load(DEFAULT_PALETTE)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{r:.6f},{g:.6f},{b:.6f}\n" for r, g, b in self.colours.tolist()))
        return path

    def nearest(self, image: torch.Tensor) -> torch.Tensor:
        """Index of the nearest palette colour per pixel. ``[..., 3, H, W]`` → ``[..., H, W]``."""
        pal = self.colours.to(image.device)
        d2 = ((image.unsqueeze(-4) - pal.view(-1, 3, 1, 1)) ** 2).sum(-3)
        return d2.argmin(dim=-3)

    def quantize(self, image: torch.Tensor) -> torch.Tensor:
        """Replace every pixel by its nearest palette colour (not differentiable)."""
        idx = self.nearest(image)
        return self.colours.to(image.device)[idx].movedim(-1, -3)
