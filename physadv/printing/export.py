"""Print-ready files at physical size: PNG with DPI metadata, PDF pages (tiled when larger than the
paper) with cut marks and a 10 cm scale bar, and a JSON sidecar with provenance.

Pages are rendered at ``mm / 25.4 · dpi`` pixels and written with fpdf2 on pages of exactly their
physical size; the pixels are embedded losslessly (Flate, as in PNG), never as JPEG (Pillow's PDF
writer re-encodes RGB pages as JPEG, which smears the optimised pixel values and the sticker edges).

An image's printed size keeps its aspect ratio: one number names the longer side (see
:func:`print_size`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

import physadv
from physadv.artefact import Artefact
from physadv.data.images import read_image
from physadv.errors import PhysadvError
from physadv.printing.palette import Palette

MM_PER_INCH = 25.4
PAPER_MM = {"a4": (210.0, 297.0), "a3": (297.0, 420.0), "letter": (215.9, 279.4), "legal": (215.9, 355.6)}
PAGE_MARGIN_MM = 12.0


def mm_to_px(mm: float, dpi: int) -> int:
    return max(1, round(mm / MM_PER_INCH * dpi))


ASPECT_TOLERANCE = 0.01  # a WxH within 1 % of the image's aspect ratio is not called a stretch


@dataclass(frozen=True)
class PrintSize:
    """How big an image prints: ``mm`` = (width, height) in millimetres, and ``note``, one line
    saying how that was decided (and whether the image is stretched) for the user to read."""

    mm: tuple[float, float]
    note: str
    stretched: bool = False


def print_size(width_px: int, height_px: int, spec: str | float) -> PrintSize:
    """The printed size of a ``width_px`` × ``height_px`` image from what a user typed.

    ``"150"`` (or ``150``): the longer side is 150 mm and the other follows the image's aspect ratio
    (a 601×397 image → 150 × 99.1 mm). ``"300x200"``: exactly that; if it differs from the image's
    aspect ratio by more than 1 %, the note says the image will be stretched.

    Raises:
        PhysadvError: not ``W`` or ``WxH`` in positive millimetres.
    """
    text = str(spec)
    try:
        parts = [float(p) for p in text.lower().replace("mm", "").replace("×", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) <= 0 or not all(math.isfinite(p) for p in parts):
        raise PhysadvError(f"bad size '{text}': give millimetres as W or WxH, e.g. 400 or 300x200")
    pixels = f"{width_px}×{height_px} px"
    if len(parts) == 1:
        scale = parts[0] / max(width_px, height_px)
        mm = (width_px * scale, height_px * scale)
        kept = "square" if width_px == height_px else "longer side, aspect ratio kept"
        return PrintSize(mm, f"{pixels} → {mm[0]:.1f} × {mm[1]:.1f} mm ({parts[0]:g} mm is the {kept})")
    mm = (parts[0], parts[1])
    image_aspect, print_aspect = width_px / height_px, mm[0] / mm[1]
    if abs(print_aspect / image_aspect - 1) <= ASPECT_TOLERANCE:
        return PrintSize(mm, f"{pixels} → {mm[0]:g} × {mm[1]:g} mm")
    return PrintSize(
        mm,
        f"{pixels} → {mm[0]:g} × {mm[1]:g} mm: STRETCHED, the image's aspect ratio is "
        f"{image_aspect:.3f} and the print's {print_aspect:.3f} (give one number to keep it)",
        stretched=True,
    )


def sized(artefact: Artefact, spec: str | float) -> tuple[Artefact, PrintSize]:
    """``artefact`` with its printed size decided by :func:`print_size` from its pixels."""
    h, w = artefact.image.shape[-2:]
    size = print_size(w, h, spec)
    return replace(artefact, size_mm=size.mm), size


def write_pdf(pages: list[Image.Image], path: str | Path, sizes_mm: list[tuple[float, float]]) -> int:
    """Write ``pages`` (RGB or L images) to one PDF, page ``i`` exactly ``sizes_mm[i]`` (width,
    height) with its image filling it, embedded losslessly; returns the number of pages."""
    from fpdf import FPDF

    pdf = FPDF(unit="mm", format=sizes_mm[0])  # the document default: the first page
    pdf.set_auto_page_break(False)
    pdf.set_creator(f"physadv {physadv.__version__}")
    for page, (w, h) in zip(pages, sizes_mm, strict=True):
        pdf.add_page(format=(w, h))
        pdf.image(page, x=0, y=0, w=w, h=h)  # a PIL image: fpdf2 stores it Flate-compressed
    pdf.output(str(path))
    return len(pages)


def artefact_pixels(artefact: Artefact, dpi: int, quantize: Palette | None = None) -> Image.Image:
    """The artefact at print resolution: RGB, unprinted (alpha 0) areas white. Nearest-neighbour
    upsampling keeps the optimised pixel values exact."""
    image = artefact.image.detach().float().cpu().clamp(0, 1)
    if quantize is not None:
        image = quantize.quantize(image)
    if artefact.alpha is not None:
        alpha = artefact.alpha.detach().float().cpu().clamp(0, 1)
        image = image * alpha + (1 - alpha)
    array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    size = (mm_to_px(artefact.size_mm[0], dpi), mm_to_px(artefact.size_mm[1], dpi))
    return Image.fromarray(array).resize(size, Image.NEAREST)


def save_png(artefact: Artefact, path: str | Path, dpi: int = 300, quantize: Palette | None = None) -> Path:
    """A PNG at print resolution with its DPI recorded, so it prints at ``size_mm``. An artefact with
    an alpha mask keeps it (RGBA; unprinted areas are white and transparent), so the same file can be
    replayed on a sign (``physadv eval --artefact``, ``physadv scene render --sticker``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = artefact_pixels(artefact, dpi, quantize)
    if artefact.alpha is not None:
        alpha = (artefact.alpha.detach().float().cpu().clamp(0, 1)[0].numpy() * 255).round().astype(np.uint8)
        pixels.putalpha(Image.fromarray(alpha).resize(pixels.size, Image.NEAREST))
    pixels.save(path, dpi=(dpi, dpi))
    return path


def text_font(size_px: int) -> ImageFont.ImageFont:
    from physadv.offline import bundled_font

    font = bundled_font()
    return ImageFont.truetype(str(font), size_px) if font else ImageFont.load_default()


def _cut_marks(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], dpi: int) -> None:
    """L-shaped marks outside each corner of ``box`` (x0, y0, x1, y1 in pixels)."""
    length, gap, width = mm_to_px(5, dpi), mm_to_px(1.5, dpi), max(1, mm_to_px(0.25, dpi))
    x0, y0, x1, y1 = box
    for x, sx in ((x0, -1), (x1, 1)):
        for y, sy in ((y0, -1), (y1, 1)):
            draw.line([(x + sx * gap, y), (x + sx * (gap + length), y)], fill=0, width=width)
            draw.line([(x, y + sy * gap), (x, y + sy * (gap + length))], fill=0, width=width)


