"""Replay speed: ``physadv eval``'s pipeline against decoding the video alone and against a bare
Ultralytics ``predict(stream=True)`` loop on the same video, model and input size, and one process
against N ranks under torchrun, measured side by side in one run (best of N rounds, alternating, so
all see the same machine state).

    physadv scene render scenes/driveby_stop.yaml --out runs/driveby
    python bench/replay_fps.py runs/driveby/scene.mp4 [--weights W.pt] [--rounds 3] [--ranks 2]
    python bench/replay_fps.py runs/driveby/scene.mp4 --device cuda --batch 32

Prints frames per second of each and its ratio to the bare loop (CPU target: ≥ 0.95 streaming,
≥ 0.85 end to end with the annotated video) and to decoding alone (GPU target: ≥ 0.9). physadv
always also judges every frame and writes frames.csv; "plain" is the one-thread replay, the other
rows decode ahead and draw/encode the annotated video in threads of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import physadv  # noqa: F401  (offline environment before ultralytics)


def decode_only(video: str) -> tuple[float, float]:
    """(frames/s of OpenCV decoding alone, frames/s of physadv's reader: decoding, timestamps and
    the float RGB tensor the model takes)."""
    import cv2

    from physadv.data.video import VideoSource

    capture, n, start = cv2.VideoCapture(video), 0, time.perf_counter()
    while capture.read()[0]:
        n += 1
    capture.release()
    bare = n / (time.perf_counter() - start)
    start = time.perf_counter()
    m = sum(1 for _ in VideoSource(Path(video)).frames())
    return bare, m / (time.perf_counter() - start)


def bare_model(weights: str, video: str, imgsz: int, device: str):
    """Ultralytics' ``YOLO`` with its predictor set up (fused, warmed up) on the video's first
    frame, so that the timed loop is streaming only, as physadv's clock is."""
    import cv2
    from ultralytics import YOLO

    model = YOLO(weights)
    ok, first = cv2.VideoCapture(video).read()
    model.predict(first, imgsz=imgsz, conf=0.25, device=device, verbose=False)
    return model


def bare_ultralytics(model, video: str, imgsz: int, device: str, batch: int) -> float:
    start = time.perf_counter()
    n = 0
    for _ in model.predict(
        video, stream=True, imgsz=imgsz, conf=0.25, device=device, verbose=False, batch=batch
    ):
        n += 1
    return n / (time.perf_counter() - start)


def _replay(model, gt: Path | None, batch: int, pipelined: bool, ranks=None):
    from physadv.data.groundtruth import load_ground_truth
    from physadv.distributed import Ranks
    from physadv.harness.frame_judge import ReplayGoal
    from physadv.harness.replay import Replay, Truth

    truth = Truth(file=load_ground_truth(gt) if gt else None)
    goal = ReplayGoal("detect", model.names.id("stop sign"), "stop sign")
    return Replay(model, goal, truth=truth, batch=batch, ranks=ranks or Ranks(), pipelined=pipelined)


def physadv_replay(
    model, video: str, gt: Path | None, batch: int, annotate: bool, pipelined: bool
) -> tuple[float, float]:
    """(frames/s while streaming, frames/s end to end including the report's plots)."""
    from physadv.jobs.replay import run_replay_job

    replay = _replay(model, gt, batch, pipelined)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = run_replay_job(replay, video, Path(out), "bench", gt_file=gt, annotate=annotate)
        return result["frames_per_second"], result["frames_replayed"] / (time.perf_counter() - start)


