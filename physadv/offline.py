"""Offline safety: Ultralytics must never reach the network from physadv.

Ultralytics reads its environment once, at import, so this runs before the first
``import ultralytics`` (``physadv/__init__.py`` calls it). It

- sets ``YOLO_OFFLINE=1`` (no online checks), ``YOLO_AUTOINSTALL=false`` (no pip installs);
- points ``YOLO_CONFIG_DIR`` at physadv's own folder unless the user already chose one;
- writes ``settings.json`` there with ``sync`` off, so no telemetry is attempted;
- places a TrueType font there as ``Arial.ttf``/``Arial.Unicode.ttf``, because Ultralytics'
  ``check_font`` downloads Arial when plotting, even offline.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def physadv_home() -> Path:
    """Folder for physadv's caches and Ultralytics' settings (``$PHYSADV_HOME`` or ``~/.cache/physadv``)."""
    return Path(os.environ.get("PHYSADV_HOME", Path.home() / ".cache" / "physadv")).expanduser()


def bundled_font() -> Path | None:
    """A TTF that ships inside an installed package (matplotlib's DejaVu Sans)."""
    spec = importlib.util.find_spec("matplotlib")  # locate, don't import: importing costs ~1 s
    if spec is None or not spec.submodule_search_locations:
        return None
    font = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return font if font.is_file() else None


def _prepare_config_dir(config_dir: Path) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    settings = config_dir / "settings.json"
    current: dict = {}
    if settings.is_file():
        try:
            current = json.loads(settings.read_text())
        except (OSError, ValueError):
            current = {}
    if current.get("sync") is not False:
        current["sync"] = False
        settings.write_text(json.dumps(current, indent=2))
    font = bundled_font()
    for name in FONT_NAMES:
        target = config_dir / name
        if font is not None and not target.exists():
            shutil.copyfile(font, target)


def configure_offline() -> Path:
    """Prepare the environment so Ultralytics stays offline; returns its config folder.

    Safe to call more than once. Has an effect on Ultralytics only if it has not been imported yet.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_VERBOSE", "false")
    base = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(physadv_home() / "ultralytics")))
    config_dir = base.expanduser() / "Ultralytics"  # Ultralytics appends this to YOLO_CONFIG_DIR
    try:
        _prepare_config_dir(config_dir)
    except OSError:
        pass  # a read-only home: Ultralytics falls back to a temp dir; sync stays off via YOLO_OFFLINE
    return config_dir
