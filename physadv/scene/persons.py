"""Procedural people: articulated figures with varied build, pose, clothing, skin and hair.

A person is a sprite (RGBA) standing on its feet, seen from the front or the back, drawn with
human proportions (head ≈ 1/7.5 of the height). The sprite knows where its torso is, so a patch
can be worn there and follow exactly the same geometry when the sprite is placed in a scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SKIN = [(255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 30)]
HAIR = [(20, 15, 10), (60, 40, 25), (110, 75, 40), (190, 160, 110), (130, 130, 130), (160, 60, 30)]
CLOTH = [
    (200, 40, 40),
    (40, 70, 160),
    (30, 30, 35),
    (230, 230, 225),
    (60, 120, 60),
    (220, 180, 40),
    (120, 80, 150),
    (150, 110, 80),
    (90, 90, 95),
    (240, 120, 40),
    (40, 150, 170),
    (180, 60, 110),
]
TROUSERS = [(30, 40, 80), (25, 25, 30), (110, 100, 80), (70, 70, 75), (50, 60, 110), (140, 120, 90)]


@dataclass
class PersonSprite:
    """A drawn person.

    Attributes:
        rgba: ``[H, W, 4]`` float32 in [0, 1]; the feet touch the bottom row, centred.
        height_m: the person's standing height in metres (the sprite's pixel height spans it).
        torso: ``(x0, y0, x1, y1)`` sprite pixels of the chest/belly area where a patch is worn.
    """

    rgba: np.ndarray
    height_m: float
    torso: tuple[int, int, int, int]

    @property
    def width_m(self) -> float:
        return self.height_m * self.rgba.shape[1] / self.rgba.shape[0]

    @property
    def patch_centre(self) -> tuple[float, float]:
        """Where a patch is worn: 2/5 down the torso, centred (fractions of the sprite: x right, y down).
        :data:`physadv.scene.wear.TORSO_Y` is this height for any person drawn here (2.6 of 7.5 heads)."""
        x0, y0, x1, y1 = self.torso
        h, w = self.rgba.shape[:2]
        return (x0 + x1) / 2 / w, (y0 + 0.4 * (y1 - y0)) / h


def _limb(draw: ImageDraw.ImageDraw, a, b, width: float, fill) -> None:
    draw.line([a, b], fill=fill, width=max(1, round(width)))
    r = width / 2
    for x, y in (a, b):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)


def _joint(origin, length: float, angle_deg: float):
    a = math.radians(angle_deg)
    return origin[0] + length * math.sin(a), origin[1] + length * math.cos(a)


def draw_person(rng: np.random.Generator, height_px: int = 320) -> PersonSprite:
    """A random person ``height_px`` tall: build, pose (walking, standing, arms), clothing, skin, hair."""
    height_m = float(rng.uniform(1.55, 1.95))
    ss = 2  # supersampling
    hp = height_px * ss
    u = hp / 7.5  # one head height, in pixels
    build = float(rng.uniform(0.85, 1.2))
    width = round(hp * 0.55)
    image = Image.new("RGBA", (width, hp), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    cx = width / 2
    skin = SKIN[rng.integers(len(SKIN))]
    shirt = CLOTH[rng.integers(len(CLOTH))]
    trousers = TROUSERS[rng.integers(len(TROUSERS))]
    shoes = (int(rng.integers(10, 60)),) * 3
    long_sleeves = bool(rng.random() < 0.6)
    back_view = bool(rng.random() < 0.3)
    stride = float(rng.uniform(0, 25))  # leg swing, degrees
    arm_swing = float(rng.uniform(-12, 12))

    shoulder_y, hip_y, foot_y = 1.45 * u, 3.9 * u, hp - 0.15 * u
    shoulder_half, hip_half = 0.95 * u * build, 0.7 * u * build
    limb_w = 0.5 * u * build
    # legs first (behind the torso)
    for side, swing in ((-1, stride), (1, -stride)):
        hip = (cx + side * hip_half * 0.55, hip_y)
        knee = _joint(hip, 1.85 * u, swing * 0.8 + side * 2)
        foot = _joint(knee, 1.85 * u, swing * 0.4 + side * 2)
        foot = (foot[0], min(foot[1], foot_y))
        _limb(draw, hip, knee, limb_w * 1.15, trousers)
        _limb(draw, knee, foot, limb_w, trousers)
        draw.ellipse(
            [foot[0] - 0.35 * u, foot[1] - 0.15 * u, foot[0] + 0.35 * u, foot[1] + 0.15 * u], fill=shoes
        )
    # torso: a tapered polygon from shoulders to hips, with the belt line
    torso_poly = [
        (cx - shoulder_half, shoulder_y),
        (cx + shoulder_half, shoulder_y),
        (cx + hip_half, hip_y + 0.25 * u),
        (cx - hip_half, hip_y + 0.25 * u),
    ]
    draw.polygon(torso_poly, fill=shirt)
    draw.ellipse(
        [
            cx - shoulder_half - 0.2 * u,
            shoulder_y - 0.25 * u,
            cx + shoulder_half + 0.2 * u,
            shoulder_y + 0.55 * u,
        ],
        fill=shirt,
    )
    # arms
    for side, swing in ((-1, arm_swing), (1, -arm_swing)):
        shoulder = (cx + side * (shoulder_half - 0.1 * u), shoulder_y + 0.2 * u)
        outward = side * float(rng.uniform(6, 28))
        elbow = _joint(shoulder, 1.35 * u, outward + swing)
        hand = _joint(elbow, 1.25 * u, outward * float(rng.uniform(0.3, 1.2)) + swing)
        _limb(draw, shoulder, elbow, limb_w * 0.9, shirt)
        _limb(draw, elbow, hand, limb_w * 0.8, shirt if long_sleeves else skin)
        r = 0.22 * u
        draw.ellipse([hand[0] - r, hand[1] - r, hand[0] + r, hand[1] + r], fill=skin)
    # neck, head, hair
    draw.rectangle([cx - 0.22 * u, 0.85 * u, cx + 0.22 * u, shoulder_y + 0.1 * u], fill=skin)
    head = [cx - 0.42 * u, 0.02 * u, cx + 0.42 * u, 1.0 * u]
    hair = HAIR[rng.integers(len(HAIR))]
    draw.ellipse(head, fill=hair if back_view else skin)
    if not back_view:
        draw.chord(
            [head[0] - 0.03 * u, head[1] - 0.03 * u, head[2] + 0.03 * u, head[1] + 0.75 * u],
            180,
            360,
            fill=hair,
        )
        for ex in (-0.16, 0.16):
            draw.ellipse([cx + (ex - 0.05) * u, 0.5 * u, cx + (ex + 0.05) * u, 0.58 * u], fill=(35, 25, 20))
    sprite = (
        np.asarray(
            image.filter(ImageFilter.GaussianBlur(ss * 0.5)).resize((width // ss, height_px), Image.LANCZOS),
            np.float32,
        )
        / 255
    )
    sprite = _shade(sprite, rng)
    torso = (
        round((cx - shoulder_half * 0.8) / ss),
        round((shoulder_y + 0.35 * u) / ss),
        round((cx + shoulder_half * 0.8) / ss),
        round((hip_y - 0.1 * u) / ss),
    )
    return PersonSprite(sprite, height_m, torso)


def _shade(sprite: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round the figure with side fall-off and light from above, and add cloth-like grain."""
    h, w = sprite.shape[:2]
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    light = float(rng.uniform(-0.4, 0.4))
    shading = (1.0 - 0.35 * (x - light) ** 2) * (1.05 - 0.15 * y)
    grain = 1 + rng.normal(0, 0.03, (h, w, 1)).astype(np.float32)
    out = sprite.copy()
    out[..., :3] = np.clip(sprite[..., :3] * shading * grain, 0, 1)
    return out
