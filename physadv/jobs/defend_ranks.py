"""The defense table's rows spread over torchrun's ranks (``torchrun --nproc-per-node N -m physadv
defend …``).

A row — the bare model's, then one per defense: its clean, non-adaptive and adaptive numbers — is
measured whole on one rank, the rows dealt round-robin (row k on rank k mod N), and rank 0 gathers
them with the adaptive artefacts' pictures and alone writes the table, as one process would. A row
does not depend on where it is measured: the defense's own randomness is seeded from the user's seed
(as in one process), the global generators are re-seeded before every row from the user's seed and
the row's defense name (:func:`row_seed`), and the adaptive attack runs in its rank alone. So N ranks
write the single process's table, but for the timings (``ms_per_frame``), which are each rank's own.

What is not split: the held-out views, the photos and, for ``--digital``, the PGD and CW inputs made
on the bare model are prepared by every rank (each rank's rows need them); the table, plot and
pictures are written by rank 0. An adaptive attack's checkpoint is written by the rank that runs it,
into ``--out``: a rerun resumes it on any number of ranks where the ranks share that folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from physadv import distributed
from physadv.artefact import Artefact
from physadv.distributed import Ranks

Keep = Callable[[Artefact, Path], None]  # where an adaptive artefact's picture goes
NOT_SPLIT = (
    "every rank prepares the held-out views or photos (and --digital's attacks on the bare model), "
    "rank 0 writes the table"
)


def row_seed(seed: int, name: str) -> int:
    """The global generators' seed for the row of defense ``name`` (``"none"``: the bare model): the
    same on every rank and for any number of ranks, different between defenses."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:4], "little")


def save_picture(artefact: Artefact, path: Path) -> None:
    """An adaptive artefact's picture at 72 dpi (what :func:`spread_rows` keeps for rank 0)."""
    from physadv.printing.export import save_png

    save_png(artefact, path, 72)


def spread_rows(
    device: torch.device,
    names: list[str],
    seed: int,
    measure: Callable[[int, Keep], dict],
    write: Callable[[list[dict]], object],
) -> list[dict] | None:
    """Measure row ``k`` (``measure(k, keep)``, defense ``names[k]``) for this rank's share of the rows
    (all of them without torchrun; the process group is joined on ``device`` and left here); returns
    every row in order on rank 0 (None on the other ranks). Rank 0 calls ``write`` with the rows it
    has after each of its own, so a crash keeps what was done."""
    ranks = distributed.start(device)
    try:
        if ranks.active and ranks.main:
            print(f"{ranks.world} ranks share the defenses; {NOT_SPLIT}", flush=True)
        return _spread(ranks, names, seed, measure, write)
    finally:
        distributed.stop()


def _spread(ranks: Ranks, names, seed, measure, write) -> list[dict] | None:
    pictures: list[tuple[Artefact, Path]] = []

    def keep(artefact: Artefact, path: Path) -> None:
        if ranks.main:
            save_picture(artefact, path)
        else:  # rank 0 writes it: the ranks may not share a folder
            pictures.append((Artefact(artefact.image.cpu(), artefact.size_mm, _cpu(artefact.alpha)), path))

    done: dict[int, dict] = {}
    for k in ranks.deal(list(range(len(names)))):
        torch.manual_seed(row_seed(seed, names[k]))
        np.random.seed(row_seed(seed, names[k]))
        done[k] = measure(k, keep)
        if ranks.main:
            write([done[i] for i in sorted(done)])
    gathered = ranks.gather((done, pictures))
    if not ranks.main:
        return None
    rows: dict[int, dict] = {}
    for rows_of_rank, pictures_of_rank in gathered:
        rows.update(rows_of_rank)
        for artefact, path in pictures_of_rank:
            save_picture(artefact, path)
    return [rows[k] for k in range(len(names))]


def _cpu(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.cpu()
