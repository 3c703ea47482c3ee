"""Video and ground-truth files: frames stream to disk as they are rendered (flat memory)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import torch

from physadv.errors import PhysadvError


def to_bgr8(frame: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` RGB float in [0, 1] → ``[H, W, 3]`` BGR uint8 (OpenCV's order)."""
    rgb = frame.detach().cpu().mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)
    return cv2.cvtColor(np.ascontiguousarray(rgb.numpy()), cv2.COLOR_RGB2BGR)


def write_scene(
    pairs: Iterable, out: Path, fps: float, frames: bool = False, on_frame: Callable[[], None] | None = None
) -> int:
    """Write ``out/scene.mp4`` and ``out/ground_truth.jsonl`` from ``(frame, FrameTruth)`` pairs;
    with ``frames``, also ``out/frames/NNNNNN.png``. Returns the number of frames."""
    out.mkdir(parents=True, exist_ok=True)
    writer = None
    count = 0
    try:
        with open(out / "ground_truth.jsonl", "w") as gt:
            for frame, truth in pairs:
                image = to_bgr8(frame)
                if writer is None:
                    h, w = image.shape[:2]
                    writer = cv2.VideoWriter(
                        str(out / "scene.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h)
                    )
                    if not writer.isOpened():
                        raise PhysadvError(f"cannot open a video writer for '{out / 'scene.mp4'}'")
                writer.write(image)
                if frames:
                    (out / "frames").mkdir(exist_ok=True)
                    cv2.imwrite(str(out / "frames" / f"{truth.index:06d}.png"), image)
                gt.write(json.dumps(truth.as_json()) + "\n")
                count += 1
                if on_frame:
                    on_frame()
    finally:
        if writer is not None:
            writer.release()
    return count
