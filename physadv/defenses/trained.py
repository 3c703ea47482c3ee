"""A trained defense in the defense catalogue: ``trained:PATH`` puts a classifier that ``physadv train
classifier --defense …`` made (adversarial training, logit pairing, MSD, denoising blocks, a
thermometer code, MagNet's reformer, …) in place of the bare model.

The non-adaptive attack is then the artefact made against the bare model (a transfer attack) and the
adaptive one is made against the trained model itself, white-box: through its layers where they
have gradients, and by BPDA through a thermometer code, which has none (Athalye et al. 2018).
"""

from __future__ import annotations

import json
from pathlib import Path

from physadv.defenses.defended import ModelWrapper
from physadv.errors import PhysadvError
from physadv.models.robust_nets import ThermometerEncoding


def trained_defense_name(path: str | Path) -> str:
    """The defense a classifier file was trained with (its metadata), or ``"?"``."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("physadv.json", "{}"))
    except Exception:  # not a safetensors file: load_model gives the one-line reason
        return "?"
    return str(meta.get("defense") or "?")


class TrainedModel(ModelWrapper):
    """The classifier at ``path`` with the bare model's contract checked: same classes, same order.
    Thermometer codes in it pass gradients by BPDA (the forward pass is unchanged)."""

    kind = "classifier"

    def __init__(self, model, path: str | Path, seed: int = 0):
        from physadv.models import load_model

        if model.kind != "classifier":
            raise PhysadvError("trained:PATH is a classifier defense")
        path = Path(path)
        if not path.is_file():
            raise PhysadvError(f"trained model '{path}' not found (make one with 'physadv train classifier')")
        trained = load_model(path, task="classify", device=model.device)
        if trained.kind != "classifier":
            raise PhysadvError(f"trained model '{path}' is not a classifier")
        if trained.names.as_dict() != model.names.as_dict():
            raise PhysadvError(f"trained model '{path}' has other classes than --model (or in another order)")
        super().__init__(trained, seed)
        self.path, self.defense = path, trained_defense_name(path)
        for m in trained.module.modules():
            if isinstance(m, ThermometerEncoding):
                m.bpda = True

    @property
    def name(self) -> str:
        return f"trained:{self.path.stem}"
