"""physadv's own state files (attack and training checkpoints, the demo's parts) without pickle.

``torch.load(weights_only=False)`` runs whatever code a pickle names, so a checkpoint from someone
else could run code on load. Here a state — nested dicts, lists and tuples of tensors, numbers,
strings, booleans and ``None`` (an optimizer's ``state_dict``, a generator's state, a run's history)
— is written as one safetensors file: the tensors as its tensors, everything else as JSON in its
header metadata (key ``physadv.state``), with each tensor replaced by a reference. Reading it back
parses JSON and tensors only; nothing is executed. Integer dict keys (an optimizer's per-parameter
state) and tuples survive the round trip, and JSON writes floats exactly (shortest repr), so a
resumed run continues bit for bit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from physadv.errors import PhysadvError

META_KEY = "physadv.state"
FORMAT = "physadv-state/1"


def _encode(obj, tensors: dict[str, torch.Tensor]):
    """JSON-able skeleton of ``obj``; tensors move into ``tensors`` under generated names."""
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        # a private contiguous copy: safetensors refuses tensors that share memory
        tensors[name] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a physadv state file")


def _decode(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def save_state(path: str | Path, state: dict) -> Path:
    """Write ``state`` to ``path`` (a ``.safetensors`` file) atomically: a crash mid-write leaves
    the previous file intact.

    Raises:
        TypeError: ``state`` holds something other than tensors, numbers, strings, booleans,
            ``None``, dicts, lists and tuples.
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, tensors)
    meta = {META_KEY: json.dumps({"format": FORMAT, "state": skeleton}, allow_nan=True)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load_state(path: str | Path, what: str = "state file") -> dict:
    """Read a state written by :func:`save_state`; no code is run (no pickle).

    Raises:
        PhysadvError: the file is missing, unreadable, or not a physadv state file (``what`` names
            the kind of file in the message).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise PhysadvError(f"cannot read {what} '{path}': {str(exc).strip()[:160]}") from None
    try:
        record = json.loads(meta[META_KEY])
        assert record.get("format") == FORMAT
        return _decode(record["state"], tensors)
    except (KeyError, ValueError, AssertionError, TypeError):
        raise PhysadvError(f"'{path}' is not a physadv {what}") from None
