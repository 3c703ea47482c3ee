"""Command-line options made from settings classes, so a default is written once (in the settings) and
a run's settings come from its defaults, then ``--config FILE``, then the flags a user typed."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import typer

from physadv.config import Settings


def _field(cls: type[Settings], key: str) -> dataclasses.Field:
    *parents, last = key.split(".")
    for part in parents:
        cls = typing.get_type_hints(cls)[part]
    return next(f for f in dataclasses.fields(cls) if f.name == last)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def _nested_default(cls: type[Settings], key: str) -> Any:
    """The default ``key`` has in ``cls``'s own default of the outer setting: a job may set a nested
    setting's default differently from the inner class (the patch job's ``attack.eot.crease``)."""
    first, *rest = key.split(".")
    value = _default(next(f for f in dataclasses.fields(cls) if f.name == first))
    for part in rest:
        value = getattr(value, part)
    return value


def option(cls: type[Settings], key: str, *flags: str) -> Any:
    """A typer option for setting ``key`` of ``cls``: its meaning and default in the help, its bounds
    checked, and ``None`` when the user did not type it (so ``--config`` and the default stand)."""
    f = _field(cls, key)
    meta = f.metadata
    name = key.split(".")[-1].replace("_", "-")
    default = _nested_default(cls, key)
    if not flags:
        flags = (f"--{name}/--no-{name}",) if isinstance(default, bool) else (f"--{name}",)
    # typer's rich help reads "[...]" in a help text as markup and drops it: the unit goes in
    # parentheses, and the default goes through show_default (the option's own default is None)
    unit = f" ({meta['unit']})" if meta.get("unit") else ""
    shown = (
        "none" if default is None else ("on" if default is True else "off" if default is False else default)
    )
    help_text = f"{meta.get('meaning', '')}{unit}"
    return typer.Option(
        None, *flags, help=help_text, min=meta.get("min"), max=meta.get("max"), show_default=str(shown)
    )


def config_option() -> Any:
    return typer.Option(
        None,
        "--config",
        help="Settings YAML (e.g. an earlier run's config.yaml); flags typed here override it.",
    )


def resolve(cls: type[Settings], config: Path | None, given: dict[str, Any]) -> Settings:
    """Defaults, then ``config``, then the non-``None`` values of ``given`` (keyed by parameter name:
    a top-level key, or the last part of a nested one such as ``steps`` for ``attack.steps``)."""
    settings = cls.from_yaml(config) if config is not None else cls()
    keys = cls.keys()
    overrides = {}
    for name, value in given.items():
        if value is None:
            continue
        matches = [name] if name in keys else [k for k in keys if k.endswith("." + name)]
        if len(matches) != 1:
            raise ValueError(f"option '{name}' maps to {matches or 'no setting'} of {cls.__name__}")
        overrides[matches[0]] = value
    return settings.merged(overrides)


def end2end_option():
    """``--end2end/--nms`` for every command that loads a detector to attack or judge it."""
    return typer.Option(
        None,
        "--end2end/--nms",
        help="Detectors with an NMS-free head (YOLO26): attack and judge that one-to-one head "
        "(--end2end) or the one-to-many branch with NMS (--nms). Default: as Ultralytics' predict.",
    )


def fps_option():
    """``--fps`` for every command that reads a recording's time (``eval``, ``track``)."""
    return typer.Option(
        None,
        help="The recording's frame rate, frames per second, when its file's is wrong or missing (physadv "
        "warns when it cannot trust it, e.g. a damaged header): every frame is then timed at index ÷ FPS.",
    )
