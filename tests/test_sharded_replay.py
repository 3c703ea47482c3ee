"""Sharded replay (issue 23.2): ``torchrun … -m physadv eval`` on two CPU ranks (gloo) writes the
frames.csv and metrics.json one process writes, for a video file, a rendered scene and a list of
recordings (``--sources``), run as a user runs them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from physadv.data.source_list import read_source_list
from physadv.errors import PhysadvError
from tests.conftest import run_physadv

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
SHORT = {"start_ft": 30, "end_ft": 15, "speed_kmh": 30}  # 17 frames


def _eval(out: Path, ranks: int, *args) -> dict:
    """``physadv eval ARGS --out OUT`` in one process or on ``ranks`` gloo ranks; its metrics."""
    args = ["eval", *map(str, args), "--batch", "4", "--out", str(out)]  # 17 frames: a last, short round
    if ranks == 1:
        done = run_physadv(*args)
    else:
        command = [TORCHRUN, "--standalone", f"--nproc-per-node={ranks}", "-m", "physadv", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("wrote ") == 1  # rank 0 alone reports
    return json.loads((out / "metrics.json").read_text())


def _same_files(one: Path, two: Path, m1: dict, m2: dict) -> list[dict]:
    """The two runs wrote the same rows and rates (all but their timings); the rows."""
    for m in (m1, m2):
        for key in ("seconds", "frames_per_second"):
            m.pop(key)
    assert m1 == m2
    assert (one / "frames.csv").read_text() == (two / "frames.csv").read_text()
    with open(one / "frames.csv", newline="") as f:
        return list(csv.DictReader(f))


def _frames(video: Path) -> int:
    return int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))


@pytest.fixture(scope="module")
def driveby(tmp_path_factory):
    """A short rendered drive-by (30 → 15 ft, 17 frames) as an mp4 with its ground truth."""
    from physadv.scene.render import render_scene
    from physadv.scene.spec import load_spec
    from physadv.scene.video import write_scene

    spec = load_spec("scenes/driveby_stop.yaml")
    spec["driveby"].update(SHORT)
    out = tmp_path_factory.mktemp("driveby")
    return out, write_scene(render_scene(spec), out, fps=30)


@pytest.mark.slow
def test_two_ranks_replay_a_video_as_one_process(driveby, tmp_path):
    video, n = driveby
    args = (video / "scene.mp4", "--gt", video / "ground_truth.jsonl", "--gt-class", "stop")
    one, two = tmp_path / "one", tmp_path / "two"
    rows = _same_files(one, two, _eval(one, 1, *args), _eval(two, 2, *args))
    assert [int(r["frame"]) for r in rows] == list(range(n))  # every frame once, in order
    assert _frames(two / "annotated.mp4") == n


@pytest.mark.slow
def test_two_ranks_replay_a_rendered_scene_with_a_sticker_as_one_process(tmp_path):
    spec = yaml.safe_load(Path("scenes/driveby_stop.yaml").read_text())
    spec["driveby"].update(SHORT)
    scene = tmp_path / "short_driveby.yaml"
    scene.write_text(yaml.safe_dump(spec))
    sticker = np.zeros((60, 60, 4), np.uint8)
    sticker[20:40, 5:55] = (20, 20, 20, 255)  # a black bar across the face
    cv2.imwrite(str(tmp_path / "bar.png"), sticker)
    args = (scene, "--artefact", tmp_path / "bar.png")
    one, two = tmp_path / "one", tmp_path / "two"
    m1, m2 = _eval(one, 1, *args), _eval(two, 2, *args)
    rows = _same_files(one, two, m1, m2)
    assert list(m1["conditions"]) == ["clean", "attacked"]
    assert {r["condition"] for r in rows} == {"clean", "attacked"} and len(rows) == 2 * 17
    assert _frames(two / "annotated.mp4") == _frames(two / "annotated_clean.mp4") == 17


def _plain_avi(path: Path, frames: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (96, 64))
    for i in range(frames):
        writer.write(np.full((64, 96, 3), (i * 7) % 255, np.uint8))
    writer.release()
    return path


@pytest.mark.slow
def test_a_list_of_recordings_is_one_report_split_by_recording(driveby, tmp_path):
    video, n = driveby
    _plain_avi(tmp_path / "b" / "scene.avi", 9)  # the same stem: named by folder too
    listing = tmp_path / "list.txt"
    listing.write_text(f"{video / 'scene.mp4'}  {video / 'ground_truth.jsonl'}\n# skipped\n\nb/scene.avi\n")
    args = ("--sources", listing, "--gt-class", "stop")
    one, two = tmp_path / "one", tmp_path / "two"
    m1, m2 = _eval(one, 1, *args), _eval(two, 2, *args)
    rows = _same_files(one, two, m1, m2)
    first = f"{video.name}_scene"
    assert list(m1["conditions"]) == ["all recordings", first, "b_scene"]
    everything, judged, plain = (m1["conditions"][k] for k in ("all recordings", first, "b_scene"))
    assert everything["frames_replayed"] == n + 9 == judged["frames_replayed"] + plain["frames_replayed"]
    assert everything["true_positive_rate"] == judged["true_positive_rate"]  # the only ground truth
    assert everything["without_ground_truth"]["frames"] == plain["without_ground_truth"]["frames"] == 9
    assert "system" in judged and "system" not in everything  # a drive's timeline is its own
    assert [r["condition"] for r in rows] == [first] * n + ["b_scene"] * 9
    assert _frames(two / f"annotated_{first}.mp4") == n and _frames(two / "annotated_b_scene.mp4") == 9
    assert "b_scene" in (one / "report.md").read_text()


def test_source_lists_name_their_bad_lines(tmp_path):
    _plain_avi(tmp_path / "a.avi", 2)
    listing = tmp_path / "list.txt"
    listing.write_text('a.avi\n"a.avi" extra.jsonl\n')
    with pytest.raises(PhysadvError, match=r"line 2: '.*extra.jsonl' does not exist"):
        read_source_list(listing)
    listing.write_text("a.avi\n./a.avi\n")
    with pytest.raises(PhysadvError, match="twice"):
        read_source_list(listing)
    listing.write_text("# nothing\n\n")
    with pytest.raises(PhysadvError, match="lists no recordings"):
        read_source_list(listing)
    listing.write_text("a.avi x y\n")
    with pytest.raises(PhysadvError, match="line 1: give a recording and at most its ground truth"):
        read_source_list(listing)


def test_eval_says_what_goes_with_sources(tmp_path):
    _plain_avi(tmp_path / "a.avi", 2)
    listing = tmp_path / "list.txt"
    listing.write_text("a.avi\n")
    bad = run_physadv("eval", "--sources", listing, "--gt", listing, "--out", tmp_path / "o")
    assert bad.returncode == 2 and "not --gt" in bad.stderr
    bad = run_physadv("eval", "--out", tmp_path / "o")
    assert bad.returncode == 2 and "give SOURCE" in bad.stderr
