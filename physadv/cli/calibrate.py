"""``physadv calibrate …``: measure your printer and camera with a printed colour chart."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Calibrate your printer and camera: print a chart, photograph it, read it back.",
    no_args_is_help=True,
)


@app.command("chart")
def chart(
    out: Path = typer.Option(
        Path("printables/chart.pdf"), help="Where to write the chart PDF (A4 landscape)."
    ),
    dpi: int = typer.Option(300, min=72, max=1200, help="Print resolution."),
) -> None:
    """Write the colour chart to print: swatches across the gamut, ArUco markers at the corners.

    Print it at 100% scale (no 'fit to page'), photograph it flat under the light you will attack
    in, and run `physadv calibrate photo`.
    """
    import torch

    from physadv.artefact import Artefact
    from physadv.printing.chart import ChartLayout, render_chart
    from physadv.printing.export import MM_PER_INCH, save_pdf

    layout = ChartLayout()
    pixels = render_chart(layout, dpi / MM_PER_INCH)
    image = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    save_pdf(Artefact(image, layout.page_mm), out, dpi=dpi)
    typer.echo(
        f"wrote {out} ({layout.page_mm[0]:g} x {layout.page_mm[1]:g} mm, {len(layout.colours)} swatches)"
    )


@app.command("photo")
def photo(
    photo_path: Path = typer.Argument(..., metavar="PHOTO", help="A photograph of the printed chart."),
    out: Path = typer.Option(
        ..., help="Folder for palette.txt, colour_transfer.json and the rectified chart."
    ),
) -> None:
    """Read a photographed chart: the measured palette and the colour transfer the attacks use."""
    import cv2
    import torch

    from physadv.data.images import read_rgb8
    from physadv.eot.colour import delta_e2000, rgb_to_lab
    from physadv.printing.calibrate import read_chart
    from physadv.printing.palette import Palette

    rgb, _ = read_rgb8(photo_path, what="photo")  # upright (EXIF), any bit depth
    reading = read_chart(rgb)
    out.mkdir(parents=True, exist_ok=True)
    good = reading.trusted
    Palette(torch.from_numpy(reading.measured[good])).save(out / "palette.txt")
    reading.transfer.save(out / "colour_transfer.json")
    cv2.imwrite(str(out / "rectified.png"), cv2.cvtColor(reading.rectified, cv2.COLOR_RGB2BGR))
    rows = ["row,column,intended_r,intended_g,intended_b,measured_r,measured_g,measured_b,left_out"]
    rows += [
        ",".join([str(r), str(c), *(f"{v:.4f}" for v in (*i, *m)), why])
        for (r, c), i, m, why in zip(
            reading.positions, reading.intended, reading.measured, reading.reasons, strict=True
        )
    ]
    (out / "swatches.csv").write_text("\n".join(rows) + "\n")
    intended, measured = torch.from_numpy(reading.intended[good]), torch.from_numpy(reading.measured[good])
    predicted = reading.transfer(intended.T[:, :, None]).squeeze(-1).T
    fit_de = delta_e2000(rgb_to_lab(predicted), rgb_to_lab(measured))
    shift_de = delta_e2000(rgb_to_lab(intended), rgb_to_lab(measured))
    typer.echo(
        f"markers found: {reading.markers_found}/4, swatches trusted: {int(good.sum())} of {len(good)}"
    )
    if not good.all():
        typer.echo(
            f"left out {int((~good).sum())} swatch(es) that cannot be trusted (not in the palette or the "
            f"fit; see swatches.csv): {'; '.join(reading.left_out())}"
        )
    typer.echo(
        f"print+camera shift: mean ΔE2000 {float(shift_de.mean()):.1f} (max {float(shift_de.max()):.1f})"
    )
    typer.echo(f"colour-transfer fit: mean ΔE2000 {float(fit_de.mean()):.1f} (max {float(fit_de.max()):.1f})")
    typer.echo(f"wrote {out}/palette.txt, colour_transfer.json, swatches.csv, rectified.png")
    typer.echo(f"use them with: --palette {out}/palette.txt --calibration {out}/colour_transfer.json")
