"""Ad-YOLO (Ji et al., "Adversarial YOLO: Defense Human Detection Patch Attacks via Detecting
Adversarial Patches", 2021): the detector itself is trained with one more class, ``patch``, on
people wearing adversarial patches (``physadv train detector --patch-class``). A detected patch is an
alarm; the people are still boxed, because the detector also learnt them with patches on.

The defense *replaces* the model it is given by its patch-class twin, which must see the same classes
plus ``patch``. Detections of the patch class are taken out of ``predict``'s answer (an alarm is not
an object) and logged as alarms.

Adaptive attack: the patch is optimised against the Ad-YOLO model itself (its person scores), with
:meth:`AdYolo.evasion_penalty` — the strongest ``patch`` score in each image — in the loss, so the
patch learns to hide the person without being boxed as a patch.
"""

from __future__ import annotations

from pathlib import Path

import torch

from physadv.defenses.alarms import AlarmLog
from physadv.defenses.defended import ModelWrapper
from physadv.errors import PhysadvError
from physadv.models.detector import Detections

PATCH_CLASS = "patch"


class AdYolo(ModelWrapper):
    """A patch-class detector standing in for ``model``.

    Args:
        model: the detector adapter it replaces (its device, input size and classes are kept).
        detector: the patch-class detector's weights (``physadv train detector --patch-class``).
        conf: the patch score at which the alarm rings (Ultralytics' default confidence).
        name: the defense's name in tables.
    """

    kind = "detector"

    def __init__(self, model, detector: str | Path, conf: float = 0.25, seed: int = 0, name: str = "adyolo"):
        from physadv.models.loading import load_model

        twin = load_model(detector, task="detect", device=model.device, amp=model.amp, imgsz=model.imgsz)
        found = twin.names.first_of(PATCH_CLASS)
        if found is None:
            raise PhysadvError(
                f"'{detector}' has no '{PATCH_CLASS}' class: train it with "
                "'physadv train detector --patch-class'"
            )
        missing = [n for _, n in model.names if twin.names.first_of(n) is None]
        if missing:
            raise PhysadvError(f"the patch-class detector '{detector}' lacks the model's classes {missing}")
        super().__init__(twin, seed)
        self.patch_id, self.conf, self.path, self._name = found, conf, Path(detector), name
        self.alarms = AlarmLog()

    @property
    def name(self) -> str:
        return self._name

    def _split(self, dets: Detections) -> tuple[Detections, bool]:
        is_patch = dets.labels == self.patch_id
        alarm = bool((dets.scores[is_patch] >= self.conf).any())
        keep = ~is_patch
        return Detections(dets.boxes[keep], dets.scores[keep], dets.labels[keep]), alarm

    @torch.no_grad()
    def predict(self, images: torch.Tensor, *args, **kwargs) -> list[Detections]:
        """The twin's detections without the patch class; each image's alarm goes to :attr:`alarms`."""
        if kwargs.get("classes") is not None:  # a class filter must not silence the alarm
            kwargs["classes"] = [*kwargs["classes"], self.patch_id]
        out, alarms = [], []
        for dets in self.model.predict(images, *args, **kwargs):
            kept, alarm = self._split(dets)
            out.append(kept)
            alarms.append(alarm)
        self.alarms.record(torch.tensor(alarms, dtype=torch.bool))
        return out

    @torch.no_grad()
    def flag(self, images: torch.Tensor) -> torch.Tensor:
        """``[B]`` bool: a patch detected at ``conf`` or above."""
        dets = self.model.predict(images, conf=self.conf, classes=[self.patch_id])
        return torch.tensor([len(d.scores) > 0 for d in dets], dtype=torch.bool)

    def evasion_penalty(self, images: torch.Tensor) -> torch.Tensor:
        """Differentiable: each image's strongest patch-class score, averaged, in units of ``conf``."""
        scores = self.model.candidates(images).scores[..., self.patch_id]
        return scores.amax(dim=1).mean() / self.conf