def _scale_bar(draw: ImageDraw.ImageDraw, x: int, y: int, dpi: int) -> None:
    """A 100 mm bar with 10 mm ticks: measure it on the print to check the printer's scaling."""
    width = max(1, mm_to_px(0.4, dpi))
    draw.line([(x, y), (x + mm_to_px(100, dpi), y)], fill=0, width=width)
    for i in range(11):
        tx = x + mm_to_px(10 * i, dpi)
        draw.line([(tx, y - mm_to_px(2 if i % 5 else 3, dpi)), (tx, y)], fill=0, width=width)
    draw.text(
        (x + mm_to_px(102, dpi), y - mm_to_px(3, dpi)), "100 mm", fill=0, font=text_font(mm_to_px(3, dpi))
    )


def layout_pages(
    pixels: Image.Image, dpi: int, paper: str, label: str = "", cut_marks: bool = True, scale_bar: bool = True
) -> list[Image.Image]:
    """Place ``pixels`` at true size on pages of ``paper``, tiled in a grid when it does not fit.

    Each tile is butted to its neighbours (no overlap); cut marks show where to trim.
    """
    if paper.lower() not in PAPER_MM:
        raise PhysadvError(f"unknown paper '{paper}': choose one of {', '.join(PAPER_MM)}")
    page_w, page_h = (mm_to_px(v, dpi) for v in PAPER_MM[paper.lower()])
    margin = mm_to_px(PAGE_MARGIN_MM, dpi)
    area_w, area_h = page_w - 2 * margin, page_h - 2 * margin
    cols, rows = math.ceil(pixels.width / area_w), math.ceil(pixels.height / area_h)
    pages = []
    for r in range(rows):
        for c in range(cols):
            tile = pixels.crop(
                (
                    c * area_w,
                    r * area_h,
                    min((c + 1) * area_w, pixels.width),
                    min((r + 1) * area_h, pixels.height),
                )
            )
            page = Image.new("RGB", (page_w, page_h), "white")
            x0 = margin + (area_w - tile.width) // 2 if cols == 1 else margin
            y0 = margin + (area_h - tile.height) // 2 if rows == 1 else margin
            page.paste(tile, (x0, y0))
            draw = ImageDraw.Draw(page)
            if cut_marks:
                _cut_marks(draw, (x0, y0, x0 + tile.width, y0 + tile.height), dpi)
            text = f"{label}  tile row {r + 1}/{rows}, column {c + 1}/{cols}" if rows * cols > 1 else label
            draw.text((margin, mm_to_px(3, dpi)), text.strip(), fill=0, font=text_font(mm_to_px(3.5, dpi)))
            if scale_bar and r == 0 and c == 0:
                _scale_bar(draw, margin, page_h - mm_to_px(5, dpi), dpi)
            pages.append(page)
    return pages


