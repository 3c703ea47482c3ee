"""Timing an attack step in parts, for the step benchmarks (``patch_step.py``, ``sticker_step.py``)."""

from __future__ import annotations

import resource
import time


class Laps:
    """Wall-clock laps between marks, the device synchronised at each mark (CUDA runs ahead of the
    host otherwise); the first ``warmup`` steps are dropped. Peak memory: the CUDA allocator's peak
    since this object was made, or on the CPU the process's peak resident size so far."""

    def __init__(self, device, parts: list[str], warmup: int = 2):
        import torch

        self.device, self.warmup, self.step = device, warmup, 0
        self.laps: dict[str, list[float]] = {p: [] for p in parts}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def _now(self) -> float:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def start(self) -> None:
        self.last = self._now()

    def mark(self, part: str) -> None:
        """Ends the lap ``part`` (a name given at construction) and starts the next one."""
        now = self._now()
        if self.step >= self.warmup:
            self.laps[part].append(now - self.last)
        self.last = now

    def next_step(self) -> None:
        self.step += 1

    def means(self) -> dict[str, float]:
        return {p: sum(v) / len(v) for p, v in self.laps.items()}

    def peak_mib(self) -> float:
        import torch

        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
