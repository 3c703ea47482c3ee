"""The code base stays lint-clean (ruff is a test dependency, configured in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = str(Path(sys.executable).with_name("ruff"))
    result = subprocess.run(
        [ruff, "check", "physadv", "tests", "cli.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
