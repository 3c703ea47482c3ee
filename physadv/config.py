"""Validated settings: one typed object per job, one source of defaults, a documented key for each.

A settings class is a dataclass deriving from :class:`Settings` whose fields are declared with
:func:`setting` (default, meaning, unit, allowed values, bounds). The same object is filled from its
defaults, a YAML file (``--config run.yaml``) and the command line, in that order, and every value is
checked on the way in: an unknown key is refused naming the nearest valid one, a value of the wrong
type or outside its bounds is refused naming the key. A run writes its resolved settings next to its
results (:meth:`Settings.write_yaml`, one comment per key), and reading that file back gives the same
object (:meth:`Settings.from_yaml`).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Run(Settings):
    ...     steps: int = setting(500, "optimisation steps", minimum=1)
    >>> Run.from_dict({"steps": 20}).steps
    20
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from physadv.errors import PhysadvError


def setting(
    default: Any = dataclasses.MISSING,
    meaning: str = "",
    *,
    unit: str | None = None,
    choices: tuple | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    derived: bool = False,
) -> Any:
    """A documented settings field.

    Args:
        default: the one default (lists and dicts are copied per instance).
        meaning: what the setting does, in a few words (shown in ``--help`` and the written YAML).
        unit: ``px``, ``mm``, ``m``, ``deg``, ``s`` … where the value has one.
        choices: the allowed values, checked on load.
        minimum, maximum: inclusive bounds for numbers, checked on load.
        derived: resolved by the job (e.g. a class id from a name): written out, never read from a file.
    """
    meta = {"meaning": meaning, "unit": unit, "choices": choices, "min": minimum, "max": maximum}
    meta["derived"] = derived
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    if dataclasses.is_dataclass(default) and not isinstance(default, type):
        return dataclasses.field(default_factory=lambda: dataclasses.replace(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def yaml_problem(exc: Exception) -> str:
    """A YAML parse error in one line, with the line and column where the parser stopped."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None:
        return str(exc).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem or str(exc).splitlines()[0]}"


