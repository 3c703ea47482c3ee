"""Results as physadv reports them: rates with their Wilson intervals, and one way to write any
result to JSON.

Every rate in every file and terminal line is a :class:`Rate` (``k`` of ``n``); in JSON it is
``{"rate", "k", "n", "ci95"}``, rounded to 4 places, with the interval computed from the counts.
Result objects are dataclasses; :func:`write_json` writes them (and plain mappings) the same way
everywhere: dataclasses through their ``to_dict`` (or their fields), paths as text, tuples as
lists, tensors as lists, and a non-finite number as ``null``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Rate:
    """``k`` of ``n``, with a 95 % Wilson score interval."""

    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n)

    def as_dict(self) -> dict:
        low, high = self.interval
        return {
            "rate": round(self.value, 4),
            "k": self.k,
            "n": self.n,
            "ci95": [round(low, 4), round(high, 4)],
        }

    def __str__(self) -> str:
        return format_rate(self.k, self.n)

    @classmethod
    def from_dict(cls, data: dict) -> Rate:
        """The rate a JSON file wrote (``{"k", "n", …}``)."""
        return cls(int(data["k"]), int(data["n"]))


def format_rate(k: int, n: int) -> str:
    """``k`` of ``n`` as every physadv output writes a rate: ``83.3% [70.1, 91.4] (50/60)``, the
    95 % Wilson interval computed from the counts (never from rounded figures, so 5/5 reads
    ``[56.6, 100.0]`` in every report and terminal)."""
    if not n:
        return "—"
    low, high = wilson_interval(k, n)
    return f"{100 * k / n:.1f}% [{100 * low:.1f}, {100 * high:.1f}] ({k}/{n})"


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k/n`` (``(nan, nan)`` when ``n`` is 0)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values (see the module docstring)."""
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return jsonable(obj.to_dict())
    if isinstance(obj, Rate):
        return obj.as_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist"):  # tensors and arrays
        return jsonable(obj.tolist())
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` (a result dataclass or a mapping) as JSON to ``path``, atomically: a crash
    mid-write leaves the previous file, never half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(obj), indent=indent, allow_nan=False) + "\n")
    tmp.replace(path)
    return path
