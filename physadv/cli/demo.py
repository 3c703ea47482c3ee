"""``physadv demo``: the main job on the embedded world, offline, in one command."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(
        Path("runs/demo"), help="Output folder: report.html/.md and every file behind it."
    ),
    quick: bool = typer.Option(
        False, help="Every part with a few steps (a smoke run: about 5 minutes of CPU time on 2 cores)."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Make an RP2 sticker for the embedded sign classifier and a person patch for the embedded
    YOLO, replay the lab table, a drive-by and pedestrians with and without them, measure three
    defenses, and write one report. Run it again with the same --out to continue after an
    interruption."""
    from physadv.jobs.demo import run_demo

    result = run_demo(out, quick, device)
    from physadv.report.demo_report import verdict

    typer.echo(verdict(result))
    typer.echo(f"done in {result['seconds']:.0f} s; open {out}/report.html")
