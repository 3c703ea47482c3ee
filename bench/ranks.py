"""One process against N ranks for the sticker step and the patch step, where the time goes, and an
estimate for more GPUs or machines — in one run.

    python bench/ranks.py [--images runs/persons/images/train] [--ranks 2] [--steps 6] [--threads 1]
        [--sticker-batch 32] [--patch-batch 8] [--device cpu|cuda] [--links NAME:GB/s:us,…]

For the RP2 sticker step (the embedded sign classifier) and the person-patch step (the embedded
detector on photos; without ``--images`` a small set is rendered first), with the same global batch B:

1. one process: the step as the attack runs it (loss, backward, Adam), at B and at every share B/N
   a rank holds with N ranks (N = 2, 4, 8, … while B/N ≥ 1);
2. ``torchrun --nproc-per-node RANKS`` (gloo on the CPU, one thread per rank; NCCL with one GPU per
   rank): the data-parallel step in parts — compute (this rank's share: forward and backward, with
   the step's small collectives inside it), wait (a barrier: for the slowest rank), all-reduce (the
   artefact's gradient and the step's figures), update (Adam) — and the bytes all-reduced per step,
   counted on the collectives themselves;
3. an ESTIMATE for N ranks on links of stated bandwidth β and per-message latency α (assumptions,
   printed, not measured here): t(N) = t₁(B/N) + Σ over the step's all-reduces of 2(N−1)(α + s/(N·β))
   (a ring all-reduce of s bytes), with t₁(B/N) the one-process step measured at the share. It assumes
   every rank's device is the one measured and that nothing else grows with N.

Timings are wall-clock on whatever else the machine runs: compare rows of one run, not runs. On a
loaded CPU give the one process one thread (``--threads 1``), as each rank has: torch's default team
of threads stalls when other processes hold the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from laps import Laps  # bench/laps.py (the script's own folder is on the path)

import physadv  # noqa: F401  (offline environment before ultralytics)

# (name, β in GB/s, α in µs): typical figures for each kind of link, assumed, not measured here
LINKS = "NVLink-4 one node:450:10,PCIe-4 x16:25:10,InfiniBand NDR:50:15,100GbE:12.5:30,10GbE:1.25:50"
PARTS = ["compute", "wait", "all_reduce", "update"]


def sticker_attack(batch: int, device: str):
    """The sticker attack (classifier, targeted, fixed 'blocks' mask), its mask and the step's views."""
    from physadv.attacks.rp2 import StickerAttack, StickerConfig
    from physadv.models import load_model
    from physadv.printing.palette import Palette

    model = load_model("default", task="classify", device=device)
    stop, target = model.names.first_of("stop sign", "stop"), model.names.id("speed limit 45")
    config = StickerConfig(goal="targeted", true_class=stop, target=target, mask="blocks", batch=batch)
    attack = StickerAttack(model, config, Palette.default().colours)
    return attack, attack.stages()[0].mask.to(attack.device), attack.views(batch, seed=1)


def patch_attack(images: Path, batch: int, device: str):
    from physadv.attacks.person_patch import PatchAttack, PatchConfig
    from physadv.data.image_set import label_folder_for, load_image_set
    from physadv.models import load_model
    from physadv.printing.palette import Palette

    model = load_model("default", task="detect", device=device)
    ids = [model.names.id("person")]
    image_set, _ = load_image_set(images, model.imgsz, ids, label_folder_for(images), 16)
    return PatchAttack(
        [model], PatchConfig(["person"], batch=batch), image_set.with_objects(), Palette.default().colours
    )


