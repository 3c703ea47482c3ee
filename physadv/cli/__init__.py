"""The ``physadv`` command line. Sub-commands live in small modules; this file wires them up and
turns user-facing errors into one line and a non-zero exit."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path

import typer

from physadv.cli import calibrate as calibrate_cmd
from physadv.cli import models as models_cmd
from physadv.cli import scene as scene_cmd
from physadv.cli import train as train_cmd
from physadv.cli.baselines import baselines
from physadv.cli.defend import defend
from physadv.cli.demo import demo
from physadv.cli.eval import eval_command
from physadv.cli.patch import patch
from physadv.cli.printable import printable
from physadv.cli.sticker import sticker
from physadv.cli.track import track
from physadv.errors import Interrupted, PhysadvError

app = typer.Typer(
    name="physadv",
    help="Physical-world adversarial attacks: make printable stickers and patches, replay, test defenses.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(models_cmd.app, name="models")
app.add_typer(calibrate_cmd.app, name="calibrate")
app.add_typer(scene_cmd.app, name="scene")
app.add_typer(train_cmd.app, name="train")
app.command("printable")(printable)
app.command("sticker")(sticker)
app.command("patch")(patch)
app.command("defend")(defend)
app.command("baselines")(baselines)
app.command("demo")(demo)
app.command("eval")(eval_command)
app.command("track")(track)


def _print_version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"physadv {version('physadv')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            from physadv import __version__

            typer.echo(f"physadv {__version__} (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False,
        "--version",
        help="Print the installed version and exit.",
        callback=_print_version,
        is_eager=True,
    ),
) -> None:
    """physadv: make printable adversarial artefacts with EOT, replay them through models, test defenses.

    Everything runs offline; models are local files, Ultralytics model yamls, or 'default' (embedded).
    """


AFTER_INTERRUPT = {  # what a Ctrl-C leaves, per command
    "sticker": "its last checkpoint is written: continue with --resume",
    "patch": "its last checkpoint is written: continue with --resume",
    "train": "its last checkpoint is written: continue with --resume",
    "eval": "the report in --out covers the frames judged so far",
    "defend": "finished rows and adaptive checkpoints are kept: run it again with the same --out",
    "demo": "run it again with the same --out to continue",
    "track": "what the line above names (run it again to track from the start)",
}


def _say_interrupted(command: str | None, exc: BaseException) -> None:
    """What a Ctrl-C left: the stage's own word (an :class:`Interrupted` anywhere in the chain of
    exceptions, as Typer wraps it), else the command's."""
    what = AFTER_INTERRUPT.get(command or "", "nothing was finished: run it again")
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, Interrupted):
            what = exc.kept
            break
        exc = exc.__cause__ or exc.__context__
    # Ctrl-C reaches every rank at once: no rank need wait for rank 0 to say it
    _say_error(f"physadv: interrupted; what was written is kept: {what}", linger=False)
    sys.exit(130)


SILENT_RANK_LINGER_S = 5.0  # measured: without it, a loaded machine's rank 0 was stopped before its line


def _speaks() -> bool:
    """False on a torchrun rank other than 0 (WORLD_SIZE > 1): every rank checks the same input and
    fails alike, so only rank 0 prints errors. A stray RANK without WORLD_SIZE silences nothing."""
    several = os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1")  # as ranks_from_env sees it
    return not several or os.environ.get("RANK", "0").strip() in ("0", "")


def _say_error(text: str, linger: bool = True) -> None:
    """A user-facing error line, from rank 0 alone under torchrun (:func:`_speaks`); every rank
    records it in torchrun's error file. ``linger``: a silent rank waits before failing."""
    _record_for_torchrun(text)
    if _speaks():
        print(text, file=sys.stderr)
    elif linger:  # torchrun stops every rank once one has failed: let rank 0 reach its line first
        time.sleep(SILENT_RANK_LINGER_S)


def _record_for_torchrun(text: str) -> None:
    """Under torchrun, this rank's error line in the error file torchrun gives each rank
    (``TORCHELASTIC_ERROR_FILE``, in the JSON layout of torch.distributed.elastic's ``ErrorHandler``),
    so torchrun's own report of the failed ranks shows it per rank instead of "To enable traceback
    see …" — and an error that only a rank other than 0 met is not lost."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    data = {
        "message": {"message": text, "extraInfo": {"py_callstack": text, "timestamp": str(int(time.time()))}}
    }
    with contextlib.suppress(OSError):
        Path(path).write_text(json.dumps(data))


def _out_of_memory(exc: BaseException) -> str | None:
    """The user's words for running out of memory (numpy's MemoryError, torch's CPU allocator, CUDA's
    OutOfMemoryError), naming the settings that scale memory; None for any other error."""
    text = str(exc)
    cpu = isinstance(exc, RuntimeError) and ("DefaultCPUAllocator" in text or "alloc_cpu" in text)
    if not (isinstance(exc, MemoryError) or cpu or type(exc).__name__ == "OutOfMemoryError"):
        return None
    asked = re.search(r"allocate (\d+) bytes", text)
    size = f"{int(asked[1]) / 2**30:.1f} GiB" if asked else None
    size = size or (m[1] if (m := re.search(r"allocate ([\d.]+ [KMGT]iB)", text)) else "more than there is")
    return (
        f"out of memory ({size} asked for at once): lower what sets the work's size — --batch, --imgsz, "
        "--resolution, --size-mm, views or frames — or run where there is more memory"
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``physadv`` and ``python cli.py``."""
    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), None)
    try:
        app(args=argv, prog_name="physadv")
    except PhysadvError as exc:
        _say_error(f"physadv: error: {exc}")
        sys.exit(2)
    except KeyboardInterrupt as exc:
        _say_interrupted(command, exc)
    except SystemExit as exc:  # Typer turns Ctrl-C into a silent exit 130
        if exc.code == 130:
            _say_interrupted(command, exc)
        raise
    except (FileExistsError, NotADirectoryError) as exc:  # e.g. --out naming a file
        _say_error(f"physadv: error: cannot make the folder '{exc.filename}': a file is there")
        sys.exit(2)
    except Exception as exc:  # never a bare traceback for a user; PHYSADV_DEBUG=1 shows it
        if os.environ.get("PHYSADV_DEBUG"):
            raise
        if memory := _out_of_memory(exc):
            # the attacks' loops write their checkpoint on any failure, as on Ctrl-C
            kept = f"; {AFTER_INTERRUPT[command]}" if command in ("sticker", "patch") else ""
            _say_error(f"physadv: error: {memory}{kept}")
            sys.exit(2)
        print(
            f"physadv: internal error: {type(exc).__name__}: {exc} (set PHYSADV_DEBUG=1 for details)",
            file=sys.stderr,
        )
        sys.exit(1)
