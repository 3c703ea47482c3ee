"""Shared fixtures. Models are built from Ultralytics yamls (no weights exist offline)."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("PHYSADV_HOME", tempfile.mkdtemp(prefix="physadv-test-home-"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs one worker per core: one thread each (and in the commands they start), so
    # the workers share the cores instead of fighting over them
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import physadv  # noqa: E402,F401  (prepares the offline environment before ultralytics is imported)

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def make_lively(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Re-initialise a freshly built YOLO so its activations and class scores vary.

    Ultralytics' default init makes activations vanish layer by layer, so every anchor of an
    untrained model gets the same score and a wrong tensor axis would go unnoticed. Kaiming
    weights and a scaled class layer give scores spread over (0, 1).
    """
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    head = model.model[-1]
    for seq in list(head.cv3) + list(getattr(head, "one2one_cv3", None) or []):
        seq[-1].bias.data.zero_()
        seq[-1].weight.data *= 20
    return model


@pytest.fixture(scope="session")
def lively_yolo():
    """``lively_yolo(cfg)`` → an Ultralytics ``YOLO`` facade built from yaml, made lively (cached)."""
    from ultralytics import YOLO

    cache: dict[str, object] = {}

    def build(cfg: str):
        if cfg not in cache:
            yolo = YOLO(cfg)
            make_lively(yolo.model)
            cache[cfg] = yolo
        return copy.deepcopy(cache[cfg])

    return build


@pytest.fixture(scope="session")
def street_image() -> np.ndarray:
    """A 470×640 RGB uint8 test image (not a multiple of 32 in height, so letterbox pads)."""
    rng = np.random.default_rng(0)
    img = (rng.random((470, 640, 3)) * 255).astype(np.uint8)
    img[100:300, 200:400] = (40, 200, 90)
    img[320:420, 40:120] = (220, 30, 30)
    return img


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HWC uint8 RGB → ``[1, 3, H, W]`` float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255


PHYSADV = str(Path(sys.executable).with_name("physadv"))


def run_physadv(*args: str, cwd: Path | str | None = None) -> subprocess.CompletedProcess:
    """Run the ``physadv`` console script as a user would; capture its output."""
    return subprocess.run([PHYSADV, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=900)


def interrupt_after_first_step(*args: str) -> subprocess.CompletedProcess:
    """Run ``physadv *args`` (a sticker or patch run) and send it SIGINT (Ctrl-C) once its log shows
    the first optimisation step done; its output when it has ended."""
    process = subprocess.Popen(
        [PHYSADV, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a test run started in the background (`… &`) inherits an ignored SIGINT: give Ctrl-C back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for line in process.stdout:  # one log line a step (--steps 20: a line every 5 %)
            if line.startswith("optimising") and ": 1/" in line:
                process.send_signal(signal.SIGINT)
                break
        stdout, stderr = process.communicate(timeout=900)  # loaded CI machines
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
