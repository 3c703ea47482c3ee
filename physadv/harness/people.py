"""People in a recording without ground truth: the model's own clean detections, linked over time
by Ultralytics' ByteTrack (Zhang et al. 2022) so each person keeps one id across frames.

physadv wraps models behind its own contract (:mod:`physadv.models.detector`), so the tracker class
is driven directly with physadv's detections (``ultralytics.trackers.byte_tracker.BYTETracker``
with Ultralytics' own ``bytetrack.yaml`` defaults), frame by frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace

import numpy as np
import torch

from physadv.data.groundtruth import GroundTruth, GtObject
from physadv.harness.sources import Frame, batched

# Ultralytics' bytetrack.yaml
BYTETRACK = dict(
    tracker_type="bytetrack",
    track_high_thresh=0.25,
    track_low_thresh=0.1,
    new_track_thresh=0.25,
    track_buffer=30,
    match_thresh=0.8,
    fuse_score=True,
)


class _Boxes:
    """Detections as ByteTrack reads them: ``conf``, ``cls``, ``xywh``, ``xyxy`` and boolean indexing."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray):
        self.xyxy, self.conf, self.cls = xyxy, conf, cls

    @property
    def xywh(self) -> np.ndarray:
        return np.concatenate(
            [(self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2, self.xyxy[:, 2:] - self.xyxy[:, :2]], 1
        )

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index) -> _Boxes:
        return _Boxes(self.xyxy[index], self.conf[index], self.cls[index])


def new_tracker(frame_rate: float = 30.0, **overrides):
    """A ByteTrack tracker with Ultralytics' defaults (``track_buffer`` frames at 30 fps)."""
    from ultralytics.trackers.byte_tracker import BYTETracker

    args = SimpleNamespace(**{**BYTETRACK, **overrides})
    args.track_buffer = max(1, round(args.track_buffer * frame_rate / 30))
    return BYTETracker(args)


def link_boxes(tracker, boxes: np.ndarray, scores: np.ndarray) -> list[tuple[int, tuple[float, ...], float]]:
    """One frame's person boxes (``[N, 4]`` xyxy, ``[N]`` scores) through the tracker → the
    confirmed tracks there: (id, box, score)."""
    tracks = tracker.update(
        _Boxes(boxes.astype(np.float32), scores.astype(np.float32), np.zeros(len(scores)))
    )
    return [(int(t[4]), tuple(float(v) for v in t[:4]), float(t[5])) for t in tracks]


def link_people(
    frames: Iterable[Frame], detector, person: int, fps: float, batch: int = 8, advance=None
) -> GroundTruth:
    """Every person the detector sees in ``frames``, linked over time: per frame index, a
    ``person`` :class:`GtObject` per confirmed track (its box and id)."""
    tracker = new_tracker(fps)
    truth: GroundTruth = {}
    for chunk in batched(frames, batch):
        found = detector.predict(torch.stack([f.image for f in chunk]), conf=BYTETRACK["track_low_thresh"])
        for frame, dets in zip(chunk, found, strict=True):
            own = dets.labels == person
            linked = link_boxes(tracker, dets.boxes[own].cpu().numpy(), dets.scores[own].cpu().numpy())
            truth[frame.index] = [GtObject("person", box, track_id=tid) for tid, box, _ in linked]
            if advance:
                advance(1)
    return fill_gaps(truth, BYTETRACK["track_buffer"])


def fill_gaps(truth: GroundTruth, longest: int) -> GroundTruth:
    """Where a track was lost for at most ``longest`` frames and found again, the person was still
    there: their box is interpolated across the gap, so the frames the detector missed count."""
    seen: dict[int, list[tuple[int, GtObject]]] = {}
    for index in sorted(truth):
        for obj in truth[index]:
            seen.setdefault(obj.track_id, []).append((index, obj))
    for frames in seen.values():
        for (a, first), (b, last) in zip(frames, frames[1:], strict=False):
            if 1 < b - a <= longest + 1:
                for index in range(a + 1, b):
                    w = (index - a) / (b - a)
                    box = tuple((1 - w) * p + w * q for p, q in zip(first.box, last.box, strict=True))
                    if index in truth:
                        truth[index].append(GtObject("person", box, track_id=first.track_id))
    return truth
