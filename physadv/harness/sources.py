"""Frame sources for replays: a video file, a folder of frames, or a scene spec rendered on the fly.

Every source streams :class:`Frame` records one at a time (flat memory however long the video),
and keeps a list of the frames it could not read: a corrupt or truncated video is read as far as
it goes, skipping unreadable frames where the decoder can go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from physadv.artefact import Artefact
from physadv.data.groundtruth import GtObject
from physadv.errors import PhysadvError
from physadv.scene.render import MIN_VISIBLE

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SCENE_SUFFIXES = (".yaml", ".yml")
MAX_FAILED_READS = 10  # consecutive unreadable frames after which the decoder is taken to have given up


@dataclass
class Frame:
    """One frame: ``image`` ``[3, H, W]`` RGB float in [0, 1]; ``truth`` None when the source has none."""

    index: int
    time_s: float
    image: torch.Tensor
    truth: list[GtObject] | None = None
    difficult: list[GtObject] = field(
        default_factory=list
    )  # seen too little to require, never hallucinations
    tracked: bool | None = None  # tracked ground truth: whether the tracker trusted its match
    bgr: np.ndarray | None = None  # the decoded frame (uint8 BGR), kept to draw on


def from_bgr8(image: np.ndarray) -> torch.Tensor:
    """OpenCV's ``[H, W, 3]`` BGR uint8 → ``[3, H, W]`` RGB float in [0, 1] (a channels-last view)."""
    return torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float().div_(255)


def batched(items: Iterable, n: int) -> Iterator[list]:
    """Lists of ``n`` consecutive items (the last may be shorter), pulled lazily."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


class Unread:
    """Frames a source could not read: how many, the first one, and why (the first few reasons)."""

    def __init__(self):
        self.count, self.first, self.reasons = 0, None, []

    def add(self, index: int, reason: str, count: int = 1) -> None:
        self.first = index if self.first is None else min(self.first, index)
        self.count += count
        if len(self.reasons) < 5:
            self.reasons.append(f"frame {index}: {reason}")


class VideoSource:
    """Frames of a video file, decoded by OpenCV one at a time."""

    kind = "video"

    def __init__(self, path: Path):
        self.path = Path(path)
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise PhysadvError(
                f"cannot read video '{self.path}': OpenCV cannot open it (corrupt, truncated before its "
                "index, or an unsupported codec)"
            )
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.expected = count if count > 0 else None
        self.fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        capture.release()
        self.unread = Unread()

    def frames(self) -> Iterator[Frame]:
        capture = cv2.VideoCapture(str(self.path))
        index, failed = 0, []
        try:
            while self.expected is None or index < self.expected:
                ok, image = capture.read()
                if ok and image is not None:
                    for bad in failed:
                        self.unread.add(bad, "unreadable (corrupt data)")
                    failed = []
                    yield Frame(index, index / self.fps, from_bgr8(image), bgr=image)
                elif len(failed) < MAX_FAILED_READS:
                    failed.append(index)
                else:  # the decoder has given up: the rest of the file is lost
                    if self.expected is not None:
                        self.unread.add(failed[0], "video ends early (truncated?)", self.expected - failed[0])
                    return
                index += 1
            for bad in failed:
                self.unread.add(bad, "unreadable (corrupt data)")
        finally:
            capture.release()


class FolderSource:
    """Image files in a folder, in name order (``frame_000001.png`` …)."""

    kind = "folder"

    def __init__(self, path: Path, fps: float = 30.0):
        self.path = Path(path)
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise PhysadvError(f"folder '{self.path}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self.expected = len(self.files)
        self.fps = fps
        self.unread = Unread()

    def frames(self) -> Iterator[Frame]:
        for index, file in enumerate(self.files):
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                self.unread.add(index, f"unreadable image '{file.name}'")
                continue
            yield Frame(index, index / self.fps, from_bgr8(image), bgr=image)


class SceneSource:
    """A scene spec rendered frame by frame, with its ground truth; ``sticker`` goes on the sign,
    ``patch`` on every person."""

    kind = "scene"

    def __init__(self, spec: dict, sticker: Artefact | None = None, patch: Artefact | None = None):
        from physadv.scene.render import count_frames
        from physadv.scene.spec import fps as scene_fps

        self.spec, self.sticker, self.patch = spec, sticker, patch
        self.expected = count_frames(spec)
        self.fps = scene_fps(spec)
        self.unread = Unread()

    def frames(self) -> Iterator[Frame]:
        from physadv.scene.render import render_scene

        for image, truth in render_scene(self.spec, self.sticker, self.patch):
            objects = [
                (o.visible >= MIN_VISIBLE, GtObject(o.class_name, tuple(o.box), o.distance_m, o.angle_deg))
                for o in truth.objects
            ]
            yield Frame(
                truth.index,
                truth.time_s,
                image,
                [g for seen, g in objects if seen],
                [g for seen, g in objects if not seen],
            )


def open_source(
    source: str | Path, sticker: Artefact | None = None, patch: Artefact | None = None, seed=None
):
    """The source for what a user typed: a video file, a folder of frames or a scene spec."""
    path = Path(source)
    if not path.exists():
        raise PhysadvError(
            f"source '{source}' does not exist (a video file, a folder of frames or a scene spec)"
        )
    if path.is_dir():
        return FolderSource(path)
    suffix = path.suffix.lower()
    if suffix in SCENE_SUFFIXES:
        from physadv.scene.spec import load_spec

        spec = load_spec(path)
        if seed is not None:
            spec["seed"] = seed
        return SceneSource(spec, sticker, patch)
    if sticker is not None or patch is not None:
        raise PhysadvError(
            "--artefact/--patch are placed in rendered scenes only; a recording already shows them"
        )
    if suffix in VIDEO_SUFFIXES:
        return VideoSource(path)
    raise PhysadvError(
        f"cannot replay '{source}': give a video ({', '.join(VIDEO_SUFFIXES)}), a folder of frames or a "
        "scene spec (.yaml)"
    )
