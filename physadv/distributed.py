"""Data parallelism over the processes ``torchrun`` starts, on PyTorch's own engine (torch.distributed).

``torchrun --nproc-per-node N -m physadv sticker …`` starts N copies of the command; each one learns
its rank from the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, set by torchrun) and joins a
process group: NCCL when the model runs on CUDA (one GPU per local rank), gloo on the CPU. An attack
then splits every step's EOT batch across the ranks, scales each rank's share of the loss so that the
sum over ranks is the single-process loss, and sums the artefact's gradient over the ranks
(all-reduce) before the identical optimiser step on every rank — so N ranks make the same artefact
as one process with the same global batch and seed, up to float rounding. Rank 0 alone writes files
and shows progress. Without torchrun (``WORLD_SIZE`` unset or 1) everything here is a no-op.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from physadv.errors import PhysadvError


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the ranks (``Ranks()`` is the single process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files, reports and shows progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def share(self, items: list) -> list:
        """This rank's contiguous part of a global batch (sizes differ by at most one)."""
        n = len(items)
        start = self.rank * n // self.world
        return items[start : (self.rank + 1) * n // self.world]

    def deal(self, items: list) -> list:
        """This rank's items dealt round-robin (item k on rank k mod world): for items of unequal cost
        in a list order that groups alike ones, such as the rows of the defense table."""
        return items[self.rank :: self.world]

    def sum_grads(self, params: list[torch.Tensor]) -> None:
        """Sum each parameter's ``.grad`` over the ranks, in place (all-reduce)."""
        if not self.active:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)

    def sum(self, values: list[float], device: torch.device | str = "cpu") -> list[float]:
        """Sum plain numbers over the ranks (for progress figures and history rows)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def largest(self, value: float) -> float:
        """The largest of every rank's ``value`` (all-reduce MAX)."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t)

    def gather(self, obj) -> list | None:
        """Every rank's ``obj`` in rank order on rank 0 (``None`` elsewhere); ``[obj]`` alone."""
        if not self.active:
            return [obj]
        out = [None] * self.world if self.main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (what rank 0 alone computed, e.g. while writing files)."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value is not None else default
    except ValueError:
        raise PhysadvError(f"environment variable {name}={value!r} is not a whole number") from None


def ranks_from_env() -> Ranks:
    """The ranks torchrun described in the environment (no process group is started)."""
    world = _env_int("WORLD_SIZE", 1)
    return Ranks(_env_int("RANK", 0), world, _env_int("LOCAL_RANK", 0)) if world > 1 else Ranks()


def start(device: torch.device | str) -> Ranks:
    """Join the process group torchrun set up (once), with NCCL for a CUDA ``device`` and gloo
    otherwise; returns this process's :class:`Ranks`."""
    ranks = ranks_from_env()
    if ranks.active and not dist.is_initialized():
        cuda = torch.device(device).type == "cuda"
        if cuda:  # NCCL's object collectives (gather, broadcast) run on the current device: this rank's
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group("nccl" if cuda else "gloo")
    return ranks


def stop() -> None:
    """Leave the process group (at the end of a command, in its ``finally``).

    On a normal end every rank first waits for the others: a rank that left while another was still
    receiving its last message (gloo's ``gather_object``) was aborted by gloo ("terminate called without
    an active exception"). After an error no rank waits, so a failing rank cannot hang the others."""
    if dist.is_available() and dist.is_initialized():
        if sys.exc_info()[1] is None:
            dist.barrier()
        dist.destroy_process_group()
