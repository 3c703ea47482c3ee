"""torchrun data parallelism: two CPU ranks on gloo make the same sticker as one process, and a run
checkpointed by two ranks resumes in one (the user's command, run as a user runs it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from physadv.distributed import Ranks
from tests.conftest import run_physadv

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


def test_ranks_share_a_batch_without_gaps():
    items = list(range(10))
    shares = [Ranks(r, 3).share(items) for r in range(3)]
    assert shares == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert Ranks().share(items) == items and Ranks().main and not Ranks().active
    # the defense table's rows: dealt round-robin, every row on exactly one rank
    assert [Ranks(r, 2).deal(list(range(5))) for r in range(2)] == [[0, 2, 4], [1, 3]]


def test_a_stray_rank_variable_does_not_silence_errors(tmp_path, monkeypatch, capsys):
    """Only torchrun's ranks other than 0 keep quiet: a RANK left in a shell (a cluster's job
    environment) without several ranks must not hide a user's error."""
    from physadv import cli

    monkeypatch.setenv("RANK", "3")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(SystemExit) as ended:
        cli.main(["eval", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "e")])
    assert ended.value.code == 2 and "physadv: error: source" in capsys.readouterr().err


def test_a_silent_rank_waits_for_rank_0_on_errors_but_not_on_ctrl_c(monkeypatch, capsys):
    """Rank 1 of 2 says nothing; on an error it lingers so that torchrun does not stop rank 0 before
    rank 0 has said it, but Ctrl-C reaches every rank at once, so it leaves without waiting."""
    from physadv import cli

    slept = []
    monkeypatch.setattr(cli.time, "sleep", slept.append)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("TORCHELASTIC_ERROR_FILE", raising=False)
    with pytest.raises(SystemExit) as ended:
        cli.main(["eval", "/nonexistent/drive.mp4", "--out", "/nonexistent/e"])
    assert ended.value.code == 2 and slept == [cli.SILENT_RANK_LINGER_S]
    with pytest.raises(SystemExit) as ended:
        cli._say_interrupted("patch", KeyboardInterrupt())
    assert ended.value.code == 130 and slept == [cli.SILENT_RANK_LINGER_S]  # no second wait
    assert capsys.readouterr().err == ""  # rank 1 said neither


def test_scene_training_under_torchrun_is_refused_before_the_street_renders(tmp_path, monkeypatch, capsys):
    """A user trial: both ranks rendered the street for 13 s before being told --scene is one-process."""
    from physadv import cli

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as ended:
        cli.main(
            ["patch", "--scene", "scenes/pedestrians.yaml", "--steps", "1", "--out", str(tmp_path / "p")]
        )
    captured = capsys.readouterr()
    assert ended.value.code == 2 and "--scene under torchrun is not supported yet" in captured.err
    assert "street" not in captured.out + captured.err.replace("--scene", "")  # nothing was rendered


