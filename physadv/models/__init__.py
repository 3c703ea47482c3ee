"""Model adapters: the contract every attack, defense and replay uses.

- detectors: differentiable pre-NMS ``candidates(x)`` and no-grad ``predict(x)``;
- classifiers: differentiable ``logits(x)`` and no-grad ``predict(x)``.
"""

from physadv.models.classes import ClassNames
from physadv.models.classifier import Classifier
from physadv.models.detector import Candidates, Detections, YoloDetector
from physadv.models.loading import load_model, save_classifier

__all__ = [
    "Candidates",
    "ClassNames",
    "Classifier",
    "Detections",
    "YoloDetector",
    "load_model",
    "save_classifier",
]
