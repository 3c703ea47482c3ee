"""`physadv demo --quick` end to end, as a newcomer runs it: from a wheel installed into a clean
virtual environment outside the repository."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from physadv.jobs.demo import PATCH_MM

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed_physadv(tmp_path_factory) -> Path:
    """physadv's console script in a fresh venv that has only the wheel built from this checkout
    (and its dependencies, linked from uv's cache: nothing is downloaded again)."""
    uv = Path(sys.executable).with_name("uv")  # setup.sh installs uv into the venv
    root = tmp_path_factory.mktemp("wheel")
    run = dict(check=True, capture_output=True, text=True, timeout=600)
    subprocess.run([uv, "build", "--wheel", "--out-dir", root / "dist", REPO], **run)
    (wheel,) = (root / "dist").glob("physadv-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for scene in (REPO / "scenes").glob("*.yaml"):  # every default file travels inside the package
        assert f"physadv/scenes/{scene.name}" in shipped, scene.name
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, root / "env"], **run)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", root / "env" / "bin" / "python", wheel], **run
    )
    return root / "env" / "bin" / "physadv"


def test_scenes_folder_is_shipped_not_copied():
    """The package's scenes/ is the top-level folder users edit (a link), not a second copy."""
    from physadv.scene.spec import SHIPPED_SCENES

    assert SHIPPED_SCENES.resolve() == (REPO / "scenes").resolve()
    assert {p.name for p in SHIPPED_SCENES.glob("*.yaml")} >= {"lab_rp2.yaml", "driveby_stop.yaml"}


@pytest.mark.slow
def test_demo_quick_writes_the_report_and_every_file(installed_physadv, tmp_path):
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [installed_physadv, "demo", "--quick", "--out", out],
        cwd=tmp_path,  # outside the repository: nothing may be read from the checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert "open" in result.stdout and "report.html" in result.stdout
    report = (out / "report.md").read_text()
    verdict = report.split("\n\n")[1]
    assert "speed limit 45" in verdict and "patch" in verdict and "To print" in verdict
    side = f"{PATCH_MM:g}"
    assert f"A {PATCH_MM / 10:g} cm patch" in verdict and f"one {side} × {side} mm page" in verdict
    for section in (
        "Sticker (RP2)",
        "Patch (Thys et al.)",
        "System level: would the car have stopped, were people lost?",
        "Defenses against the patch",
        "Files",
    ):
        assert f"## {section}" in report, section
    for link in re.findall(r"\]\(([^)]+)\)", report):  # every linked or embedded file exists
        assert (out / link).is_file(), link
    for name in (
        "sticker/sticker_sheet.pdf",
        "patch/patch.pdf",
        "defenses/defenses.md",
        "replay_lab/metrics.json",
    ):
        assert (out / name).is_file(), name
    page = (out / "report.html").read_text()
    assert page.count("<img") >= 4 and "data:image/jpeg;base64," in page  # self-contained pictures
    numbers = json.loads((out / "demo.json").read_text())
    assert [row["defense"] for row in numbers["defenses"]] == ["none", "jpeg:75", "median:3", "lgs"]
    assert numbers["lab"]["conditions"]["clean"]["frames"] == 25  # RP2's five poses, five draws each
    stop = numbers["driveby"]["conditions"]["clean"]["system"]
    assert stop["kind"] == "sign" and stop["rules"]["speed_kmh"] == 10  # the drive-by scene's own speed
    assert "in_time_to_stop" in stop["objects"]["0"] and "Would the car have stopped?" in verdict
    people = numbers["pedestrians"]["conditions"]["attacked"]["system"]
    assert people["kind"] == "people" and people["people"] >= 2  # the scene's own person ids
    assert set(numbers["timings"]) == {"sticker", "sign replays", "patch", "pedestrian replay", "defenses"}
    # the street replay wears the patch and, as a control, a noise patch of the same size
    assert set(numbers["pedestrians"]["conditions"]) == {"clean", "attacked", "noise_control"}
    assert numbers["patch"]["train_scene_frames"] >= 4  # the patch was also made in rendered streets
    assert "conditions_independent" in numbers["patch"]
