"""Ground truth from one marked sign: follow its plane through a video as a homography.

A sign is a plane, so where it is in a frame is one homography ``H`` (3×3) from the sign's face
coordinates — the unit square, (0, 0) the top-left and (1, 1) the bottom-right corner of its face
rectangle — to frame pixels. Each frame:

1. predict: pyramidal Lucas–Kanade flow of corner features on the sign from the last frame, checked
   forward and backward, and a RANSAC fit (``cv2.estimateAffine2D``) of their motion;
2. align: ECC (Evangelidis & Psarakis 2008, ``cv2.findTransformECC``, full homography) registers a
   rectified template of the sign to the frame from the prediction, to a fraction of a pixel; its
   correlation coefficient is the frame's tracking confidence;
3. the template is taken again from the frame each time the sign's on-screen size passes 1.4× the
   template's (a sign that grows tenfold is matched at its own resolution), only from frames that
   aligned well, so errors do not pile up;
4. below :data:`MIN_CONFIDENCE` the sign is *lost* (occluded, blurred out); each later frame tries
   to find it again: SIFT features of the best template matched to the frame, a RANSAC homography
   (``cv2.findHomography``), verified by ECC;
5. when less than :data:`MIN_IN_FRAME` of the sign is inside the frame it is *outside*.

Key frames (the user's marked corners or box) reset the homography where given. Frames where the
sign is too small to refine against its face are corrected afterwards, backwards in time from the
refined ones (:mod:`physadv.harness.two_way`, what ``physadv track`` runs). The tracker looks
only at pixels, never at the model under test, so an attack that hides the sign from the model does
not hide it from the ground truth. Corners are pixels, ordered top-left, top-right, bottom-right,
bottom-left (as :mod:`physadv.scene.compose`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

MIN_CONFIDENCE = 0.7  # ECC correlation below this: the sign is lost in this frame
REFRESH_CONFIDENCE = 0.85  # the template is re-taken only from frames aligned at least this well
REFRESH_GROWTH = 1.4  # … when the sign's size has changed by this factor since the last template
MIN_IN_FRAME = 0.3  # share of the sign inside the frame below which it has left
TEMPLATE_PX = (32, 160)  # template side: at least (upsampled small signs), at most (speed)
HOMOGRAPHY_PX = 80  # signs this size or larger get a full homography from ECC; smaller, an affine one
FACE_PX = 56  # smaller signs show too little of the drawn face to align to it
FACE_INSIDE = 1.02  # the face template is compared within its outline (and the edge's first pixel)
FACE_CONFIDENCE = 0.8  # the refinement against the drawn face is kept only where it correlates this well
UNIT = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-5)


@dataclass
class TrackPoint:
    """The sign in one frame. ``status``: ``key`` (marked by the user), ``tracked``, ``lost`` or
    ``outside``; ``corners`` ``[4, 2]`` frame pixels (None when lost or outside); ``box`` the
    bounding box of the sign's outline (x1, y1, x2, y2, clipped to the frame); ``confidence`` the
    ECC correlation in [0, 1] (1 on key frames)."""

    index: int
    status: str
    corners: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    confidence: float = 0.0

    @property
    def found(self) -> bool:
        return self.status in ("key", "tracked")


def corners_from_box(box) -> np.ndarray:
    """``[4, 2]`` corners (TL, TR, BR, BL) of an axis-aligned box x1, y1, x2, y2."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)


@functools.lru_cache(maxsize=32)
def face_outline(sign: str | None) -> np.ndarray:
    """The sign's shape as a polygon ``[K, 2]`` in face coordinates (unit square): the stop sign's
    octagon, a yield triangle, …; the whole square for an unknown sign."""
    if sign is None:
        return UNIT.copy()
    from physadv.scene.signs import SIGNS, render_face

    if sign not in SIGNS:
        return UNIT.copy()
    alpha = (render_face(sign)[..., 3] > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(alpha, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))[:, 0].astype(np.float32)
    poly = cv2.approxPolyDP(hull, 1.0, True)[:, 0]
    h, w = alpha.shape
    return (poly / np.array([w, h], np.float32)).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _face_gray(sign: str | None) -> np.ndarray | None:
    """The sign's face as drawn to specification, grey levels 0–255 (float32), transparent parts
    mid-grey; None for a sign physadv does not know."""
    from physadv.scene.signs import SIGNS, render_face

    if sign not in SIGNS:
        return None
    face = render_face(sign)
    rgb = face[..., :3] * face[..., 3:] + 0.5 * (1 - face[..., 3:])
    return (cv2.cvtColor((rgb * 255).astype(np.float32), cv2.COLOR_RGB2GRAY)).astype(np.float32)


