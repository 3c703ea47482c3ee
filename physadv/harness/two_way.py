"""A sign's small, early views corrected from its later, larger ones: the planar tracker run
forward, then again backwards in time from the frames where the sign was refined against its face.

The forward tracker (:class:`physadv.harness.tracking.PlanarTracker`) refines a sign against its
face as drawn to specification only once it is :data:`~physadv.harness.tracking.FACE_PX` pixels
or larger; below that it shows too little of its face, and every frame carries the error of the
user's mark (a box marked by hand is a fraction of a pixel off, which on a 27-pixel sign is about
1 %). The frames chain the sign's views together, so the later, refined views can correct the
earlier ones: from each of up to :data:`STARTS` refined frames, spread over those at most
:data:`START_BAND` times the size of the first refined one (the closest to the small frames), the
tracker runs backwards to the stretch's first frame (the last key frame, or the frame after the
sign was last refined), with that refined frame as its key; the corners of the passes are averaged
(each start's own refinement is a few tenths of a pixel off, and the average cancels much of it).

Only the corners of frames the forward pass found (``key`` or ``tracked``) change, and only where at
least one backward pass found the sign and the average stays within a tenth of the sign's size of
the forward corners; statuses and confidences are the forward pass's. The backward passes see
crops around the sign (grey, :data:`CROP_MARGIN`), kept only while the sign is small and at most
:data:`MAX_CROPS` of them (the oldest are let go: a sign that stays small for minutes keeps the forward
corners in its early frames), so memory stays flat on long, high-resolution recordings.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import cv2
import numpy as np

from physadv.harness.tracking import FACE_PX, UNIT, PlanarTracker, TrackPoint, _project, _size

STARTS = 6  # backward passes averaged …
START_BAND = 1.4  # … from refined frames up to this factor larger than the first refined one
CROP_MARGIN = (1.0, 64)  # a kept crop reaches this many sign sizes (at least this many pixels) beyond it
MAX_CROPS = 3000  # crops held at once (~100 s at 30 fps, ~25 KB each for a 30-pixel sign: ~75 MB)


@dataclass
class _View:
    """A frame as the backward pass needs it: the forward result, whether it was refined against the
    face, its size, and a grey crop around the sign (top-left ``origin``) in a frame of ``shape``."""

    point: TrackPoint
    refined: bool
    shape: tuple[int, int]
    crop: np.ndarray | None = None
    origin: tuple[int, int] = (0, 0)

    def canvas(self) -> np.ndarray:
        """The crop in a black frame of the recording's size."""
        image = np.zeros(self.shape, np.uint8)
        if self.crop is not None:
            x, y = self.origin
            image[y : y + self.crop.shape[0], x : x + self.crop.shape[1]] = self.crop
        return image


class TwoWayTracker:
    """:class:`PlanarTracker` forward, then backwards from refined frames over the small ones.

    Feed frames in order with :meth:`update`; :meth:`finish` returns every frame's point.
    """

    def __init__(self, keys: dict[int, np.ndarray], sign: str | None = None, max_crops: int = MAX_CROPS):
        self.forward = PlanarTracker(keys, sign)
        self.sign = sign
        self.views: list[_View] = []
        self.cropped: deque[int] = deque()  # positions of the views holding a crop, oldest first
        self.max_crops = max_crops
        self.keep_below = FACE_PX * START_BAND * 1.1  # crops are kept for signs smaller than this

    def update(self, index: int, image: np.ndarray) -> TrackPoint:
        """The forward pass's point for frame ``index`` (the final one comes from :meth:`finish`)."""
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        point = self.forward.update(index, gray)
        view = _View(point, point.found and self.forward.refined, gray.shape[:2])
        if point.found and _size(point.corners) < self.keep_below:
            size = _size(point.corners)
            margin = max(CROP_MARGIN[0] * size, CROP_MARGIN[1])
            x0, y0 = np.maximum(np.floor(point.corners.min(0) - margin), 0).astype(int)
            x1, y1 = np.ceil(point.corners.max(0) + margin).astype(int)
            view.crop, view.origin = gray[y0:y1, x0:x1].copy(), (int(x0), int(y0))
            self.cropped.append(len(self.views))
            if len(self.cropped) > self.max_crops:
                self.views[self.cropped.popleft()].crop = None
        self.views.append(view)
        return point

    def forward_points(self) -> list[TrackPoint]:
        """Every frame's point as the forward pass left it (complete once every frame was fed)."""
        return [v.point for v in self.views]

    def backward_frames(self) -> int:
        """How many frames the backward passes of :meth:`finish` read (its progress total)."""
        return sum(start - first + 1 for first, _, starts in self._stretches() for start in starts)

    def finish(self, advance=None) -> list[TrackPoint]:
        """Every frame's point, the small frames' corners corrected backwards; ``advance(1)`` is called
        per frame a backward pass reads (:meth:`backward_frames` in all)."""
        points = self.forward_points()
        for first, last, starts in self._stretches():
            for i, corners in self._backwards(first, last, starts, advance).items():
                points[i] = replace(points[i], corners=corners, box=self._box(corners, self.views[i].shape))
        return points

    def _stretches(self) -> list[tuple[int, int, list[int]]]:
        """(first, last, starts): positions of a stretch of unrefined frames to correct, and the
        positions of the refined frames after it to start from."""
        out, first, views = [], 0, self.views
        for i, view in enumerate(views):
            if not view.refined:
                first = i if view.point.status == "key" else first  # a key frame starts a stretch
                continue
            if i > first and view.crop is not None and any(v.point.found for v in views[first:i]):
                band = [i]  # the first refined frame after the stretch, and the refined ones after it
                while band[-1] + 1 < len(views) and self._in_band(views[band[-1] + 1], view):
                    band.append(band[-1] + 1)
                picks = np.linspace(0, len(band) - 1, min(STARTS, len(band))).round().astype(int)
                out.append((first, i - 1, [band[k] for k in sorted(set(picks))]))
            first = i + 1
        return out

    @staticmethod
    def _in_band(view: _View, first: _View) -> bool:
        return (
            view.refined
            and view.crop is not None
            and _size(view.point.corners) <= START_BAND * _size(first.point.corners)
        )

    def _backwards(self, first: int, last: int, starts: list[int], advance=None) -> dict[int, np.ndarray]:
        """Average corners of the backward passes from ``starts`` over positions ``first``…``last``."""
        found: dict[int, list[np.ndarray]] = {}
        for start in starts:
            tracker = PlanarTracker({0: self.views[start].point.corners}, self.sign)
            for step, i in enumerate(range(start, first - 1, -1)):
                point = tracker.update(step, self.views[i].canvas())
                if advance is not None:
                    advance(1)
                if i <= last and point.found and self.views[i].point.found:
                    found.setdefault(i, []).append(point.corners)
        out = {}
        for i, corners in found.items():
            mean = np.mean(corners, axis=0).astype(np.float32)
            forward = self.views[i].point.corners
            if np.abs(mean - forward).max() <= 0.1 * _size(forward):
                out[i] = mean
        return out

    def _box(self, corners: np.ndarray, shape: tuple[int, int]) -> tuple[float, float, float, float]:
        outline = _project(
            cv2.getPerspectiveTransform(UNIT, corners).astype(np.float64), self.forward.outline
        )
        x1, y1 = np.clip(outline.min(0), 0, None)
        x2, y2 = np.minimum(outline.max(0), [shape[1], shape[0]])
        return float(x1), float(y1), float(x2), float(y2)
