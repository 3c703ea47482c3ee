"""A pinhole camera in a metric world.

World frame: X to the right of the road, Y up, Z along the road (direction of travel), metres;
the ground is the plane Y = 0. Image frame: u right, v down, pixels, origin at the top-left.
Yaw turns the camera left/right about Y (positive: towards +X), pitch up/down (positive: up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Intrinsics (resolution and horizontal field of view) and pose (position, yaw, pitch)."""

    width: int = 640
    height: int = 480
    hfov_deg: float = 60.0
    position: tuple[float, float, float] = (0.0, 1.4, 0.0)
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0

    @property
    def focal_px(self) -> float:
        """Focal length in pixels (square pixels)."""
        return self.width / 2 / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def rotation(self) -> np.ndarray:
        """World → camera rotation (camera axes: x right, y up, z forward)."""
        yaw, pitch = math.radians(self.yaw_deg), math.radians(self.pitch_deg)
        r_yaw = np.array([[math.cos(yaw), 0, -math.sin(yaw)], [0, 1, 0], [math.sin(yaw), 0, math.cos(yaw)]])
        r_pitch = np.array(
            [[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]]
        )
        return r_pitch @ r_yaw

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """``[N, 3]`` world points → ``[N, 3]`` camera coordinates (z = depth along the optical axis)."""
        return (np.asarray(points, float) - np.asarray(self.position)) @ self.rotation.T

    def project(self, points: np.ndarray) -> np.ndarray:
        """``[N, 3]`` world points → ``[N, 2]`` pixels (u, v). Points must be in front (z > 0)."""
        cam = self.to_camera(points)
        f = self.focal_px
        return np.stack(
            [f * cam[:, 0] / cam[:, 2] + self.width / 2, -f * cam[:, 1] / cam[:, 2] + self.height / 2], 1
        )

    def looking_at(self, target: tuple[float, float, float]) -> Camera:
        """The same camera turned to look at ``target``."""
        d = np.asarray(target, float) - np.asarray(self.position)
        yaw = math.degrees(math.atan2(d[0], d[2]))
        pitch = math.degrees(math.atan2(d[1], math.hypot(d[0], d[2])))
        return Camera(self.width, self.height, self.hfov_deg, self.position, yaw, pitch)


def plane_corners(
    centre: tuple[float, float, float], width_m: float, height_m: float, yaw_deg: float
) -> np.ndarray:
    """``[4, 3]`` world corners (top-left, top-right, bottom-right, bottom-left) of an upright
    rectangle centred at ``centre`` whose face looks along −Z rotated by ``yaw_deg`` about Y
    (towards traffic coming along +Z). Face-left is world −X when ``yaw_deg`` is 0."""
    yaw = math.radians(yaw_deg)
    right = np.array([math.cos(yaw), 0.0, math.sin(yaw)]) * width_m / 2
    up = np.array([0.0, 1.0, 0.0]) * height_m / 2
    c = np.asarray(centre, float)
    return np.stack([c - right + up, c + right + up, c + right - up, c - right - up])


def facing_normal(yaw_deg: float) -> np.ndarray:
    """Unit normal of a face with ``yaw_deg`` (pointing towards the viewer)."""
    yaw = math.radians(yaw_deg)
    return np.array([math.sin(yaw), 0.0, -math.cos(yaw)])


def viewing_angle_deg(camera_position, centre, yaw_deg: float) -> float:
    """Horizontal angle between the face's normal and the direction to the camera (0: head-on)."""
    to_cam = np.asarray(camera_position, float) - np.asarray(centre, float)
    to_cam[1] = 0.0
    n = facing_normal(yaw_deg)
    cos = float(np.dot(to_cam, n) / (np.linalg.norm(to_cam) + 1e-12))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))
