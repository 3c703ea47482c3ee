"""What the patch-detecting defenses share (Jedi, segment-and-complete, Ad-YOLO): an *alarm* per
image, and a log of the alarms raised by ``predict`` so a job can count them without running the
defense twice.

A detecting defense is a :class:`~physadv.defenses.defended.ModelWrapper` with:

- ``flag(images) → [B] bool``: the defense's alarm on each image (no gradient);
- ``alarms``: an :class:`AlarmLog` that ``predict`` appends each image's alarm to, in order;
- ``evasion_penalty(images) → scalar``: differentiable, what an adaptive attacker adds to its loss
  to keep the alarm silent (in units where 1 is "at the alarm's threshold").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from physadv.defenses.defended import ModelWrapper
from physadv.defenses.transforms import straight_through


class AlarmLog:
    """The alarms raised on judged images since the last :meth:`take`, in the order judged."""

    def __init__(self):
        self._flags: list[bool] = []

    def record(self, flags: torch.Tensor) -> None:
        self._flags += [bool(f) for f in flags.tolist()]

    def take(self) -> list[bool]:
        """The alarms so far (and start a new count)."""
        flags, self._flags = self._flags, []
        return flags


class MaskingDetector(ModelWrapper):
    """A defense that finds patch pixels, raises an alarm where it found any, and replaces them before
    the model sees the image (Jedi: inpainting; SAC: a blank square).

    Subclasses give :meth:`locate` (``[B, 1, H, W]`` bool, no gradient) and :meth:`clean` (the
    image with the located pixels replaced). The attacker's gradient passes the replacement straight
    through (BPDA, Athalye et al. 2018) unless a subclass has a better approximation.
    """

    def __init__(self, model, seed: int = 0):
        super().__init__(model, seed)
        self.alarms = AlarmLog()

    def locate(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def clean(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def flag(self, images: torch.Tensor) -> torch.Tensor:
        """``[B]`` bool: a patch was located in the image."""
        return self.locate(images.to(self.device)).flatten(1).any(dim=1).cpu()

    def defended_input(self, images: torch.Tensor) -> torch.Tensor:
        """What the model sees (differentiable: the replacement is passed straight through)."""
        images = images.to(self.device)
        with torch.no_grad():
            cleaned = self.clean(images.detach(), self.locate(images.detach()))
        return straight_through(images, cleaned)

    def candidates(self, images: torch.Tensor):
        return self.model.candidates(self.defended_input(images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, *args, **kwargs):
        """The model's detections on the cleaned image; each image's alarm goes to :attr:`alarms`."""
        images = images.to(self.device)
        mask = self.locate(images)
        self.alarms.record(mask.flatten(1).any(dim=1))
        return self.model.predict(self.clean(images, mask), *args, **kwargs)


def dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """``[B, 1, H, W]`` bool mask grown by ``pixels`` in every direction (a square structuring
    element)."""
    if pixels <= 0:
        return mask
    k = 2 * pixels + 1
    return F.max_pool2d(mask.float(), k, stride=1, padding=pixels) > 0
