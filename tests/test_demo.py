"""`physadv demo --quick` end to end, as a newcomer runs it."""

from __future__ import annotations

import json
import re

from tests.conftest import run_physadv


def test_demo_quick_writes_the_report_and_every_file(tmp_path):
    out = tmp_path / "demo"
    result = run_physadv("demo", "--quick", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "open" in result.stdout and "report.html" in result.stdout
    report = (out / "report.md").read_text()
    verdict = report.split("\n\n")[1]
    assert "speed limit 45" in verdict and "patch" in verdict and "To print" in verdict
    for section in ("Sticker (RP2)", "Patch (Thys et al.)", "Defenses against the patch", "Files"):
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
    assert set(numbers["timings"]) == {"sticker", "sign replays", "patch", "pedestrian replay", "defenses"}
    # the street replay wears the patch and, as a control, a noise patch of the same size
    assert set(numbers["pedestrians"]["conditions"]) == {"clean", "attacked", "noise_control"}
    assert numbers["patch"]["train_scene_frames"] >= 4  # the patch was also made in rendered streets
    assert "conditions_independent" in numbers["patch"]