def save_pdf(
    artefact: Artefact,
    path: str | Path,
    dpi: int = 300,
    paper: str | None = None,
    cut_marks: bool = True,
    scale_bar: bool = True,
    quantize: Palette | None = None,
    label: str = "",
) -> int:
    """Write a PDF that prints the artefact at ``size_mm``; returns the number of pages.

    ``paper=None``: one page exactly the artefact's size (for print shops, large-format printers).
    ``paper="a4"|"letter"|…``: true size on that paper, tiled over pages if larger, with marks.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = artefact_pixels(artefact, dpi, quantize)
    if paper is None:
        return write_pdf([pixels], path, [artefact.size_mm])
    size = f"{artefact.size_mm[0]:.1f} x {artefact.size_mm[1]:.1f} mm"
    pages = layout_pages(pixels, dpi, paper, f"{label} {size} at 100% scale".strip(), cut_marks, scale_bar)
    return write_pdf(pages, path, [paper_size_mm(paper)] * len(pages))


def paper_size_mm(paper: str) -> tuple[float, float]:
    """(width, height) of a paper name in millimetres (portrait)."""
    if paper.lower() not in PAPER_MM:
        raise PhysadvError(f"unknown paper '{paper}': choose one of {', '.join(PAPER_MM)}")
    return PAPER_MM[paper.lower()]


def save_sidecar(artefact: Artefact, path: str | Path, **extra) -> Path:
    """JSON with the artefact's physical size, provenance and physadv's version."""
    path = Path(path)
    record = {
        "physadv_version": physadv.__version__,
        "size_mm": list(artefact.size_mm),
        "pixels": list(artefact.image.shape[-2:][::-1]),
        **artefact.provenance,
        **extra,
    }
    path.write_text(json.dumps(record, indent=2, default=str))
    return path


def load_artefact_image(path: str | Path, size_mm: tuple[float, float]) -> Artefact:
    """An artefact from an image file, read by :func:`physadv.data.images.read_image` (16-bit and
    float files at full depth, EXIF orientation applied); an alpha channel of any kind (RGBA, grey +
    alpha, a palette's transparent colour) is kept as the artefact's alpha: 0 where nothing is printed."""
    picture = read_image(path, "artefact image")
    rgb = torch.from_numpy(picture.rgb).permute(2, 0, 1).contiguous()
    alpha = None if picture.alpha is None else torch.from_numpy(np.ascontiguousarray(picture.alpha))[None]
    return Artefact(rgb, size_mm, alpha, {"source": str(path)})


def load_sized_artefact(path: str | Path, spec: str | float) -> tuple[Artefact, PrintSize]:
    """An artefact image (:func:`load_artefact_image`) at the printed size ``spec`` names
    (:func:`print_size`: the longer side, or ``WxH``); the :class:`PrintSize` says how it was decided."""
    return sized(load_artefact_image(path, (1.0, 1.0)), spec)
