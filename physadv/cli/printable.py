"""``physadv printable``: turn any artefact image into files that print at the right size."""

from __future__ import annotations

from pathlib import Path

import typer


def printable(
    image: Path = typer.Argument(
        ..., help="The artefact image (PNG; an alpha channel marks unprinted areas)."
    ),
    size_mm: str = typer.Option(
        ...,
        "--size-mm",
        help="Printed size in mm: the longer side (the other follows the image's aspect ratio), "
        "or WxH (e.g. 400, 300x200).",
    ),
    out: Path = typer.Option(Path("printables"), help="Output folder."),
    paper: str = typer.Option("a4", help="Paper for the tiled PDF: a4, a3, letter, legal."),
    dpi: int = typer.Option(300, min=72, max=1200, help="Print resolution."),
    quantize: bool = typer.Option(False, help="Snap every pixel to the nearest palette colour."),
    palette: Path = typer.Option(None, help="Palette file (r,g,b lines); default: physadv's estimate."),
    stickers: bool = typer.Option(
        False,
        help="The image is a sign face whose alpha marks stickers: also write "
        "NAME_stickers.pdf (each sticker at true size, labelled) and NAME_guide.pdf.",
    ),
    sign: str = typer.Option(
        "stop", help="With --stickers: the sign's outline drawn on the guide (stop, none)."
    ),
) -> None:
    """Write NAME.png (with DPI), NAME.pdf (one page of exactly the artefact's size),
    NAME_PAPER.pdf (true size on PAPER, tiled if larger, cut marks and a 10 cm scale bar) and NAME.json."""
    from physadv.printing.export import load_sized_artefact, save_pdf, save_png, save_sidecar
    from physadv.printing.palette import Palette

    artefact, size = load_sized_artefact(image, size_mm)
    typer.echo(f"size: {size.note}")
    pal = (Palette.load(palette) if palette else Palette.default()) if quantize else None
    stem = image.stem
    out.mkdir(parents=True, exist_ok=True)
    save_png(artefact, out / f"{stem}.png", dpi, pal)
    save_pdf(artefact, out / f"{stem}.pdf", dpi, paper=None, quantize=pal)
    pages = save_pdf(artefact, out / f"{stem}_{paper}.pdf", dpi, paper=paper, quantize=pal, label=stem)
    save_sidecar(
        artefact,
        out / f"{stem}.json",
        dpi=dpi,
        quantized=quantize,
        palette=str(palette) if palette else "physadv default",
    )
    if stickers:
        from physadv.printing.stickers import save_placement_guide, save_sticker_sheet
        from physadv.scene.geometry import stop_sign_outline_mm

        outline = stop_sign_outline_mm(artefact.size_mm[0]) if sign == "stop" else None
        sheets = save_sticker_sheet(artefact, out / f"{stem}_stickers.pdf", paper, dpi)
        guide = save_placement_guide(artefact, out / f"{stem}_guide.pdf", outline, paper, min(dpi, 150))
        typer.echo(f"wrote {out}/{stem}_stickers.pdf ({sheets} page(s)), {stem}_guide.pdf ({guide} page(s))")
    w, h = artefact.size_mm
    typer.echo(
        f"wrote {out}/{stem}.png, {stem}.pdf ({w:.1f} x {h:.1f} mm), {stem}_{paper}.pdf ({pages} page(s)), "
        f"{stem}.json — print at 100% scale"
    )
