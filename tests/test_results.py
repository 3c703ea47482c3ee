"""One way to write results: rates with intervals from the counts, dataclasses, paths, NaN as null."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from physadv.results import Rate, write_json


@dataclass
class _Row:
    name: str
    rate: Rate
    where: Path
    score: float


def test_write_json_writes_every_result_the_same_way(tmp_path):
    row = _Row("clean", Rate(5, 5), Path("runs/x"), float("nan"))
    path = write_json(tmp_path / "r.json", {"rows": [row], "shape": (2, 3), "t": torch.tensor([1.5])})
    data = json.loads(path.read_text())
    assert data["rows"][0] == {
        "name": "clean",
        "rate": {"rate": 1.0, "k": 5, "n": 5, "ci95": [0.5655, 1.0]},
        "where": "runs/x",
        "score": None,  # NaN is not JSON: null
    }
    assert data["shape"] == [2, 3] and data["t"] == [1.5]
    assert Rate.from_dict(data["rows"][0]["rate"]) == Rate(5, 5)
    assert str(Rate(5, 5)) == "100.0% [56.6, 100.0] (5/5)" and not list(tmp_path.glob("*.tmp"))