class Step:
    """One attack step as ``run`` takes it, in the parts of :data:`PARTS` (one process: no wait and
    no all-reduce)."""

    def __init__(self, task: str, batch: int, args):
        import torch

        self.task, self.gen = task, torch.Generator().manual_seed(0)
        if task == "sticker":
            self.attack, self.mask, self.views = sticker_attack(batch, args.device)
            self.param = torch.full_like(self.attack.face_small[:3], 0.5).requires_grad_(True)
        else:
            self.attack = patch_attack(args.images, batch, args.device)
            self.param = self.attack.initial_patch().requires_grad_(True)
        self.ranks = self.attack.ranks
        self.opt = torch.optim.Adam([self.param], lr=0.03)

    def run(self, laps: Laps) -> None:
        import torch

        a, ranks = self.attack, self.ranks
        laps.start()
        if self.task == "sticker":
            mine = ranks.share(list(range(len(self.views))))
            views = [self.views[i] for i in mine]
            total, info = a.loss(self.param, self.mask, 2, views, len(mine) / len(self.views), ranks.main)
        else:
            total, info = a.loss(self.param, self.gen)
        self.opt.zero_grad()
        total.backward()
        laps.mark("compute")
        ranks.barrier()
        laps.mark("wait")
        ranks.sum_grads([self.param])
        if self.task == "sticker":
            a._global(total, info)  # the step's figures over the ranks, as the attack sums them
        laps.mark("all_reduce")
        self.opt.step()
        with torch.no_grad():
            self.param.clamp_(0, 1)
        laps.mark("update")
        laps.next_step()


def time_step(task: str, batch: int, args) -> dict:
    step = Step(task, batch, args)
    laps = Laps(step.attack.device, PARTS)
    for _ in range(args.steps + laps.warmup):
        step.run(laps)
    parts = laps.means()
    return {"batch": batch, "step": sum(parts.values()), **parts}


def _count_all_reduce() -> dict:
    """Count the bytes and calls of every all-reduce from here on (physadv calls ``dist.all_reduce``)."""
    import torch.distributed as dist

    counted = {"bytes": 0, "calls": 0, "sizes": []}
    real = dist.all_reduce

    def counting(tensor, *a, **k):
        counted["bytes"] += tensor.numel() * tensor.element_size()
        counted["calls"] += 1
        counted["sizes"].append(tensor.numel() * tensor.element_size())
        return real(tensor, *a, **k)

    dist.all_reduce = counting
    return counted


def worker(args) -> None:
    """One rank of the ``torchrun`` measurement (rank 0 writes the result)."""
    from physadv import distributed
    from physadv.device import select_device

    ranks = distributed.start(select_device(args.device))
    counted = _count_all_reduce()
    batch = args.sticker_batch if args.task == "sticker" else args.patch_batch
    step = Step(args.task, batch, args)
    laps = Laps(step.attack.device, PARTS)
    step.run(laps)  # one step to count the all-reduces of
    per_step = {"bytes": counted["bytes"], "calls": counted["calls"], "sizes": list(counted["sizes"])}
    for _ in range(args.steps + laps.warmup - 1):
        step.run(laps)
    parts = laps.means()
    everyone = ranks.gather(parts)
    if ranks.main:
        result = {"batch": batch, "step": sum(parts.values()), **parts, "all_reduce_per_step": per_step}
        result["compute_per_rank"] = [p["compute"] for p in everyone]
        Path(args.worker).write_text(json.dumps(result))
    distributed.stop()