def nearest(word: str, options) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options`` (dotted keys also by their last part),
    or the list of them."""
    options = sorted(options)
    by_name = {o: o for o in options} | {o.rsplit(".", 1)[-1]: o for o in options if "." in o}
    close = difflib.get_close_matches(word.rsplit(".", 1)[-1], list(by_name), n=1, cutoff=0.5)
    close = close or difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return (
        f" (did you mean '{by_name.get(close[0], close[0])}'?)"
        if close
        else f" (valid: {', '.join(options)})"
    )


def _strip_optional(kind) -> tuple[Any, bool]:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return (args[0] if len(args) == 1 else kind), True
    return kind, False


def _convert(value: Any, kind: Any, key: str, allow_derived: bool = False) -> Any:
    """``value`` as ``kind`` (an annotation), or a one-line error naming ``key``."""
    kind, optional = _strip_optional(kind)
    if value is None:
        if optional:
            return None
        raise PhysadvError(f"setting '{key}' cannot be empty")
    origin = typing.get_origin(kind)
    bad = PhysadvError(f"setting '{key}' must be {_describe(kind)}, got {value!r}")
    if isinstance(kind, type) and issubclass(kind, Settings):
        if isinstance(value, kind):
            return value
        if not isinstance(value, dict):
            raise bad
        return kind.from_dict(value, prefix=f"{key}.", allow_derived=allow_derived)
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, (list, tuple)) or (args[-1] is not Ellipsis and len(value) != len(args)):
            raise bad
        items = args[:-1] * len(value) if args[-1] is Ellipsis else args
        return tuple(_convert(v, a, key) for v, a in zip(value, items, strict=True))
    if origin in (list, dict) or kind in (list, dict):
        if not isinstance(value, origin or kind):
            raise bad
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if kind is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise bad
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    if kind is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise bad
    return value


def _describe(kind) -> str:
    kind, optional = _strip_optional(kind)
    names = {int: "a whole number", float: "a number", str: "text", bool: "true or false", Path: "a path"}
    plural = {int: "whole numbers", float: "numbers", str: "texts", Path: "paths"}
    args = [a for a in typing.get_args(kind) if a is not Ellipsis]
    if typing.get_origin(kind) is list and args and args[0] in plural:
        text = f"a list of {plural[args[0]]}"
    elif typing.get_origin(kind) is tuple and len(set(args)) == 1 and args[0] in plural:
        count = "a list of" if Ellipsis in typing.get_args(kind) else f"{len(args)}"
        text = f"{count} {plural[args[0]]}"
    elif typing.get_origin(kind) is tuple:
        text = "a list of " + ", ".join(_describe(a) for a in args)
    elif kind is dict or typing.get_origin(kind) is dict:
        text = "a mapping"
    elif isinstance(kind, type) and issubclass(kind, Settings):
        text = "a mapping of settings"
    else:
        text = names.get(kind, getattr(kind, "__name__", str(kind)))
    return text + (" or empty" if optional else "")


@dataclasses.dataclass
class Settings:
    """Base of every settings class: validated loading from dicts and YAML, and writing them back."""

    @classmethod
    def _fields(cls) -> dict[str, tuple[dataclasses.Field, Any]]:
        hints = typing.get_type_hints(cls)
        own = cls.__dict__.get("__annotations__", {})  # a job's own settings first, shared ones after
        ordered = sorted(dataclasses.fields(cls), key=lambda f: f.name not in own)
        return {f.name: (f, hints[f.name]) for f in ordered}

    def __post_init__(self) -> None:
        for name, (f, kind) in self._fields().items():
            value = _convert(getattr(self, name), kind, name)
            _check_bounds(value, f.metadata, name)
            object.__setattr__(self, name, value)

    @classmethod
    def keys(cls, prefix: str = "") -> list[str]:
        """Every key, nested ones dotted (``view_range.angle_deg``)."""
        out = []
        for name, (_, kind) in cls._fields().items():
            inner, _ = _strip_optional(kind)
            if isinstance(inner, type) and issubclass(inner, Settings):
                out += inner.keys(f"{prefix}{name}.")
            else:
                out.append(prefix + name)
        return out

    @classmethod
    def from_dict(cls, data: dict, prefix: str = "", allow_derived: bool = False):
        """Defaults overridden by ``data``; unknown keys and bad values are one-line errors."""
        if not isinstance(data, dict):
            raise PhysadvError(f"settings{' ' + prefix.rstrip('.') if prefix else ''} must be a mapping")
        fields = cls._fields()
        values = {}
        for key, value in data.items():
            if key not in fields:
                raise PhysadvError(
                    f"unknown setting '{prefix}{key}'{nearest(prefix + str(key), cls.keys(prefix))}"
                )
            f, kind = fields[key]
            if f.metadata.get("derived") and not allow_derived:
                continue  # resolved by the job; a written file carries it for the record only
            values[key] = _convert(value, kind, prefix + key, allow_derived)
        return cls(**values)

    def to_dict(self) -> dict:
        """Plain values (paths as text, tuples as lists, nested settings as mappings)."""
        return {name: _plain(getattr(self, name)) for name in self._fields()}

    def merged(self, overrides: dict):
        """A copy with ``overrides`` (dotted keys allowed, ``None`` values ignored), validated."""
        data = self.to_dict()
        for key, value in overrides.items():
            if value is None:
                continue
            *parents, last = key.split(".")
            node = data
            for part in parents:
                node = node[part]
            node[last] = _plain(value)
        return type(self).from_dict(data, allow_derived=True)

    @classmethod
    def from_yaml(cls, path: str | Path):
        """Settings from a YAML file (a mapping of keys); errors name the file."""
        path = Path(path)
        if not path.is_file():
            raise PhysadvError(f"settings file '{path}' not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise PhysadvError(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
        try:
            return cls.from_dict(data)
        except PhysadvError as exc:
            raise PhysadvError(f"{path}: {exc}") from None

    def write_yaml(self, path: str | Path, title: str = "") -> Path:
        """Write every setting, each with a ``# (type, unit) meaning`` comment; reads back equal."""
        path = Path(path)
        lines = [f"# {title}" if title else "# physadv settings (resolved)", ""]
        lines += self._yaml_lines("")
        path.write_text("\n".join(lines) + "\n")
        return path

    def _yaml_lines(self, indent: str) -> list[str]:
        lines = []
        for name, (f, kind) in self._fields().items():
            value = getattr(self, name)
            meta = f.metadata
            note = _describe(kind) + (f", {meta['unit']}" if meta.get("unit") else "")
            if meta.get("choices"):
                note += ": " + " | ".join(map(str, meta["choices"]))
            comment = f"  # ({note}) {meta.get('meaning', '')}".rstrip()
            if meta.get("derived"):
                comment += " [resolved by the run; not read back]"
            if isinstance(value, Settings):
                lines.append(f"{indent}{name}:{comment}")
                lines += value._yaml_lines(indent + "  ")
            else:
                dumped = yaml.safe_dump({name: _plain(value)}, default_flow_style=True, width=10**6)
                lines.append(f"{indent}{dumped.strip().removeprefix('{').removesuffix('}')}{comment}")
        return lines


def _check_bounds(value: Any, meta, key: str) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices and value not in choices:
        raise PhysadvError(f"setting '{key}' is '{value}'{nearest(str(value), map(str, choices))}")
    for bound, ok in (("min", lambda v, b: v >= b), ("max", lambda v, b: v <= b)):
        limit = meta.get(bound)
        if limit is not None and isinstance(value, (int, float)) and not ok(value, limit):
            word = "at least" if bound == "min" else "at most"
            raise PhysadvError(f"setting '{key}' must be {word} {limit:g}, got {value:g}")


def _plain(value: Any) -> Any:
    if isinstance(value, Settings):
        return value.to_dict()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
