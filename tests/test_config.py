"""Settings: one source of defaults, validated on the way in, written and read back unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from physadv.config import Settings, setting
from physadv.errors import PhysadvError
from tests.conftest import run_physadv


@dataclass
class Inner(Settings):
    size: tuple[float, float] = setting((1.0, 2.0), "a range", unit="m")


@dataclass
class Run(Settings):
    steps: int = setting(10, "steps", minimum=1)
    loss: str = setting("max", "reduction", choices=("max", "topk"))
    lr: float = setting(0.1, "rate")
    out: Path | None = setting(None, "a file")
    inner: Inner = setting(Inner(), "nested")
    resolved: int = setting(0, "filled in by the job", derived=True)


def test_values_are_checked_on_the_way_in():
    assert Run.from_dict({"steps": 3.0, "lr": 1, "out": "a/b"}) == Run(steps=3, lr=1.0, out=Path("a/b"))
    cases = {
        "stepz": "unknown setting 'stepz' (did you mean 'steps'?)",
        "steps": "setting 'steps' must be at least 1, got 0",
        "loss": "setting 'loss' is 'mx' (did you mean 'max'?)",
        "lr": "setting 'lr' must be a number, got 'fast'",
        "size": "unknown setting 'size' (did you mean 'inner.size'?)",
    }
    values = {"stepz": 1, "steps": 0, "loss": "mx", "lr": "fast", "size": [1, 2]}
    for key, message in cases.items():
        with pytest.raises(PhysadvError) as err:
            Run.from_dict({key: values[key]})
        assert str(err.value) == message
    with pytest.raises(PhysadvError, match="setting 'inner.size' must be 2 numbers"):
        Run.from_dict({"inner": {"size": [1, 2, 3]}})
    with pytest.raises(PhysadvError, match="must be at least 1"):
        Run(steps=0)  # the library checks as the file and the command line do


def test_yaml_round_trip_and_derived_keys(tmp_path):
    run = Run(steps=7, out=Path("x.png"), inner=Inner((0.5, 9.0)), resolved=4)
    path = run.write_yaml(tmp_path / "run.yaml")
    text = path.read_text()
    assert (
        "steps: 7  # (a whole number) steps" in text and "size: [0.5, 9.0]  # (2 numbers, m) a range" in text
    )
    back = Run.from_yaml(path)
    assert back == Run(steps=7, out=Path("x.png"), inner=Inner((0.5, 9.0)))  # 'resolved' is not read back
    assert Run.from_dict(run.to_dict(), allow_derived=True) == run
    assert run.merged({"inner.size": (2, 3), "steps": None}).inner.size == (2.0, 3.0)
    (tmp_path / "bad.yaml").write_text("steps: [1\n")
    with pytest.raises(PhysadvError, match="bad.yaml: not valid YAML"):
        Run.from_yaml(tmp_path / "bad.yaml")


def test_sticker_settings_errors_are_one_line(tmp_path):
    (tmp_path / "typo.yaml").write_text("attack:\n  stepz: 3\n")
    bad = run_physadv("sticker", "--out", tmp_path / "x", "--config", tmp_path / "typo.yaml")
    assert bad.returncode == 2
    assert "unknown setting 'attack.stepz' (did you mean 'attack.steps'?)" in bad.stderr
    bad = run_physadv("sticker", "--out", tmp_path / "x", "--untargeted", "--task", "detekt")
    assert bad.returncode == 2 and "setting 'task' is 'detekt' (did you mean 'detect'?)" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_defend_reoptimises_a_patch_with_the_settings_it_was_made_with():
    from physadv.jobs.defend_patch import adaptive_config
    from physadv.jobs.patch_config import PatchJob

    made = PatchJob().merged({"attack.size_mm": 250.0, "attack.eot.crease": 0.7, "attack.batch": 6})
    sidecar = {"size_mm": [250.0, 250.0], "settings": made.to_dict()}
    config, job = adaptive_config(sidecar, ["person"], steps=7, batch=0, resolution=64, seed=3)
    assert job == made and config.size_mm == 250.0 and config.eot.crease == 0.7
    assert (config.steps, config.batch, config.resolution, config.seed) == (7, 6, 64, 3)
    # a patch from before patches carried their settings: its printed size, the defaults otherwise
    old, job = adaptive_config({"size_mm": [300.0, 300.0]}, ["person"], 7, 4, 64, 3)
    assert job is None and old.size_mm == 300.0 and old.eot.crease == 0.3 and old.batch == 4
