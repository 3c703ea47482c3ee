"""physadv never touches the network: imports, model building and checks run with sockets disabled."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from physadv.errors import ModelError
from physadv.models import load_model

ROOT = Path(__file__).resolve().parents[1]

NO_NETWORK = textwrap.dedent(
    """
    import socket, sys
    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args else kwargs)
        raise OSError("network disabled by the test")
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    import physadv
    from physadv.models import load_model
    from physadv.models.check import check_model
    from ultralytics.utils.checks import check_font
    report = check_model(load_model("yolo11n.yaml", device="cpu"))
    assert report.attackable, report
    font = check_font("Arial.ttf")
    assert font is not None, "the font must be placed locally, not downloaded"
    try:
        load_model("yolov8n.pt", device="cpu")
    except Exception as exc:
        assert "never downloads" in str(exc), exc
    print("ATTEMPTS", len(attempts), attempts[:3])
    sys.exit(1 if attempts else 0)
    """
)


def test_no_socket_is_touched(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_")}
    env["PHYSADV_HOME"] = str(tmp_path / "home")  # a fresh home: nothing placed before this run
    result = subprocess.run(
        [sys.executable, "-c", NO_NETWORK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "ATTEMPTS 0" in result.stdout
    assert (tmp_path / "home" / "ultralytics" / "Ultralytics" / "Arial.ttf").is_file()


def test_environment_is_offline():
    assert os.environ["YOLO_OFFLINE"] == "1"
    assert os.environ["YOLO_AUTOINSTALL"] == "false"
    from ultralytics.utils import ONLINE, SETTINGS

    assert ONLINE is False
    assert SETTINGS["sync"] is False


def test_remote_weight_name_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="never downloads weights"):
        load_model("yolo26n.pt", device="cpu")
    assert not (tmp_path / "yolo26n.pt").exists()
