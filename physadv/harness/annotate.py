"""The annotated replay video: ground truth, the model's boxes with labels and scores, and each
frame's verdict, written as frames arrive (flat memory)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from physadv.errors import PhysadvError
from physadv.harness.sources import Frame
from physadv.scene.video import to_bgr8

# BGR
GREEN, ORANGE, RED, WHITE, CYAN = (80, 200, 60), (0, 150, 255), (60, 60, 230), (255, 255, 255), (230, 200, 0)
VERDICT_COLOUR = {"true_positive": GREEN, "misclassified": ORANGE, "disappeared": RED}


def draw_label(image: np.ndarray, text: str, origin: tuple[int, int], colour, scale: float = 0.45) -> None:
    x, y = origin
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    y = max(y, h + 2)
    cv2.rectangle(image, (x, y - h - 3), (x + w + 4, y + base), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 2, y - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def draw_box(image, box, colour, thickness=2) -> None:
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)


def draw_detections(
    image: np.ndarray, detections, names, conf: float, classes=None, thickness: int = 1
) -> int:
    """Boxes with label and score (cyan) of the detections at or above ``conf`` (only ``classes``,
    if given) on a BGR image, in place; returns how many were drawn."""
    keep = detections.scores >= conf
    if classes is not None:
        keep &= torch.isin(detections.labels, torch.as_tensor(list(classes)))
    for box, label, score in zip(
        detections.boxes[keep], detections.labels[keep], detections.scores[keep], strict=True
    ):
        draw_box(image, box, CYAN, thickness)
        draw_label(
            image,
            f"{names[int(label)]} {float(score):.2f}",
            (round(float(box[0])), round(float(box[1])) - 2),
            CYAN,
        )
    return int(keep.sum())


def draw_frame(frame: Frame, truth, rows: list[dict], detections, names, conf: float) -> np.ndarray:
    """The frame with ground truth (white), detections ≥ ``conf`` (cyan, label and score) and the
    verdict of each judged object (coloured by verdict) → BGR uint8."""
    out = frame.bgr.copy() if frame.bgr is not None else to_bgr8(frame.image)
    index = frame.index
    if detections is not None:
        draw_detections(out, detections, names, conf)
    status = []
    for obj, row in zip(truth or [], rows, strict=False):
        if "verdict" in row:
            colour, said = VERDICT_COLOUR[row["verdict"]], row["verdict"].replace("_", " ")
        else:
            colour = GREEN if row["correct"] else RED
            said = f"reads '{names[row['label']]}' {row['score']:.2f}"
        draw_box(out, obj.box, WHITE, 1)
        draw_box(out, obj.box, colour, 2)
        status.append((said, colour))
    draw_label(out, f"frame {index}", (4, 16), WHITE)
    for k, (said, colour) in enumerate(status[:4]):
        draw_label(out, said, (4, 36 + 20 * k), colour)
    return out


class VideoOut:
    """An mp4 written frame by frame; opened on the first frame (its size).

    With ``background``, frames handed to :meth:`submit` are drawn and encoded in a thread of their
    own, in order, while the caller goes on (OpenCV releases the GIL while it draws and encodes):
    at most ``depth`` frames wait, so memory stays flat. An error in that thread is raised by the
    next :meth:`submit` or by :meth:`close`; :meth:`close` waits for every frame handed over.
    """

    def __init__(self, path: Path, fps: float, background: bool = False, depth: int = 16):
        self.path, self.fps, self.writer = Path(path), fps, None
        self.error: BaseException | None = None
        self._queue: queue.Queue | None = queue.Queue(depth) if background else None
        self._thread = None
        if background:
            self._thread = threading.Thread(target=self._work, name=f"video {self.path.name}", daemon=True)
            self._thread.start()

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            h, w = image.shape[:2]
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self.writer.isOpened():
                raise PhysadvError(f"cannot write video '{self.path}'")
        self.writer.write(image)

    def submit(self, draw: Callable[[], np.ndarray]) -> None:
        """Write the frame ``draw()`` returns: later, in the writer's thread (``background``), or now."""
        if self._queue is None:
            self.write(draw())
            return
        if self.error is not None:
            raise self.error
        self._queue.put(draw)

    def _work(self) -> None:
        while (draw := self._queue.get()) is not None:
            if self.error is None:  # after an error, only drain (the caller learns of it and stops)
                try:
                    self.write(draw())
                except BaseException as e:  # noqa: BLE001  (handed to the caller's thread)
                    self.error = e

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self.writer is not None:
            self.writer.release()
        if self.error is not None:
            raise self.error


def side_by_side(left: Path, right: Path, out: Path, fps: float, titles: tuple[str, str]) -> Path | None:
    """One video of two annotated videos of the same frames side by side (``titles`` on top), as
    long as the shorter; None if either cannot be read."""
    a, b = cv2.VideoCapture(str(left)), cv2.VideoCapture(str(right))
    video = VideoOut(out, fps)
    try:
        while True:
            ok_a, frame_a = a.read()
            ok_b, frame_b = b.read()
            if not (ok_a and ok_b):
                break
            for image, title in ((frame_a, titles[0]), (frame_b, titles[1])):
                draw_label(image, title, (image.shape[1] // 2 - 30, 16), WHITE)
            video.write(np.hstack([frame_a, frame_b]))
    finally:
        a.release()
        b.release()
        video.close()
    return out if video.writer is not None else None
