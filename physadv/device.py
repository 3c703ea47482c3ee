"""Device choice and mixed precision: CUDA when present, CPU otherwise."""

from __future__ import annotations

import contextlib

import torch

from physadv.distributed import ranks_from_env
from physadv.errors import PhysadvError


def select_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Resolve ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; under
    torchrun, ``"cuda"`` is the local rank's GPU.

    Raises:
        PhysadvError: CUDA was asked for but is not available, or the spec is not a device.
    """
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda" and ranks_from_env().active:  # under torchrun: one GPU per local rank
        spec = f"cuda:{ranks_from_env().local_rank}"
    if spec.isdigit():
        spec = f"cuda:{spec}"
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise PhysadvError(f"unknown device '{spec}': use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PhysadvError(f"device '{spec}' asked for, but CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PhysadvError(
                f"device '{spec}' asked for, but only {torch.cuda.device_count()} GPU(s) exist"
            )
    elif device.type != "cpu":
        raise PhysadvError(f"device type '{device.type}' is not supported: use auto, cpu or cuda")
    return device


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Mixed precision (float16 autocast) on CUDA when ``enabled``; a no-op on CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()
