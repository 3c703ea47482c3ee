"""Replay speed: ``physadv eval``'s pipeline against a bare Ultralytics ``predict(stream=True)`` loop
on the same video, model and input size, measured side by side in one process (best of N rounds,
alternating, so both see the same machine state).

    physadv scene render scenes/driveby_stop.yaml --out runs/driveby
    python bench/replay_fps.py runs/driveby/scene.mp4 [--weights W.pt] [--rounds 3]

Prints frames per second of each and the ratio physadv / bare (target ≥ 0.9), with and without the
annotated video (physadv always also judges every frame and writes frames.csv).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import physadv  # noqa: F401  (offline environment before ultralytics)


def bare_ultralytics(weights: str, video: str, imgsz: int, device: str, batch: int) -> float:
    from ultralytics import YOLO

    model = YOLO(weights)
    start = time.perf_counter()
    n = 0
    for _ in model.predict(
        video, stream=True, imgsz=imgsz, conf=0.25, device=device, verbose=False, batch=batch
    ):
        n += 1
    return n / (time.perf_counter() - start)


def physadv_replay(
    weights: str, video: str, gt: Path | None, device: str, batch: int, annotate: bool
) -> tuple[float, float]:
    """(frames/s while streaming, frames/s end to end including the report's plots)."""
    from physadv.data.groundtruth import load_ground_truth
    from physadv.harness.frame_judge import ReplayGoal
    from physadv.harness.replay import Replay, Truth
    from physadv.jobs.replay import run_replay_job
    from physadv.models import load_model

    model = load_model(weights, task="detect", device=device)
    truth = Truth(file=load_ground_truth(gt) if gt else None)
    replay = Replay(
        model, ReplayGoal("detect", model.names.id("stop sign"), "stop sign"), truth=truth, batch=batch
    )
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = run_replay_job(replay, video, Path(out), weights, gt_file=gt, annotate=annotate)
        return result["frames_per_second"], result["frames_replayed"] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video")
    parser.add_argument("--weights", default=str(Path(physadv.__file__).parent / "assets/models/detector.pt"))
    parser.add_argument(
        "--gt", type=Path, help="ground truth (default: ground_truth.jsonl next to the video)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    gt = args.gt or (Path(args.video).with_name("ground_truth.jsonl"))
    gt = gt if gt.is_file() else None
    from physadv.models import load_model

    imgsz = load_model(args.weights, task="detect", device=args.device).imgsz
    best = {"bare": 0.0}
    for r in range(args.rounds):
        best["bare"] = max(best["bare"], bare_ultralytics(args.weights, args.video, imgsz, args.device, 1))
        for name, annotate in (("physadv", False), ("physadv+video", True)):
            streaming, total = physadv_replay(args.weights, args.video, gt, args.device, args.batch, annotate)
            best[name] = max(best.get(name, 0.0), streaming)
            best[name + " end-to-end"] = max(best.get(name + " end-to-end", 0.0), total)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in best.items()), flush=True)
    print(f"\nvideo {args.video}, imgsz {imgsz}, device {args.device}, physadv batch {args.batch}")
    print(f"bare Ultralytics predict(stream=True): {best['bare']:.1f} frames/s")
    for k, v in best.items():
        if k != "bare":
            print(f"{k:>28}: {v:.1f} frames/s  ratio {v / best['bare']:.2f}×")
    print(
        "(physadv judges every frame against ground truth and writes frames.csv; end-to-end adds the report)"
    )


if __name__ == "__main__":
    main()
