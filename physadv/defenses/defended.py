"""A model adapter with defenses in front: the same contract as the bare adapter, so every attack
and every evaluation works on the defended pipeline unchanged. Attacking a :class:`Defended`
model *is* the adaptive attack (gradients through the defenses, BPDA where they have none, a new
random draw every call); attacking the bare model and judging the defended one is the
non-adaptive attack."""

from __future__ import annotations

import torch

from physadv.defenses.transforms import Defense
from physadv.models.detector import Candidates, Detections


class ModelWrapper:
    """A defense around a model adapter: the adapter's contract, and everything the defense does not
    change (``kind``, ``names``, ``device``, ``imgsz``, ``input_size``, ``num_classes``, ``amp``, …)
    read from the bare model. ``generator`` draws the defense's randomness."""

    def __init__(self, model, seed: int = 0):
        self.model = model
        self.generator = torch.Generator().manual_seed(seed)

    def __getattr__(self, name):
        return getattr(self.__dict__["model"], name)


class Defended(ModelWrapper):
    """``defenses`` (applied in order) in front of a detector or classifier adapter."""

    def __init__(self, model, defenses: list[Defense], seed: int = 0):
        super().__init__(model, seed)
        self.defenses = list(defenses)

    @property
    def name(self) -> str:
        return "+".join(d.name for d in self.defenses) or "none"

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device)
        for d in self.defenses:
            x = d(x, self.generator)
        return x

    def _boxes_back(self, boxes: torch.Tensor) -> torch.Tensor:
        for d in reversed(self.defenses):
            boxes = d.boxes_back(boxes)
        return boxes

    # detectors -------------------------------------------------------------------------------

    def candidates(self, images: torch.Tensor) -> Candidates:
        c = self.model.candidates(self.preprocess(images))
        return Candidates(self._boxes_back(c.boxes), c.scores)

    # classifiers ------------------------------------------------------------------------------

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.logits(self.preprocess(images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, *args, **kwargs):
        """The bare model's ``predict`` on the defended input (detections mapped back to the input)."""
        out = self.model.predict(self.preprocess(images), *args, **kwargs)
        if self.kind != "detector":
            return out
        return [Detections(self._boxes_back(d.boxes), d.scores, d.labels) for d in out]
