"""Sticker sheets: each sticker of a sign attack cut out at true size, labelled with where it goes,
and a full-size placement guide of the whole sign.

The artefact is the sign face: its image spans the sign's bounding square (e.g. 750 × 750 mm for
a US stop sign) and its alpha is the sticker mask. Positions are millimetres from the face's
top-left corner, x to the right, y down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from physadv.artefact import Artefact
from physadv.errors import PhysadvError
from physadv.printing.export import (
    PAGE_MARGIN_MM,
    PAPER_MM,
    artefact_pixels,
    layout_pages,
    mm_to_px,
    paper_size_mm,
    text_font,
    write_pdf,
)

CUT_MARGIN_MM = 3.0


@dataclass
class Sticker:
    """One connected sticker: its pixels at print resolution (RGBA) and its place on the sign."""

    number: str
    x_mm: float
    y_mm: float
    w_mm: float
    h_mm: float
    pixels: Image.Image


def find_stickers(artefact: Artefact, dpi: int, min_area_mm2: float = 25.0) -> list[Sticker]:
    """Split the artefact's alpha mask into connected stickers, largest first."""
    if artefact.alpha is None:
        raise PhysadvError("a sticker sheet needs an artefact with a sticker mask (alpha channel)")
    mask = (artefact.alpha[0].detach().cpu().numpy() > 0.5).astype(np.uint8)
    mm_x, mm_y = artefact.mm_per_pixel
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    rgb = artefact_pixels(Artefact(artefact.image, artefact.size_mm), dpi)
    full_mask = Image.fromarray(labels.astype(np.int32)).resize(rgb.size, Image.NEAREST)
    full_labels = np.asarray(full_mask)
    stickers = []
    order = sorted(range(1, count), key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    for i in order:
        x, y, w, h, area = stats[i]
        if area * mm_x * mm_y < min_area_mm2:
            continue
        box = (
            mm_to_px(x * mm_x, dpi),
            mm_to_px(y * mm_y, dpi),
            mm_to_px((x + w) * mm_x, dpi),
            mm_to_px((y + h) * mm_y, dpi),
        )
        piece = rgb.crop(box).convert("RGBA")
        alpha = Image.fromarray(((full_labels[box[1] : box[3], box[0] : box[2]] == i) * 255).astype(np.uint8))
        piece.putalpha(alpha)
        stickers.append(Sticker(str(len(stickers) + 1), x * mm_x, y * mm_y, w * mm_x, h * mm_y, piece))
    return stickers


def _split(sticker: Sticker, max_w: int, max_h: int, dpi: int) -> list[Sticker]:
    """Cut a sticker larger than the paper into parts that fit, each with its own position."""
    cols, rows = -(-sticker.pixels.width // max_w), -(-sticker.pixels.height // max_h)
    if cols * rows == 1:
        return [sticker]
    mm_per_px = 25.4 / dpi
    parts = []
    for r in range(rows):
        for c in range(cols):
            box = (
                c * max_w,
                r * max_h,
                min((c + 1) * max_w, sticker.pixels.width),
                min((r + 1) * max_h, sticker.pixels.height),
            )
            piece = sticker.pixels.crop(box)
            parts.append(
                Sticker(
                    f"{sticker.number}{chr(ord('a') + len(parts))}",
                    sticker.x_mm + box[0] * mm_per_px,
                    sticker.y_mm + box[1] * mm_per_px,
                    piece.width * mm_per_px,
                    piece.height * mm_per_px,
                    piece,
                )
            )
    return parts


def _pack(
    stickers: list[Sticker], area_w: int, area_h: int, gap: int
) -> list[list[tuple[Sticker, int, int]]]:
    """Shelf packing onto pages of ``area_w × area_h`` pixels; each sticker keeps room for a label."""
    pages: list[list[tuple[Sticker, int, int]]] = [[]]
    x = y = shelf = 0
    for s in stickers:
        w, h = s.pixels.width + gap, s.pixels.height + 2 * gap
        if w > area_w or h > area_h:
            raise PhysadvError(
                f"sticker {s.number} ({s.w_mm:.0f} x {s.h_mm:.0f} mm) is larger than the paper"
            )
        if x + w > area_w:
            x, y, shelf = 0, y + shelf, 0
        if y + h > area_h:
            pages.append([])
            x = y = shelf = 0
        pages[-1].append((s, x, y))
        x, shelf = x + w, max(shelf, h)
    return pages


def save_sticker_sheet(artefact: Artefact, path: str | Path, paper: str = "letter", dpi: int = 300) -> int:
    """Write the stickers at true size with cut outlines and placement labels; returns the page count."""
    stickers = find_stickers(artefact, dpi)
    if not stickers:
        raise PhysadvError("the sticker mask is empty: nothing to print")
    page_w, page_h = (mm_to_px(v, dpi) for v in PAPER_MM[paper.lower()])
    margin, gap = mm_to_px(PAGE_MARGIN_MM, dpi), mm_to_px(CUT_MARGIN_MM * 2, dpi)
    font = text_font(mm_to_px(2.5, dpi))
    stickers = [
        p for s in stickers for p in _split(s, page_w - 2 * margin - gap, page_h - 2 * margin - 2 * gap, dpi)
    ]
    pages = []
    for placed in _pack(stickers, page_w - 2 * margin, page_h - 2 * margin, gap):
        page = Image.new("RGB", (page_w, page_h), "white")
        draw = ImageDraw.Draw(page)
        for s, x, y in placed:
            px, py = margin + x, margin + y + gap
            page.paste(s.pixels, (px, py), s.pixels)
            cut = mm_to_px(CUT_MARGIN_MM / 2, dpi)
            draw.rectangle(
                [px - cut, py - cut, px + s.pixels.width + cut, py + s.pixels.height + cut],
                outline=(160, 160, 160),
                width=max(1, mm_to_px(0.2, dpi)),
            )
            label = f"S{s.number}: x {s.x_mm:.0f} mm, y {s.y_mm:.0f} mm"
            draw.text((px, py - gap + mm_to_px(0.5, dpi)), label, fill=0, font=font)
        draw.text(
            (margin, mm_to_px(4, dpi)),
            f"stickers for a {artefact.size_mm[0]:g} mm sign — print at 100%; "
            "x, y = sticker's top-left from the sign face's top-left",
            fill=0,
            font=font,
        )
        pages.append(page)
    return write_pdf(pages, path, [paper_size_mm(paper)] * len(pages))


def save_placement_guide(
    artefact: Artefact,
    path: str | Path,
    outline_mm: np.ndarray | None = None,
    paper: str = "letter",
    dpi: int = 150,
) -> int:
    """The whole sign face at full size with the stickers in place and numbered, tiled over pages."""
    stickers = find_stickers(artefact, dpi)
    canvas = Image.new(
        "RGB", (mm_to_px(artefact.size_mm[0], dpi), mm_to_px(artefact.size_mm[1], dpi)), "white"
    )
    draw = ImageDraw.Draw(canvas)
    if outline_mm is not None:
        draw.polygon(
            [(mm_to_px(x, dpi), mm_to_px(y, dpi)) for x, y in outline_mm],
            outline=(200, 0, 0),
            width=mm_to_px(1.0, dpi),
        )
    font = text_font(mm_to_px(12, dpi))
    for s in stickers:
        x, y = mm_to_px(s.x_mm, dpi), mm_to_px(s.y_mm, dpi)
        canvas.paste(s.pixels, (x, y), s.pixels)
        draw.rectangle(
            [x, y, x + s.pixels.width, y + s.pixels.height], outline=(0, 90, 255), width=mm_to_px(0.8, dpi)
        )
        draw.text((x + mm_to_px(2, dpi), y + mm_to_px(2, dpi)), f"S{s.number}", fill=(0, 90, 255), font=font)
    pages = layout_pages(canvas, dpi, paper, "placement guide, full size")
    return write_pdf(pages, path, [paper_size_mm(paper)] * len(pages))