def _project(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float64), h)[:, 0].astype(np.float32)


def _scale(side: float) -> np.ndarray:
    """Template pixels → face coordinates for a ``side``-pixel template."""
    return np.diag([1 / side, 1 / side, 1.0])


def _size(corners: np.ndarray) -> float:
    """The sign's on-screen size: the square root of its quad's area, pixels."""
    return math.sqrt(max(abs(cv2.contourArea(corners.astype(np.float32))), 1.0))


def _share_inside(h: np.ndarray, outline: np.ndarray, shape: tuple[int, int]) -> float:
    """Share of the sign's outline area inside a frame of ``shape`` (H, W)."""
    poly = _project(h, outline)
    area = abs(cv2.contourArea(poly))
    if area < 1:
        return 0.0
    frame = np.array([[0, 0], [shape[1], 0], [shape[1], shape[0]], [0, shape[0]]], np.float32)
    inside, _ = cv2.intersectConvexConvex(poly, frame)
    return float(inside) / area


class PlanarTracker:
    """Follows one planar sign through frames given in order (BGR or grey uint8 images).

    Args:
        keys: frame index → ``[4, 2]`` corners marked by the user (at least one); tracking starts
            at the first key frame, and later key frames reset it.
        sign: the sign's class (``stop``, …) for its outline (None: the whole face rectangle).
    """

    def __init__(self, keys: dict[int, np.ndarray], sign: str | None = None):
        if not keys:
            raise ValueError("the tracker needs at least one key frame")
        self.keys = {int(k): np.asarray(v, np.float32).reshape(4, 2) for k, v in keys.items()}
        self.outline = face_outline(sign)
        self.face = _face_gray(sign)
        self.h: np.ndarray | None = None  # face → frame of the last frame where the sign was found
        self.template: np.ndarray | None = None
        self.template_mask: np.ndarray | None = None
        self.template_side = 0
        self.template_size = 0.0  # on-screen size when the template was taken
        self.best: tuple[np.ndarray, int] | None = None  # the largest good template, to re-find the sign
        self.previous: np.ndarray | None = None  # last grey frame
        self.motion = np.eye(3)  # the sign's last frame-to-frame motion (a homography of the frame)
        self.followed = False  # whether the sign was found in the last frame
        self.left = False  # whether the sign has left the frame (and not been found since)
        self.missed = 0  # frames since the sign was last found
        self.refined = False  # whether the last frame's corners were refined against the drawn face
        self.sift = cv2.SIFT_create(nfeatures=1500)

    # --- per frame -----------------------------------------------------------------------------

    def update(self, index: int, image: np.ndarray) -> TrackPoint:
        """Where the sign is in frame ``index`` (frames must come in order)."""
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        self.refined = False
        try:
            return self._update(index, gray)
        finally:
            self.previous = gray

    def _update(self, index: int, gray: np.ndarray) -> TrackPoint:
        if index in self.keys:
            self.h = cv2.getPerspectiveTransform(UNIT, self.keys[index]).astype(np.float64)
            self.h = self._to_face(gray, self.h)  # a box marked by hand, made exact where the sign is known
            self.motion, self.followed, self.left, self.missed = np.eye(3), True, False, 0
            self._take_template(gray)
            return self._point(index, "key", 1.0, gray.shape)
        if self.h is None:  # before the first key frame
            return TrackPoint(index, "lost")
        predicted = self._predict(gray)
        if self.left or _share_inside(predicted, self.outline, gray.shape) < MIN_IN_FRAME:
            self.left = True  # until it is found again
            return self._refind(index, gray, "outside")
        h, rho = self._align(gray, predicted)
        if rho < MIN_CONFIDENCE:
            return self._refind(index, gray, "lost")
        h = self._to_face(gray, h)
        self.motion = h @ np.linalg.inv(self.h) if self.followed else self.motion
        self.h, self.followed, self.missed = h, True, 0
        if rho >= REFRESH_CONFIDENCE and not (
            1 / REFRESH_GROWTH < _size(_project(h, UNIT)) / self.template_size < REFRESH_GROWTH
        ):
            self._take_template(gray)
        if _share_inside(h, self.outline, gray.shape) < MIN_IN_FRAME:
            return TrackPoint(index, "outside")
        return self._point(index, "tracked", rho, gray.shape)

    def _point(self, index: int, status: str, rho: float, shape) -> TrackPoint:
        corners = _project(self.h, UNIT)
        outline = _project(self.h, self.outline)
        x1, y1 = np.clip(outline.min(0), 0, None)
        x2, y2 = np.minimum(outline.max(0), [shape[1], shape[0]])
        return TrackPoint(index, status, corners, (float(x1), float(y1), float(x2), float(y2)), float(rho))

    # --- the steps -----------------------------------------------------------------------------

    def _mask(self, h: np.ndarray, shape, shrink: float = 0.9) -> np.ndarray:
        """The sign's outline (shrunk towards its centre, away from the background) in frame pixels."""
        mask = np.zeros(shape, np.uint8)
        poly = _project(h, 0.5 + (self.outline - 0.5) * shrink)
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 255)
        return mask

    def _predict(self, gray: np.ndarray) -> np.ndarray:
        """The homography moved by the flow of features on the sign since the last frame (if the
        flow cannot be trusted: by the sign's last motion, so a sign leaving the frame keeps going)."""
        if not self.followed:
            return self.h
        coasting = self.motion @ self.h
        if self.previous is None or self.previous.shape != gray.shape:
            return coasting
        points = cv2.goodFeaturesToTrack(
            self.previous, 200, 0.01, 2, mask=self._mask(self.h, gray.shape), blockSize=3
        )
        if points is None or len(points) < 6:
            return coasting
        lk = dict(winSize=(15, 15), maxLevel=3)
        moved, ok, _ = cv2.calcOpticalFlowPyrLK(self.previous, gray, points, None, **lk)
        back, ok_back, _ = cv2.calcOpticalFlowPyrLK(gray, self.previous, moved, None, **lk)
        good = (ok[:, 0] == 1) & (ok_back[:, 0] == 1) & (np.linalg.norm(back - points, axis=2)[:, 0] < 1.0)
        if good.sum() < 6:
            return coasting
        motion, inliers = cv2.estimateAffine2D(
            points[good], moved[good], method=cv2.RANSAC, ransacReprojThreshold=1.5
        )
        if motion is None or inliers.sum() < 5:
            return coasting
        return np.vstack([motion, [0, 0, 1]]) @ self.h

    def _align(
        self, gray: np.ndarray, h: np.ndarray, template: np.ndarray | None = None, inside: float | None = None
    ) -> tuple[np.ndarray, float]:
        """ECC from ``h``: the refined homography and its correlation (0 if ECC fails).

        The frame around the sign is rectified by ``h`` into the template's coordinates (with a
        margin), and ECC finds the correction there: an affine one while the sign is small (its
        perspective is too weakly seen to estimate), a full homography once it is
        :data:`HOMOGRAPHY_PX` or larger. ``template``: the current one if None; ``inside``: compare
        only within the sign's outline scaled by this (None: the whole face rectangle)."""
        template = self.template if template is None else template
        side = template.shape[0]
        margin = side // 4
        size = _size(_project(h, UNIT))
        # rectified pixel (u, v) ← face ((u - margin) / side, …) → frame
        to_frame = h @ _scale(side) @ np.array([[1, 0, -margin], [0, 1, -margin], [0, 0, 1]], np.float64)
        span = side + 2 * margin
        rectified = cv2.warpPerspective(
            gray, to_frame, (span, span), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0
        ).astype(np.float32)
        valid = cv2.warpPerspective(
            np.full(gray.shape, 255, np.uint8), to_frame, (span, span),
            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0,
        )  # fmt: skip
        if inside is not None:
            shape = np.zeros_like(valid)
            poly = margin + (0.5 + (self.outline - 0.5) * inside) * side
            cv2.fillPoly(shape, [np.round(poly).astype(np.int32)], 255)
            valid = cv2.bitwise_and(valid, shape)
        motion = cv2.MOTION_HOMOGRAPHY if size >= HOMOGRAPHY_PX else cv2.MOTION_AFFINE
        start = np.array([[1, 0, margin], [0, 1, margin], [0, 0, 1]], np.float32)  # template → rectified
        warp = start if motion == cv2.MOTION_HOMOGRAPHY else start[:2].copy()
        try:
            rho, warp = cv2.findTransformECC(template, rectified, warp, motion, ECC_CRITERIA, valid, 3)
        except cv2.error:
            return h, 0.0
        correction = warp.astype(np.float64) if warp.shape[0] == 3 else np.vstack([warp, [0, 0, 1]])
        refined = to_frame @ correction @ np.linalg.inv(_scale(side))
        if not np.isfinite(refined).all() or abs(refined[2, 2]) < 1e-12:
            return h, 0.0
        return refined / refined[2, 2], float(rho)

    def _to_face(self, gray: np.ndarray, h: np.ndarray) -> np.ndarray:
        """``h`` refined against the sign's own face as drawn to its specification (a template that
        never drifts), where the sign is known and the face explains the frame well; else ``h``."""
        size = _size(_project(h, UNIT))
        if self.face is None or size < FACE_PX:
            return h
        side = int(np.clip(round(size), *TEMPLATE_PX))
        template = cv2.resize(self.face, (side, side), interpolation=cv2.INTER_AREA)
        refined, rho = self._align(gray, h, template, inside=FACE_INSIDE)
        # a resized pixel u shows the face at (u + 0.5) / side (OpenCV's pixel centres), where _align
        # reads face u / side (as in templates cut from frames): without this the corners sit half a
        # template pixel (about half a frame pixel) inside the sign
        refined = refined @ np.array([[1, 0, -0.5 / side], [0, 1, -0.5 / side], [0, 0, 1]])
        refined = refined / refined[2, 2]
        moved = np.abs(_project(refined, UNIT) - _project(h, UNIT)).max()
        self.refined = rho >= FACE_CONFIDENCE and moved <= 0.1 * size
        return refined if self.refined else h

    def _take_template(self, gray: np.ndarray) -> None:
        size = _size(_project(self.h, UNIT))
        side = int(np.clip(round(size), *TEMPLATE_PX))
        warp = self.h @ _scale(side)
        self.template = cv2.warpPerspective(
            gray,
            warp,
            (side, side),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        ).astype(np.float32)
        self.template_side, self.template_size = side, size
        self.template_mask = np.zeros((side, side), np.uint8)
        inner = np.round((0.5 + (self.outline - 0.5) * 0.92) * side).astype(np.int32)
        cv2.fillPoly(self.template_mask, [inner], 255)
        if self.best is None or side >= self.best[1]:
            self.best = (self.template.astype(np.uint8), side)

    def _refind(self, index: int, gray: np.ndarray, status: str) -> TrackPoint:
        """Look for the sign again: where it was last seen (a short occlusion), then anywhere in the
        frame by SIFT features of the largest good template and of the drawn face (RANSAC), each
        verified by ECC."""
        followed, self.followed = self.followed, False
        self.missed += 1
        coasting = np.linalg.matrix_power(self.motion, self.missed) @ self.h
        guesses = [] if self.left else [coasting, self.h]
        for template in ([self.best] if self.best else []) + (
            [(self.face, self.face.shape[0])] if self.face is not None else []
        ):
            found = self._match(gray, *template)
            if found is not None:
                guesses.append(found)
        for guess in guesses:
            h, rho = self._align(gray, guess)
            if rho >= MIN_CONFIDENCE and _share_inside(h, self.outline, gray.shape) >= MIN_IN_FRAME:
                h = self._to_face(gray, h)
                self.motion = h @ np.linalg.inv(self.h) if followed else self.motion  # a jump the flow missed
                self.h, self.followed, self.left, self.missed = h, True, False, 0
                return self._point(index, "tracked", rho, gray.shape)
        return TrackPoint(index, status)

    def _match(self, gray: np.ndarray, template: np.ndarray, side: int) -> np.ndarray | None:
        """Face → frame homography from SIFT matches of ``template`` (``side`` pixels, face
        coordinates scaled by it) in the frame, RANSAC; None if too few agree."""
        mask = np.zeros((side, side), np.uint8)
        cv2.fillPoly(mask, [np.round((0.5 + (self.outline - 0.5) * 0.95) * side).astype(np.int32)], 255)
        kt, dt = self.sift.detectAndCompute(np.clip(template, 0, 255).astype(np.uint8), mask)
        kf, df = self.sift.detectAndCompute(gray, None)
        if dt is None or df is None or len(kt) < 8 or len(kf) < 8:
            return None
        pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(dt, df, k=2)
        good = [m for m, *rest in pairs if rest and m.distance < 0.75 * rest[0].distance]
        if len(good) < 8:
            return None
        src = np.float32([kt[m.queryIdx].pt for m in good])
        dst = np.float32([kf[m.trainIdx].pt for m in good])
        found, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
        if found is None or inliers.sum() < 8:
            return None
        return found @ np.linalg.inv(_scale(side))
