"""Plane shapes of signs, in millimetres on the sign face (origin top-left, x right, y down)."""

from __future__ import annotations

import math

import numpy as np


def regular_polygon_mm(sides: int, width_mm: float, rotation_deg: float = 0.0) -> np.ndarray:
    """``[sides, 2]`` vertices of a regular polygon whose flat-to-flat width is ``width_mm``
    (for an octagon: the US stop sign's 750 mm), centred in a ``width_mm`` square."""
    apothem = width_mm / 2
    radius = apothem / math.cos(math.pi / sides)
    start = math.pi / sides + math.radians(rotation_deg)  # a flat edge on top
    angles = start + np.arange(sides) * 2 * math.pi / sides - math.pi / 2
    return np.stack([width_mm / 2 + radius * np.cos(angles), width_mm / 2 + radius * np.sin(angles)], axis=1)


def stop_sign_outline_mm(width_mm: float = 750.0) -> np.ndarray:
    """The stop sign's octagon (MUTCD R1-1: 30 in / 750 mm across the flats)."""
    return regular_polygon_mm(8, width_mm)