def test_a_bad_input_under_torchrun_is_said_once(tmp_path):
    """Two gloo ranks meet the same bad input: physadv's one-line error is printed by rank 0 alone,
    before torchrun's own report of the failed ranks (which physadv cannot suppress)."""
    missing = tmp_path / "missing.mp4"
    command = [TORCHRUN, "--standalone", "--nproc-per-node=2", "-m", "physadv", "eval", str(missing)]
    result = subprocess.run(
        [*command, "--out", str(tmp_path / "e")], capture_output=True, text=True, timeout=300
    )
    said = [line for line in result.stderr.splitlines() if line.startswith("physadv: error:")]
    assert said == [
        f"physadv: error: source '{missing}' does not exist (a video file, a folder of frames or a "
        "scene spec)"
    ]
    # then torchrun's own report (its process, not physadv's): the rank's exit code, and torchrun's 1
    assert result.returncode == 1 and "ChildFailedError" in result.stderr and "exitcode  : 2" in result.stderr
    assert result.stderr.index("physadv: error:") < result.stderr.index("Traceback")
    assert "traceback : physadv: error: source" in result.stderr  # each rank's line in torchrun's table
    # --sources: a recording only rank 1 would have replayed is checked by every rank before sharing
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(tmp_path / "a.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(3):
        writer.write(np.full((48, 64, 3), 90, np.uint8))
    writer.release()
    (tmp_path / "text.mp4").write_text("not a video\n")
    (tmp_path / "list.txt").write_text("a.avi\ntext.mp4\n")
    listed = subprocess.run(
        [*command[:-1], "--sources", str(tmp_path / "list.txt"), "--out", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = [line for line in listed.stderr.splitlines() if line.startswith("physadv: error:")]
    assert len(said) == 1 and "cannot read video" in said[0] and "text.mp4" in said[0], listed.stderr


def _sticker(out: Path, steps: int, ranks: int = 1, *extra: str) -> subprocess.CompletedProcess:
    args = ["sticker", "--out", out, "--untargeted", "--mask", "blocks", "--steps", str(steps)]
    args += ["--batch", "8", "--pool", "8", "--eval-views", "0", "--no-scenes", "--dpi", "72", *extra]
    if ranks == 1:
        return run_physadv(*args)
    command = [TORCHRUN, "--standalone", f"--nproc-per-node={ranks}", "-m", "physadv", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def _history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_gloo_ranks_make_the_single_process_sticker_and_resume_in_one(tmp_path):
    single = _sticker(tmp_path / "one", 4)
    assert single.returncode == 0, single.stderr
    two = _sticker(tmp_path / "two", 2, 2)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("sticker area") == 1  # rank 0 alone reports
    one, both = _history(tmp_path / "one"), _history(tmp_path / "two")
    assert [h["step"] for h in both] == [1, 2]
    for a, b in zip(one[:2], both, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4) and b["success"] == a["success"]
    # the two ranks' checkpoint, continued by one process to 4 steps: the single run's sticker
    resumed = _sticker(tmp_path / "two", 4, 1, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert [h["step"] for h in _history(tmp_path / "two")] == [1, 2, 3, 4]
    for a, b in zip(one, _history(tmp_path / "two"), strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    png = [np.asarray(Image.open(tmp_path / d / "sticker.png"), dtype=np.int16) for d in ("one", "two")]
    assert np.abs(png[0] - png[1]).max() <= 1  # equal up to float rounding at 8 bits


def _patch(data: Path, out: Path, ranks: int) -> subprocess.CompletedProcess:
    args = ["patch", "--images", data / "images" / "train", "--val", data / "images" / "val", "--out", out]
    # the default lr, total variation off: TV is a sum of |neighbour differences|, and Adam's first
    # step (±lr wherever the gradient is not zero) leaves many neighbours equal up to float rounding;
    # the ranks' gradient, summed in another order, differs from one process's by ~1e-7, which flips
    # the sign of |d|'s derivative at such ties and so moves those pixels a whole lr apart at step 2
    # (measured: every term's gradient agreed to 1e-7; TV's own to 4e-3; with TV off the patches are
    # bit-identical). At lr 0.03 TV stays under its floor for 2 steps, so both settings hide it.
    args += ["--steps", "2", "--batch", "4", "--resolution", "32", "--dpi", "72", "--lambda-tv", "0"]
    if ranks == 1:
        return run_physadv(*args)
    command = [TORCHRUN, "--standalone", f"--nproc-per-node={ranks}", "-m", "physadv", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_two_gloo_ranks_make_the_single_process_patch(tmp_path):
    data = tmp_path / "persons"
    made = run_physadv("scene", "dataset", "--task", "persons", "--out", data, "--train", 6, "--val", 2)
    assert made.returncode == 0, made.stderr
    single = _patch(data, tmp_path / "one", 1)
    assert single.returncode == 0, single.stderr
    two = _patch(data, tmp_path / "two", 2)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("steps in") == 1  # rank 0 alone reports
    # … and says what it read once ("training: 6 images, … objects from …", the same for held-out)
    assert two.stdout.count(" objects from ") == single.stdout.count(" objects from ") == 2, two.stdout
    one, both = _history(tmp_path / "one"), _history(tmp_path / "two")
    assert [h["step"] for h in both] == [1, 2]
    for a, b in zip(one, both, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4) and b["detected"] == a["detected"]
        assert b["objects"] == a["objects"] > 0
    png = [np.asarray(Image.open(tmp_path / d / "patch.png"), dtype=np.int16) for d in ("one", "two")]
    assert png[0].shape == png[1].shape and np.abs(png[0] - png[1]).max() <= 1
    assert png[0].std() > 10  # the 2 steps at lr 0.1 made a pattern of the uniform grey start


def _defend(sticker: Path, out: Path, ranks: int) -> subprocess.CompletedProcess:
    args = ["defend", "--artefact", sticker, "--defenses", "jpeg:75,bits:4", "--out", out]
    args += ["--views", "8", "--adaptive-steps", "2", "--batch", "4"]
    if ranks == 1:
        return run_physadv(*args)
    # --tee 3: every output line says which rank wrote it ("[default1]:…")
    command = [TORCHRUN, "--standalone", f"--nproc-per-node={ranks}", "--tee", "3", "-m", "physadv"]
    command += list(map(str, args))
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def _table(out: Path) -> list[dict]:
    rows = json.loads((out / "defenses.json").read_text())
    for r in rows:
        assert r.pop("ms_per_frame") > 0  # each rank's own clock: the one figure that may differ
    return rows


@pytest.mark.slow
def test_two_gloo_ranks_share_the_defenses_and_write_the_single_process_table(tmp_path):
    made = _sticker(tmp_path / "sticker", 2)
    assert made.returncode == 0, made.stderr
    sticker = tmp_path / "sticker" / "sticker.png"
    single = _defend(sticker, tmp_path / "one", 1)
    assert single.returncode == 0, single.stderr
    two = _defend(sticker, tmp_path / "two", 2)
    assert two.returncode == 0, two.stderr
    said = two.stdout + two.stderr
    assert said.count("wrote ") == 1 and "[default0]:wrote " in said  # rank 0 alone writes the table
    assert "[default0]:2 ranks share the defenses; every rank prepares" in said
    # the rows dealt round-robin: rank 0 the bare model and bits, rank 1 jpeg
    assert "[default1]:adaptive attack through jpeg:75" in said
    assert (
        "[default0]:adaptive attack through bits:4" in said
        and "[default1]:adaptive attack through bits" not in said
    )
    one, both = _table(tmp_path / "one"), _table(tmp_path / "two")
    assert [r["defense"] for r in both] == ["none", "jpeg:75", "bits:4"]
    assert both == one
    # rank 0 wrote both adaptive stickers' pictures, the one rank 1 made too
    for name in ("jpeg_75", "bits_4"):
        png = [
            np.asarray(Image.open(tmp_path / d / f"adaptive_{name}.png"), dtype=np.int16)
            for d in ("one", "two")
        ]
        assert np.abs(png[0] - png[1]).max() <= 1
