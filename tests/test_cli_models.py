"""`physadv models check`, run as a user runs it: the console script and `python cli.py`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import PHYSADV

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run a command (the console script, or ``python cli.py``) as a user would."""
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300)


def test_check_yaml_detector_via_console_script():
    result = run(PHYSADV, "models", "check", "yolo11n.yaml", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "kind:        detector" in result.stdout
    assert "80 (person, bicycle" in result.stdout
    assert "attackable:  yes" in result.stdout
    # random weights: said where the format is named and beside the tiny gradient it causes
    assert "format:      model yaml: randomly initialised weights (untrained" in result.stdout
    assert "tiny because the weights are untrained" in result.stdout


def test_check_yolo26_via_cli_py_end2end():
    result = run(sys.executable, "cli.py", "models", "check", "yolo26n.yaml", "--end2end", "--json")
    assert result.returncode == 0, result.stderr
    assert '"end2end": true' in result.stdout and '"attackable": true' in result.stdout


@pytest.mark.parametrize(
    "make_bad,expect",
    [
        (lambda d: "missing.pt", "not found"),
        (
            lambda d: (d / "junk.pt").write_bytes(b"not a model") and str(d / "junk.pt"),
            "is a text file, not a PyTorch checkpoint",
        ),
        (lambda d: (d / "m.yaml").write_text("nc: [oops\n") and str(d / "m.yaml"), "cannot build a model"),
        (lambda d: "yolo11n-seg.yaml", "not a detection model|defines a segment model"),
    ],
)
def test_bad_model_is_one_line_and_nonzero(tmp_path, make_bad, expect):
    import re

    spec = make_bad(tmp_path)
    result = run(PHYSADV, "models", "check", spec, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("physadv: error:"), result.stderr
    assert re.search(expect, lines[0]), lines[0]
    assert "Traceback" not in result.stderr


def test_check_default_reports_both_embedded_models():
    result = run(PHYSADV, "models", "check", "default", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "kind:        classifier" in result.stdout and "16 (do not enter" in result.stdout
    assert "kind:        detector" in result.stdout and "2 (person, stop sign)" in result.stdout
    assert "input size:  320x320" in result.stdout  # the detector's training size
    assert "format:      physadv's embedded detect model (detector.safetensors" in result.stdout
    assert "untrained" not in result.stdout


def test_check_classifier_file(tmp_path):
    from physadv.models import save_classifier
    from physadv.models.architectures import LisaCNN

    path = save_classifier(
        LisaCNN(3), tmp_path / "c.safetensors", "lisa_cnn", ["stop", "yield", "speed limit 45"]
    )
    result = run(PHYSADV, "models", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert "classifier" in result.stdout and "32x32" in result.stdout
    assert "format:      safetensors weights of the built-in architecture 'lisa_cnn'" in result.stdout


def test_unknown_device_is_one_line():
    result = run(PHYSADV, "models", "check", "yolo11n.yaml", "--device", "tpu")
    assert result.returncode == 2
    assert "unknown device" in result.stderr or "not supported" in result.stderr


def test_help_reads_well():
    result = run(PHYSADV, "--help")
    assert result.returncode == 0
    for command in ("models", "calibrate", "printable", "scene", "train"):
        assert command in result.stdout


def test_attack_and_eval_commands_take_end2end():
    """--end2end reaches the detector of every command that attacks or judges one, not only `check`."""
    for command in ("sticker", "patch", "eval", "defend"):
        assert "--end2end" in run(PHYSADV, command, "--help").stdout, command
    # passed through: a YOLOv8 has no one-to-one head, so asking for it is refused before any work
    args = ["sticker", "--out", "x", "--task", "detect", "--model", "yolov8n.yaml", "--end2end"]
    result = run(PHYSADV, *args, cwd=Path(tempfile.mkdtemp()))
    assert result.returncode == 2 and "one-to-one" in result.stderr, result.stderr


def _option_help(help_text: str, flag: str) -> str:
    """The help cell of ``flag`` in a rich ``--help`` table (its wrapped lines joined)."""
    rows = [line.strip("│ ").split("  ")[0] for line in help_text.splitlines()]
    start = next(i for i, row in enumerate(rows) if row.strip().startswith(flag + " ") or row == flag)
    cells = [help_text.splitlines()[start]]
    for line, row in zip(help_text.splitlines()[start + 1 :], rows[start + 1 :], strict=True):
        if row.startswith("-") or line.startswith("╰"):
            break
        cells.append(line)
    return " ".join(" ".join(cell.strip("│ ").split()) for cell in cells)


def test_attack_help_shows_the_settings_defaults():
    """The options built from the settings classes show their defaults (rich used to eat "[default: …]")."""
    from physadv.jobs.patch_config import PatchJob
    from physadv.jobs.sticker_config import StickerJob

    env = {**os.environ, "COLUMNS": "200"}
    for command, job in (("sticker", StickerJob()), ("patch", PatchJob())):
        shown = subprocess.run([PHYSADV, command, "--help"], capture_output=True, text=True, env=env).stdout
        for flag, value in (("--steps", job.attack.steps), ("--lr", job.attack.lr), ("--dpi", job.dpi)):
            assert f"[default: ({value})]" in _option_help(shown, flag), (command, flag)
        assert "(dpi) [default:" in _option_help(shown, "--dpi")  # the unit survives too
    # a nested default the job sets apart from its class: the patch job's folds (the help said 0.3)
    assert PatchJob().attack.eot.crease == 0.5 != type(PatchJob().attack.eot)().crease
    assert "[default: (0.5)]" in _option_help(shown, "--crease")


@pytest.mark.parametrize(
    "flag, value",
    [("--size-mm", "1e9"), ("--imgsz", "100000"), ("--resolution", "100000"), ("--batch", "100000")],
)
def test_an_absurd_size_is_a_usage_error_before_anything_loads(tmp_path, flag, value):
    """A user trial's values: each loaded the photos and the model, then died of an allocation."""
    result = run(PHYSADV, "patch", "--images", tmp_path / "none", flag, value, "--out", tmp_path / "o")
    assert result.returncode == 2 and f"Invalid value for '{flag}'" in result.stderr, result.stderr
    assert not (tmp_path / "o").exists()


def test_running_out_of_memory_names_the_settings_that_size_the_work():
    """numpy's and torch's own out-of-memory errors, raised for real, in the user's words."""
    import numpy as np
    import torch

    from physadv.cli import _out_of_memory

    for allocate, asked in (
        (lambda: np.empty(10**13, np.uint8), "9.09 TiB"),
        (lambda: torch.empty(10**13, dtype=torch.uint8), "9313.2 GiB"),
    ):
        with pytest.raises((MemoryError, RuntimeError)) as failed:
            allocate()
        said = _out_of_memory(failed.value)
        assert said.startswith(f"out of memory ({asked} asked for at once)") and "--batch" in said
    assert _out_of_memory(RuntimeError("shape mismatch")) is None


def test_version_is_the_installed_one():
    from importlib.metadata import version

    result = run(PHYSADV, "--version")
    assert result.returncode == 0 and result.stdout == f"physadv {version('physadv')}\n", result.stderr
