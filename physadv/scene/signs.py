"""Traffic-sign faces drawn to their US (MUTCD) dimensions, LISA-style classes.

A face is an RGBA image of the sign's bounding rectangle; alpha is the sign's shape. Face
coordinates are millimetres from the top-left corner (x right, y down); ``px_per_mm`` sets the
resolution.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from physadv.scene.geometry import regular_polygon_mm

RED = (190, 30, 45)
WHITE = (242, 242, 240)
BLACK = (22, 22, 22)
YELLOW = (250, 200, 20)
SUPERSAMPLE = 3


@dataclass(frozen=True)
class SignSpec:
    """A sign class: its name (as classifiers and users call it) and face size in millimetres."""

    name: str
    width_mm: float
    height_mm: float
    draw: Callable[[ImageDraw.ImageDraw, float], None]

    @property
    def width_m(self) -> float:
        return self.width_mm / 1000

    @property
    def height_m(self) -> float:
        return self.height_mm / 1000


@functools.lru_cache(maxsize=32)
def _bold(size_px: int) -> ImageFont.FreeTypeFont:
    from physadv.offline import bundled_font

    font = bundled_font()
    bold = font.with_name("DejaVuSans-Bold.ttf") if font else None
    return ImageFont.truetype(str(bold if bold and bold.is_file() else font), max(1, size_px))


def _text(
    draw: ImageDraw.ImageDraw,
    s: float,
    text: str,
    centre_mm: tuple[float, float],
    cap_mm: float,
    fill,
    width_mm: float | None = None,
) -> None:
    """Centred text whose capital letters are ``cap_mm`` tall (optionally squeezed to ``width_mm``)."""
    font = _bold(round(cap_mm * s / 0.73))
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    w, h = x1 - x0, y1 - y0
    if width_mm is not None and w > width_mm * s:
        font = _bold(round(cap_mm * s / 0.73 * width_mm * s / w))
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        w, h = x1 - x0, y1 - y0
    draw.text((centre_mm[0] * s - w / 2 - x0, centre_mm[1] * s - h / 2 - y0), text, font=font, fill=fill)


def _poly(draw, s, pts_mm, fill) -> None:
    draw.polygon([(x * s, y * s) for x, y in pts_mm], fill=fill)


def _inset(poly: np.ndarray, mm: float) -> np.ndarray:
    """Shrink a convex polygon towards its centroid so its edges move in by ``mm``."""
    c = poly.mean(0)
    edges = zip(poly, np.roll(poly, -1, 0), strict=True)
    apothem = min(
        abs((b - a)[0] * (c - a)[1] - (b - a)[1] * (c - a)[0]) / np.linalg.norm(b - a) for a, b in edges
    )
    return c + (poly - c) * (apothem - mm) / apothem


def _stop(draw, s):
    octagon = regular_polygon_mm(8, 750)
    _poly(draw, s, octagon, WHITE)
    _poly(draw, s, _inset(octagon, 19), RED)
    _text(draw, s, "STOP", (375, 375), 254, WHITE, width_mm=600)


def _rect_sign(draw, s, w, h, border_fill, inner_fill, inset=13, border=16):
    draw.rounded_rectangle([0, 0, w * s, h * s], radius=38 * s, fill=inner_fill)
    draw.rounded_rectangle(
        [inset * s, inset * s, (w - inset) * s, (h - inset) * s],
        radius=30 * s,
        outline=border_fill,
        width=round(border * s),
    )


def _speed_limit(value: int):
    def draw_it(draw, s):
        _rect_sign(draw, s, 600, 750, BLACK, WHITE)
        _text(draw, s, "SPEED", (300, 150), 100, BLACK, width_mm=480)
        _text(draw, s, "LIMIT", (300, 290), 100, BLACK, width_mm=480)
        _text(draw, s, str(value), (300, 530), 250, BLACK, width_mm=460)

    return draw_it


def _yield(draw, s):
    tri = np.array([[0, 0], [900, 0], [450, 779]], float)
    _poly(draw, s, tri, RED)
    _poly(draw, s, _inset(tri, 85), WHITE)
    _text(draw, s, "YIELD", (450, 200), 105, RED, width_mm=390)


def _diamond(draw, s):
    d = np.array([[375, 0], [750, 375], [375, 750], [0, 375]], float)
    _poly(draw, s, d, BLACK)
    _poly(draw, s, _inset(d, 13), YELLOW)
    _poly(draw, s, _inset(d, 29), BLACK)
    _poly(draw, s, _inset(d, 43), YELLOW)


def _pedestrian(draw, s):
    _diamond(draw, s)
    k = s
    draw.ellipse([345 * k, 170 * k, 405 * k, 230 * k], fill=BLACK)  # head
    _poly(draw, s, [(350, 245), (410, 245), (425, 420), (345, 420)], BLACK)  # body
    for hip, foot in (((360, 410), (300, 580)), ((405, 410), (460, 580))):
        draw.line([(hip[0] * k, hip[1] * k), (foot[0] * k, foot[1] * k)], fill=BLACK, width=round(42 * s))
    draw.line([(360 * k, 265 * k), (300 * k, 380 * k)], fill=BLACK, width=round(34 * s))
    draw.line([(405 * k, 265 * k), (470 * k, 370 * k)], fill=BLACK, width=round(34 * s))


def _signal_ahead(draw, s):
    _diamond(draw, s)
    draw.rounded_rectangle([300 * s, 160 * s, 450 * s, 590 * s], radius=25 * s, fill=BLACK)
    for y, colour in ((230, (220, 40, 40)), (375, (250, 200, 20)), (520, (40, 170, 80))):
        draw.ellipse([330 * s, (y - 45) * s, 420 * s, (y + 45) * s], fill=colour)


def _merge(draw, s):
    _diamond(draw, s)
    draw.line([(400 * s, 620 * s), (400 * s, 170 * s)], fill=BLACK, width=round(60 * s))
    _poly(draw, s, [(400, 110), (470, 230), (330, 230)], BLACK)
    draw.line([(260 * s, 600 * s), (260 * s, 470 * s), (390 * s, 340 * s)], fill=BLACK, width=round(45 * s))


def _keep_right(draw, s):
    _rect_sign(draw, s, 600, 750, BLACK, WHITE)
    draw.ellipse([170 * s, 380 * s, 330 * s, 640 * s], fill=BLACK)  # the obstacle
    draw.line([(250 * s, 140 * s), (420 * s, 430 * s)], fill=BLACK, width=round(55 * s))
    _poly(draw, s, [(445, 480), (350, 420), (455, 360)], BLACK)


def _do_not_enter(draw, s):
    draw.rectangle([0, 0, 750 * s, 750 * s], fill=WHITE)
    draw.ellipse([25 * s, 25 * s, 725 * s, 725 * s], fill=RED)
    draw.rectangle([110 * s, 325 * s, 640 * s, 425 * s], fill=WHITE)
    _text(draw, s, "DO NOT", (375, 220), 95, WHITE, width_mm=420)
    _text(draw, s, "ENTER", (375, 530), 95, WHITE, width_mm=420)


SIGNS: dict[str, SignSpec] = {
    spec.name: spec
    for spec in [
        SignSpec("stop", 750, 750, _stop),
        *(SignSpec(f"speed limit {v}", 600, 750, _speed_limit(v)) for v in range(25, 70, 5)),
        SignSpec("yield", 900, 779, _yield),
        SignSpec("pedestrian crossing", 750, 750, _pedestrian),
        SignSpec("signal ahead", 750, 750, _signal_ahead),
        SignSpec("merge", 750, 750, _merge),
        SignSpec("keep right", 600, 750, _keep_right),
        SignSpec("do not enter", 750, 750, _do_not_enter),
    ]
}
SIGN_CLASSES: list[str] = sorted(SIGNS)


@functools.lru_cache(maxsize=64)
def render_face(name: str, px_per_mm: float = 0.4) -> np.ndarray:
    """The sign's face as ``[H, W, 4]`` float32 RGBA in [0, 1] (alpha: the sign's shape).

    Drawn at ``SUPERSAMPLE``× and downsampled, so edges are anti-aliased.
    """
    from physadv.errors import PhysadvError

    if name not in SIGNS:
        import difflib

        close = difflib.get_close_matches(name, SIGNS, n=1)
        raise PhysadvError(f"unknown sign '{name}'" + (f"; did you mean '{close[0]}'?" if close else ""))
    spec = SIGNS[name]
    s = px_per_mm * SUPERSAMPLE
    size = (round(spec.width_mm * s), round(spec.height_mm * s))
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    spec.draw(ImageDraw.Draw(image), s)
    out_size = (round(spec.width_mm * px_per_mm), round(spec.height_mm * px_per_mm))
    face = np.asarray(image.resize(out_size, Image.LANCZOS), np.float32) / 255
    face.setflags(write=False)
    return face
