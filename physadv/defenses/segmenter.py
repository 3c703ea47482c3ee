"""The patch segmenter of segment-and-complete (Liu et al., "Segment and Complete: Defending Object
Detectors against Adversarial Patch Attacks with Robust Patch Detection", CVPR 2022): a small U-Net
that gives every pixel a probability of belonging to an adversarial patch.

SAC uses a full U-Net (64 base filters) on COCO; physadv's is a 1/4-width one that starts at half
resolution (a stride-2 stem) and ends with a 2× bilinear upsampling, so it trains in minutes on a
laptop CPU (``physadv train patch-segmenter``). It works at a fixed scale: inputs are resized so their
long side is the ``imgsz`` it was trained at, and the probabilities are resized back.

Files are physadv state files (safetensors + JSON, no pickle): the weights, and the settings the
network needs (``width``, ``imgsz``) with a record of how it was trained.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from physadv.errors import PhysadvError
from physadv.statefile import load_state, save_state

FORMAT = "physadv-patch-segmenter/1"
DEPTH = 4  # down-samplings after the stem: inputs are padded to multiples of 2 · 2**DEPTH


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PatchSegmenter(nn.Module):
    """U-Net: ``[B, 3, H, W]`` RGB in [0, 1] → ``[B, 1, H, W]`` patch logits (H, W multiples of 32).

    Args:
        width: channels of the first level; each deeper level doubles them (capped at 4·width).
        imgsz: the long side, in pixels, of the images it was trained on (see :meth:`probabilities`).
    """

    def __init__(self, width: int = 16, imgsz: int = 320):
        super().__init__()
        self.width, self.imgsz = width, imgsz
        chans = [min(width * 2**k, 4 * width) for k in range(DEPTH + 1)]
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)
        )
        self.down = nn.ModuleList([_block(width, chans[0])])
        self.down.extend(_block(chans[k - 1], chans[k]) for k in range(1, DEPTH + 1))
        self.up = nn.ModuleList(_block(chans[k + 1] + chans[k], chans[k]) for k in range(DEPTH))
        self.head = nn.Conv2d(chans[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, y = [], self.stem(x)
        for k, block in enumerate(self.down):
            y = block(F.max_pool2d(y, 2) if k else y)
            skips.append(y)
        for k in reversed(range(DEPTH)):
            y = F.interpolate(y, size=skips[k].shape[-2:], mode="bilinear", align_corners=False)
            y = self.up[k](torch.cat([y, skips[k]], dim=1))
        return F.interpolate(self.head(y), scale_factor=2, mode="bilinear", align_corners=False)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 1, H, W]`` patch probabilities for images of any size (differentiable): resized so
        the long side is :attr:`imgsz`, padded to a multiple of 32, and mapped back."""
        h, w = images.shape[-2:]
        scale = self.imgsz / max(h, w)
        x = images
        if abs(scale - 1) > 1e-6:
            x = F.interpolate(images, size=(round(h * scale), round(w * scale)), mode="bilinear")
        sh, sw = x.shape[-2:]
        multiple = 2 ** (DEPTH + 1)
        x = F.pad(x, (0, (-sw) % multiple, 0, (-sh) % multiple), mode="replicate")
        p = torch.sigmoid(self(x)[..., :sh, :sw].float())
        return p if (sh, sw) == (h, w) else F.interpolate(p, size=(h, w), mode="bilinear")


def save_segmenter(path: str | Path, net: PatchSegmenter, record: dict) -> Path:
    """Write ``net`` and ``record`` (how it was trained) as a physadv state file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    meta = {"format": FORMAT, "width": net.width, "imgsz": net.imgsz}
    return save_state(path, {"segmenter": meta, "record": record, "weights": state})


def load_segmenter(path: str | Path, device: torch.device | str = "cpu") -> tuple[PatchSegmenter, dict]:
    """The segmenter in ``path`` (eval mode, frozen) and its training record.

    Raises:
        PhysadvError: missing, unreadable, or not a patch segmenter file.
    """
    path = Path(path)
    if not path.is_file():
        raise PhysadvError(
            f"patch segmenter '{path}' not found (train one: physadv train patch-segmenter --help)"
        )
    state = load_state(path, "patch segmenter")
    meta = state.get("segmenter") if isinstance(state, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PhysadvError(f"'{path}' is not a physadv patch segmenter")
    net = PatchSegmenter(int(meta["width"]), int(meta["imgsz"]))
    net.load_state_dict(state["weights"])
    net.to(device).eval().requires_grad_(False)
    return net, state.get("record", {})