def ranks_replay(args, ranks: int) -> float:
    """Frames/s while streaming of ``torchrun --nproc-per-node RANKS`` (the job's own clock: from the
    first frame to the last, without starting Python and loading the model)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        command = [
            str(Path(sys.executable).with_name("torchrun")),
            "--standalone",
            f"--nproc-per-node={ranks}",
        ]
        command += [__file__, args.video, "--weights", args.weights, "--device", args.device]
        command += ["--batch", str(args.batch), "--worker", str(result)] + (
            ["--gt", str(args.gt)] if args.gt else []
        )
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // ranks))}
        subprocess.run(command, check=True, capture_output=True, env=env)
        return json.loads(result.read_text())["frames_per_second"]


def worker(args) -> None:
    """One rank of :func:`ranks_replay` (started by torchrun)."""
    from physadv import distributed
    from physadv.jobs.replay import run_replay_job
    from physadv.models import load_model

    ranks = distributed.start(args.device)
    model = load_model(args.weights, task="detect", device=args.device)
    replay = _replay(model, args.gt, args.batch, True, ranks)
    with tempfile.TemporaryDirectory() as out:
        result = run_replay_job(replay, args.video, Path(out), args.weights, gt_file=args.gt, annotate=False)
    if result is not None:
        Path(args.worker).write_text(json.dumps(result))
    distributed.stop()


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video")
    parser.add_argument("--weights", help="an Ultralytics .pt (default: the embedded detector's)")
    parser.add_argument(
        "--gt", type=Path, help="ground truth (default: ground_truth.jsonl next to the video)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--batch", type=int, default=8, help="physadv's batch (and bare Ultralytics' on CUDA)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--ranks", type=int, default=2, help="also time torchrun with this many ranks (0: not)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    gt = args.gt or (Path(args.video).with_name("ground_truth.jsonl"))
    args.gt = gt if gt.is_file() else None
    return args


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


def _print(best: dict, args, imgsz: int) -> None:
    print(f"\nvideo {args.video}, imgsz {imgsz}, device {args.device}, physadv batch {args.batch}")
    bare, decode = best["bare Ultralytics"], best["decode only (OpenCV)"]
    print(f"{'':>36}  frames/s  × bare  × decode")
    for k, v in best.items():
        print(f"{k:>36}: {v:8.1f}  {v / bare:5.2f}  {v / decode:6.2f}")
    print(
        "(physadv judges every frame against ground truth and writes frames.csv; end-to-end adds the report)"
    )


def main() -> None:
    args = _arguments()
    if args.weights is None:  # Ultralytics' bare predict needs a .pt: the embedded detector written as one
        from physadv.models.loading import embedded_detector_checkpoint

        args.weights = str(embedded_detector_checkpoint())
    if args.worker:
        return worker(args)
    from physadv.models import load_model

    model = load_model(args.weights, task="detect", device=args.device)
    imgsz = model.imgsz
    bare_batch = (
        args.batch if args.device.startswith("cuda") else 1
    )  # Ultralytics streams a video frame by frame
    best: dict[str, float] = {}
    bare = bare_model(args.weights, args.video, imgsz, args.device)

    def keep(name: str, value: float) -> None:
        best[name] = max(best.get(name, 0.0), value)

    for r in range(args.rounds):
        keep("bare Ultralytics", bare_ultralytics(bare, args.video, imgsz, args.device, bare_batch))
        opencv, reader = decode_only(args.video)
        keep("decode only (OpenCV)", opencv)
        keep("decode only (physadv reader)", reader)
        for pipelined in (False, True):
            for annotate in (False, True):
                name = f"physadv{' +video' if annotate else ''}{'' if pipelined else ' (plain)'}"
                streaming, total = physadv_replay(model, args.video, args.gt, args.batch, annotate, pipelined)
                keep(name, streaming)
                keep(name + " end-to-end", total)
        if args.ranks > 1 and (not args.device.startswith("cuda") or _gpus() >= args.ranks):
            keep(f"physadv on {args.ranks} ranks (torchrun)", ranks_replay(args, args.ranks))
        print(f"\nafter round {r + 1} of {args.rounds}:", flush=True)
        _print(best, args, imgsz)  # every round: a run cut short by a time limit still says something


if __name__ == "__main__":
    main()
