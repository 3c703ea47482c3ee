"""Frame sources for replays: a video file, a folder of frames, or a scene spec rendered on the fly.

Every source streams :class:`Frame` records one at a time (flat memory however long the video),
and keeps a list of the frames it could not read: a corrupt or truncated video is read as far as
it goes, skipping unreadable frames where the decoder can go on. The readers of what users bring
live in :mod:`physadv.data` (:mod:`~physadv.data.video`, :mod:`~physadv.data.images`).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from physadv.artefact import Artefact
from physadv.data.groundtruth import GtObject
from physadv.data.images import IMAGE_SUFFIXES, frame_files, read_rgb8, skipped_name
from physadv.data.video import VIDEO_SUFFIXES, Frame, Unread, VideoSource, check_fps, from_bgr8
from physadv.errors import PhysadvError
from physadv.scene.render import MIN_VISIBLE

__all__ = [
    "Frame",
    "FolderSource",
    "SceneSource",
    "Unread",
    "VideoSource",
    "batched",
    "prefetched",
    "from_bgr8",
    "open_source",
]

SCENE_SUFFIXES = (".yaml", ".yml")


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


_DONE = object()


def prefetched(items: Iterable, depth: int = 2) -> Iterator:
    """``items`` pulled by a thread of their own, up to ``depth`` ahead: decoding the next frames
    overlaps the model's work on these (OpenCV and torch release the GIL). The same items in the same
    order; an error raised while pulling is raised here; leaving early stops the thread and closes
    ``items`` (a video is released)."""
    ahead: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def pull() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        ahead.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            ahead.put((_DONE, None))
        except BaseException as e:  # noqa: BLE001  (raised in the caller's thread)
            ahead.put((_DONE, e))
        finally:
            getattr(iterator, "close", lambda: None)()

    thread = threading.Thread(target=pull, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ahead.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a thread waiting to hand over an item, then let it finish
            with contextlib.suppress(queue.Empty):
                ahead.get(timeout=0.1)
        thread.join()


class FolderSource:
    """Image files in a folder, in name order (``frame_000001.png`` …), read by
    :func:`physadv.data.images.read_rgb8` (any bit depth, EXIF orientation applied, transparent
    pixels over grey 114); frames of another size than the first are left out and counted."""

    kind = "folder"

    def __init__(self, path: Path, fps: float = 30.0):
        check_fps(fps)
        self.path = Path(path)
        self.files = frame_files(self.path)
        if not self.files:
            raise PhysadvError(f"folder '{self.path}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self.expected = len(self.files)
        self.fps = fps
        self.unread = Unread()
        self.notes: list[str] = []

    def frames(self) -> Iterator[Frame]:
        self.unread, self.notes, size, transparent = Unread(), [], None, 0
        for index, file in enumerate(self.files):
            try:
                rgb, picture = read_rgb8(file)
            except PhysadvError as exc:  # a truncated frame is named as such: 'f.jpg' (truncated)
                self.unread.add(index, f"unreadable image {skipped_name(repr(file.name), exc)}")
                continue
            if size is not None and rgb.shape[:2] != size:
                self.unread.add(
                    index, f"'{file.name}' is {rgb.shape[1]}x{rgb.shape[0]}, not {size[1]}x{size[0]}"
                )
                continue
            size, transparent = rgb.shape[:2], transparent + picture.transparent
            bgr = np.ascontiguousarray(rgb[..., ::-1])
            yield Frame(
                index, index / self.fps, torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255), bgr=bgr
            )
        if transparent:
            self.notes.append(f"{transparent} frame(s) with transparent pixels: composited over grey 114")


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
                (
                    o.visible >= MIN_VISIBLE,
                    GtObject(
                        o.class_name,
                        tuple(o.box),
                        o.distance_m,
                        o.angle_deg,
                        tuple(map(tuple, o.corners)),
                        o.object_id,
                    ),
                )  # fmt: skip
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
    source: str | Path,
    sticker: Artefact | None = None,
    patch: Artefact | None = None,
    seed=None,
    fps: float | None = None,
):
    """The source for what a user typed: a video file, a folder of frames or a scene spec (``sticker``
    and ``patch`` are rendered into scenes; recordings get them from :mod:`physadv.harness.insertion`).
    ``fps``: a recording's frame rate when its file's is wrong or missing (``--fps``; a folder of frames
    has none: 30 unless given); a scene has its own."""
    path = Path(source)
    if not path.exists():
        raise PhysadvError(
            f"source '{source}' does not exist (a video file, a folder of frames or a scene spec)"
        )
    if path.is_dir():
        return FolderSource(path) if fps is None else FolderSource(path, fps)
    suffix = path.suffix.lower()
    if suffix in SCENE_SUFFIXES:
        from physadv.scene.spec import load_spec

        spec = load_spec(path)
        if seed is not None:
            spec["seed"] = seed
        return SceneSource(spec, sticker, patch)
    if suffix in VIDEO_SUFFIXES:
        return VideoSource(path, fps)
    raise PhysadvError(
        f"cannot replay '{source}': give a video ({', '.join(VIDEO_SUFFIXES)}), a folder of frames or a "
        "scene spec (.yaml)"
    )
