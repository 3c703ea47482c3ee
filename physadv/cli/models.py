"""``physadv models …``: inspect models before attacking them."""

from __future__ import annotations

import json

import typer

from physadv.cli.options import end2end_option

app = typer.Typer(
    help="Inspect models: kind, classes, input size, and whether gradients reach the input.",
    no_args_is_help=True,
)


@app.command("check")
def check(
    model: str = typer.Argument(
        ..., help="A .pt/.safetensors file, a model yaml (yolo11n.yaml), or 'default'."
    ),
    task: str = typer.Option(None, help="detect or classify; picks the embedded model for 'default'."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    end2end: bool = end2end_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Report the model's kind, classes and input size, and measure whether a gradient reaches the input.

    Exits 0 when the model is attackable, 1 when no gradient reaches the input, 2 on a bad model file.
    """
    from physadv.models import load_model
    from physadv.models.check import check_model

    if model == "default" and task is None:
        reports = [check_model(load_model(model, task=t, device=device)) for t in ("classify", "detect")]
    else:
        reports = [check_model(load_model(model, task=task, device=device, end2end=end2end))]
    for report in reports:
        if as_json:
            typer.echo(json.dumps(report.as_dict()))
            continue
        h, w = report.input_size
        head = ""
        if report.end2end is not None:
            branch = "NMS-free one-to-one branch" if report.end2end else "one-to-many branch + NMS"
            head = f" ({'end-to-end head; ' if report.has_one2one else ''}attacking the {branch})"
        typer.echo(f"format:      {report.file_format}")
        typer.echo(f"kind:        {report.kind}{head}")
        typer.echo(f"classes:     {report.num_classes} ({report.first_names})")
        typer.echo(f"input size:  {w}x{h} pixels")
        verdict = "yes" if report.attackable else "NO"
        why = (
            "; tiny because the weights are untrained — a trained model's is far larger"
            if report.untrained
            else ""
        )
        typer.echo(
            f"attackable:  {verdict} (input-gradient L2 norm {report.gradient_norm:.3g}, measured{why})"
        )
    if not all(r.attackable for r in reports):
        raise typer.Exit(code=1)