def on_ranks(args, task: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        command = [str(Path(sys.executable).with_name("torchrun")), "--standalone"]
        command += [f"--nproc-per-node={args.ranks}", __file__, "--worker", str(result), "--task", task]
        command += ["--device", args.device, "--steps", str(args.steps)]
        command += ["--sticker-batch", str(args.sticker_batch), "--patch-batch", str(args.patch_batch)]
        command += ["--images", str(args.images)] if args.images else []
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // args.ranks))}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode:
            raise SystemExit(f"torchrun failed:\n{done.stderr[-3000:]}")
        return json.loads(result.read_text())


def ring_seconds(sizes: list[int], n: int, gbps: float, us: float) -> float:
    """A ring all-reduce of each message: 2(N−1) steps of α plus 1/N of the message at β."""
    return sum(2 * (n - 1) * (us * 1e-6 + s / (n * gbps * 1e9)) for s in sizes) if n > 1 else 0.0


def _links(text: str) -> list[tuple[str, float, float]]:
    out = []
    for item in text.split(","):
        name, gbps, us = item.rsplit(":", 2)
        out.append((name, float(gbps), float(us)))
    return out


def _report(task: str, unit: str, one: dict[int, dict], ranked: dict | None, args) -> None:
    batch = max(one)
    base = one[batch]["step"]
    print(f"\n== {task} step, global batch {batch} ({unit}), device {args.device}")
    print(f"one process:            {1000 * base:8.1f} ms a step, {batch / base:8.1f} {unit}/s")
    if ranked:
        n, sent = args.ranks, ranked["all_reduce_per_step"]
        print(
            f"{n} ranks ({'NCCL' if args.device.startswith('cuda') else 'gloo'}):  "
            f"{1000 * ranked['step']:8.1f} ms a step, {batch / ranked['step']:8.1f} {unit}/s "
            f"({base / ranked['step']:.2f}× one process)"
        )
        split = "  ".join(
            f"{p} {1000 * ranked[p]:.1f} ms ({100 * ranked[p] / ranked['step']:.0f} %)" for p in PARTS
        )
        print(f"  split: {split}")
        print(f"  compute per rank: {', '.join(f'{1000 * c:.1f}' for c in ranked['compute_per_rank'])} ms")
        print(
            f"  all-reduced per step: {sent['bytes']:,} bytes in {sent['calls']} calls "
            f"(largest {max(sent['sizes']):,} bytes: the artefact's gradient)"
        )
        sizes = sent["sizes"]
    else:
        sizes = []
    print("ESTIMATE (not measured): step time and speed-up over one process for N ranks")
    counts = [n for n in (1, 2, 4, 8, 16, 32, 64) if n in {batch // b for b in one} and batch % n == 0]
    links = _links(args.links)
    print(f"{'link (β GB/s, α µs)':>34} " + " ".join(f"{f'N={n}':>15}" for n in counts))
    for name, gbps, us in links:
        cells = []
        for n in counts:
            t = one[batch // n]["step"] + ring_seconds(sizes, n, gbps, us)
            cells.append(f"{1000 * t:7.1f} ms {base / t:4.1f}×")
        print(f"{f'{name} ({gbps:g}, {us:g})':>34} " + " ".join(f"{c:>15}" for c in cells))


def _images(args, tmp: str) -> Path:
    if args.images:
        return args.images
    out = Path(tmp) / "persons"
    physadv_cli = str(Path(sys.executable).with_name("physadv"))
    subprocess.run(
        [
            physadv_cli,
            "scene",
            "dataset",
            "--task",
            "persons",
            "--out",
            str(out),
            "--train",
            "16",
            "--val",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    return out / "images" / "train"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, help="photos with people (default: 16 rendered ones)")
    parser.add_argument("--ranks", type=int, default=2, help="ranks for the torchrun row (0: none)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per row (after 2 warm-up)")
    parser.add_argument("--sticker-batch", type=int, default=32, help="views per sticker step")
    parser.add_argument("--patch-batch", type=int, default=8, help="photos per patch step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=0, help="one process's CPU threads (0: torch's default)"
    )
    parser.add_argument("--links", default=LINKS, help="NAME:GB/s:µs,… for the estimate")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    if args.worker:
        return worker(args)
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # torch imports its compiler here: not timed
    if args.threads:
        torch.set_num_threads(args.threads)
    gpus = torch.cuda.device_count() if args.device.startswith("cuda") else args.ranks
    with tempfile.TemporaryDirectory() as tmp:
        args.images = _images(args, tmp)
        for task, batch, unit in (
            ("sticker", args.sticker_batch, "views"),
            ("patch", args.patch_batch, "images"),
        ):
            shares = sorted({batch // n for n in (1, 2, 4, 8, 16, 32, 64) if batch % n == 0}, reverse=True)
            one = {b: time_step(task, b, args) for b in shares}
            ranked = on_ranks(args, task) if args.ranks > 1 and gpus >= args.ranks else None
            _report(task, unit, one, ranked, args)
    threads = max(1, (os.cpu_count() or 1) // max(1, args.ranks))
    print(
        f"\n(torch {torch.__version__}, {os.cpu_count()} CPU cores; one process: {torch.get_num_threads()} "
        f"threads, each rank: {threads})"
    )


if __name__ == "__main__":
    main()
