"""The replay harness: ground-truth files, video sources (including broken ones), tallies,
flat memory, and ``physadv eval`` run as a user runs it (the sign tracker: test_recordings.py)."""

from __future__ import annotations

import csv
import json
import resource

import cv2
import numpy as np
import pytest
from conftest import run_physadv

from physadv.data.groundtruth import distance_from_box, focal_px, load_ground_truth
from physadv.errors import PhysadvError
from physadv.harness.sources import VideoSource
from physadv.harness.tally import Bins, Tally
from physadv.scene.spec import FT


@pytest.fixture(scope="module")
def driveby(tmp_path_factory):
    """A short rendered drive-by (30 → 15 ft) written to mp4 with its ground truth."""
    from physadv.scene.render import render_scene
    from physadv.scene.spec import load_spec
    from physadv.scene.video import write_scene

    spec = load_spec("scenes/driveby_stop.yaml")
    spec["driveby"].update(start_ft=30, end_ft=15, speed_kmh=30)
    out = tmp_path_factory.mktemp("driveby")
    n = write_scene(render_scene(spec), out, fps=30)
    return out, n


def _avi(path, frames: int, size=(96, 64)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, size)
    for i in range(frames):
        image = np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8)
        cv2.putText(image, str(i), (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1, (0, 0, 255), 2)
        writer.write(image)
    writer.release()


def test_ground_truth_formats_and_errors(tmp_path):
    jsonl = tmp_path / "gt.jsonl"
    jsonl.write_text(
        '{"frame": 0, "boxes": [[10, 20, 50, 60]], "class": "stop sign", "distance_m": 3.5}\n'
        '{"index": 2, "objects": [{"class_name": "stop", "box": [1, 2, 3, 4], "angle_deg": 12}]}\n'
    )
    gt = load_ground_truth(jsonl)
    assert (
        gt[0][0].box == (10, 20, 50, 60) and gt[0][0].distance_m == 3.5 and gt[0][0].class_name == "stop sign"
    )
    assert gt[2][0].angle_deg == 12 and 1 not in gt
    table = tmp_path / "gt.csv"
    table.write_text("frame,x1,y1,x2,y2,class\n4,0,0,10,10,stop sign\n4,20,20,30,40,person\n")
    assert [o.class_name for o in load_ground_truth(table)[4]] == ["stop sign", "person"]
    table.write_text("frame,x1,y1,x2,y2\n4,0,0,10,x\n")  # nothing usable left: an error naming the line
    with pytest.raises(PhysadvError, match=r"no usable box.*gt.csv:2: a box must be four numbers"):
        load_ground_truth(table)
    jsonl.write_text('{"frame": 0, "box": [10, 20, 5, 60]}\n')
    with pytest.raises(PhysadvError, match=r"gt.jsonl:1: box .* zero or negative width"):
        load_ground_truth(jsonl)


def test_distance_from_box_height():
    f = focal_px(640, 60)
    assert f == pytest.approx(554.26, abs=0.01)
    # a 0.75 m sign 100 px tall: 0.75 · 554.26 / 100 m
    assert distance_from_box((0, 0, 100, 100), 0.75, f) == pytest.approx(4.157, abs=1e-3)


def test_tally_rates_bins_and_ap():
    tally = Tally("detect", Bins(), targeted=False)
    rows = [
        {"verdict": "true_positive", "hidden": False, "distance_m": 4 * FT, "angle_deg": 5},
        {"verdict": "disappeared", "hidden": True, "distance_m": 12 * FT, "angle_deg": -20},
    ]
    # detections: 0.9 hit, 0.8 miss, 0.3 hit; 3 objects → precision/recall steps 1/3@1, 2/3@2/3
    tally.add_frame(rows, hallucinations=1, ap_scores=[(0.9, True), (0.8, False), (0.3, True)], positives=3)
    out = tally.as_dict()
    assert out["true_positive_rate"]["k"] == 1 and out["true_positive_rate"]["n"] == 2
    assert out["by_distance"]["<5 ft"]["true_positive_rate"]["rate"] == 1.0
    assert out["by_distance"]["10–20 ft"]["disappearance_rate"]["rate"] == 1.0
    assert list(out["by_angle"]) == ["<15°", "15–30°"]
    assert out["hallucinations_per_frame"] == 1.0
    assert out["ap50"] == pytest.approx(1 / 3 * 1.0 + 1 / 3 * (2 / 3), abs=1e-4)


def test_a_replays_warnings_are_said_once_naming_their_conditions():
    """Clean and attacked read the same recording: its warning is one line naming both; the ground
    truth's dropped boxes come first; a list's recordings name their own."""
    from physadv.jobs.replay import run_warnings

    dropped = {"boxes": {"summary": "ground truth: 3 box(es) kept, 1 box(es) dropped (x2 <= x1)"}}
    result = {
        "ground_truth_read": dropped,
        "conditions": {"clean": {"warnings": ["lost 2"]}, "attacked": {"warnings": ["lost 2", "fps"]}},
    }
    assert run_warnings(result) == [dropped["boxes"]["summary"], "clean, attacked: lost 2", "attacked: fps"]
    listed = {"conditions": {"all recordings": {}, "a.mp4": {"ground_truth_read": dropped}, "b.mp4": {}}}
    assert run_warnings(listed) == [f"a.mp4: {dropped['boxes']['summary']}"]


def test_truncated_and_corrupt_videos_read_as_far_as_they_go(tmp_path):
    path = tmp_path / "v.avi"
    _avi(path, 40)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[: len(data) // 2])
    source = VideoSource(truncated)
    read = [f.index for f in source.frames()]
    assert 5 < len(read) < 40 and read == list(range(len(read)))
    assert source.unread.first == len(read) and source.unread.count == 40 - len(read)
    assert "ends early" in source.unread.reasons[0]
    broken_mp4 = tmp_path / "broken.mp4"
    writer = cv2.VideoWriter(str(broken_mp4), cv2.VideoWriter_fourcc(*"mp4v"), 30, (96, 64))
    for _ in range(10):
        writer.write(np.zeros((64, 96, 3), np.uint8))
    writer.release()
    broken_mp4.write_bytes(broken_mp4.read_bytes()[:-400])  # mp4v keeps its index at the end
    with pytest.raises(PhysadvError, match="cannot read video"):
        VideoSource(broken_mp4)


def test_eval_cli_on_a_rendered_drive_by_video(driveby, tmp_path):
    video, n = driveby
    out = tmp_path / "eval"
    result = run_physadv(
        "eval", video / "scene.mp4", "--gt", video / "ground_truth.jsonl", "--gt-class", "stop", "--out", out
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    rec = metrics["conditions"]["recording"]
    with open(out / "frames.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["object"] != ""]
    assert rec["frames"] == n and rec["true_positive_rate"]["n"] == len(rows) == n
    assert rec["true_positive_rate"]["k"] == sum(r["verdict"] == "true_positive" for r in rows)
    assert rec["true_positive_rate"]["rate"] > 0.8  # the embedded detector sees a clean stop sign
    assert sum(v["true_positive_rate"]["n"] for v in rec["by_distance"].values()) == n
    assert set(rec["by_distance"]) <= {"10–20 ft", "20–40 ft"}
    annotated = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == n
    report = (out / "report.md").read_text()
    assert "true positive" in report.split("\n")[2] and "plots/true_positive_rate_by_distance.png" in report
    assert (out / "report.html").read_text().count("data:image/png;base64") >= 2
    first = load_ground_truth(video / "ground_truth.jsonl")[0][0].box
    track = ",".join(f"{v:.1f}" for v in first)
    out_t = tmp_path / "t"
    tracked = run_physadv("eval", video / "scene.mp4", "--track", track, "--out", out_t, "--no-video")
    assert tracked.returncode == 0, tracked.stderr
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert "followed as a plane" in metrics["ground_truth"] and "distance_estimated" not in metrics
    with open(tmp_path / "t" / "frames.csv", newline="") as f:
        assert {r["distance_from"] for r in csv.DictReader(f)} == {"tracked corners"}  # PnP on the corners
    by = metrics["conditions"]["recording"]["by_distance"]
    assert sum(v["true_positive_rate"]["n"] for v in by.values()) == n  # every frame: an estimated distance
    cropped = run_physadv(
        "eval", video / "scene.mp4", "--task", "classify", "--crop-model", "default", "--out", tmp_path / "c"
    )  # the classifier judges crops the detector finds (no ground truth)
    assert cropped.returncode == 0, cropped.stderr
    accuracy = json.loads((tmp_path / "c" / "metrics.json").read_text())["conditions"]["recording"][
        "accuracy"
    ]
    assert accuracy["n"] == n and accuracy["rate"] > 0.8
    bad = run_physadv("eval", video / "scene.mp4", "--target-class", "stop sing", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "unknown class 'stop sing'" in bad.stderr and "did you mean" in bad.stderr


def test_eval_judges_the_class_a_scene_spec_shows_not_its_file_name(tmp_path):
    from types import SimpleNamespace

    from physadv.cli.eval import _judged_class
    from physadv.models.classes import ClassNames

    detector = SimpleNamespace(names=ClassNames(["person", "stop sign"]))
    street = tmp_path / "street.yaml"  # people, though the name does not say so
    street.write_text("kind: pedestrians\n")
    crossing = tmp_path / "pedestrian_crossing.yaml"  # a stop sign, though the name says pedestrian
    crossing.write_text("kind: driveby\n")
    assert _judged_class(detector, None, street) == 0
    assert _judged_class(detector, None, crossing) == 1
    assert _judged_class(detector, None, tmp_path / "pedestrians.mp4") == 1  # a video: not a spec


def test_eval_cli_on_a_truncated_video_names_the_first_bad_frame(tmp_path):
    path = tmp_path / "v.avi"
    _avi(path, 30)
    data = path.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    result = run_physadv("eval", tmp_path / "cut.avi", "--out", tmp_path / "out", "--no-video")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    unread = metrics["conditions"]["recording"]["unread_frames"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"the first bad frame is {unread['first']}" in report
    assert "None" not in report and "| recording | 0 |" not in report  # no rates table of 0 judged frames
    assert (
        metrics["frames_replayed"] == unread["first"]
        and "without_ground_truth" in metrics["conditions"]["recording"]
    )
    # no ground truth: said so with the frames that were replayed, never "true positive rate — over 0 frames"
    read = metrics["frames_replayed"]
    assert (
        f"recording: no ground truth for {read} frames (not judged); a 'stop sign' detected in"
        in result.stdout
    )
    assert "over 0 frames" not in result.stdout and "true positive rate —" not in result.stdout
    not_an_image = run_physadv(
        "eval", tmp_path / "cut.avi", "--artefact", tmp_path / "cut.avi", "--out", tmp_path / "s"
    )
    assert not_an_image.returncode == 2 and "cannot read artefact image" in not_an_image.stderr
    cv2.imwrite(str(tmp_path / "sticker.png"), np.zeros((8, 8, 4), np.uint8))
    stuck = run_physadv(
        "eval", tmp_path / "cut.avi", "--artefact", tmp_path / "sticker.png", "--out", tmp_path / "s"
    )
    assert (
        stuck.returncode == 2 and "needs the sign's corners" in stuck.stderr
    )  # --track or --gt with corners
    # an mp4 cut before its index (the moov box is written last): physadv's one line, not FFmpeg's too
    writer = cv2.VideoWriter(str(tmp_path / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for k in range(10):
        writer.write(np.full((64, 96, 3), 20 * k, np.uint8))
    writer.release()
    data = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    cut_mp4 = run_physadv("eval", tmp_path / "cut.mp4", "--out", tmp_path / "m")
    lines = cut_mp4.stderr.strip().splitlines()
    assert cut_mp4.returncode == 2 and len(lines) == 1 and "cannot read video" in lines[0], cut_mp4.stderr
    (tmp_path / "empty.mp4").write_bytes(b"\x00" * 2048)
    nothing = run_physadv("eval", tmp_path / "empty.mp4", "--out", tmp_path / "none")
    assert (
        nothing.returncode == 2
        and "cannot read video" in nothing.stderr
        and "Traceback" not in nothing.stderr
    )


def test_lab_table_clean_and_with_a_sticker(tmp_path):
    from PIL import Image

    spec = tmp_path / "lab.yaml"
    spec.write_text(open("scenes/lab_rp2.yaml").read().replace("draws_per_pose: 5", "draws_per_pose: 1"))
    sticker = np.zeros((300, 300, 4), np.uint8)
    sticker[80:110, 40:260, 3] = 255  # two black bars, RP2's graffiti look
    sticker[190:220, 40:260, 3] = 255
    Image.fromarray(sticker, "RGBA").save(tmp_path / "sticker.png")
    out = tmp_path / "lab"
    result = run_physadv(
        "eval", spec, "--task", "classify", "--target", "speed limit 45",
        "--artefact", tmp_path / "sticker.png", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    table = lines[lines.index(next(x for x in lines if x.startswith("lab table"))) + 1 :][:6]
    assert "clean" in table[0] and "attacked" in table[0]
    assert [t.strip().split("  ")[0] for t in table[1:]] == [
        "5 ft 0°",
        "5 ft 15°",
        "10 ft 0°",
        "10 ft 30°",
        "40 ft 0°",
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    clean, attacked = metrics["conditions"]["clean"], metrics["conditions"]["attacked"]
    assert clean["accuracy"]["k"] >= 4 and len(clean["by_group"]) == len(attacked["by_group"]) == 5
    with open(out / "frames.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    scores = {(r["condition"], r["frame"]): float(r["true_class_score"]) for r in rows}
    assert any(abs(scores[("clean", str(i))] - scores[("attacked", str(i))]) > 0.01 for i in range(5))
    assert (out / "annotated.mp4").is_file() and (out / "annotated_clean.mp4").is_file()


def test_replay_memory_stays_flat_on_a_long_video(tmp_path):
    from physadv.harness.frame_judge import ReplayGoal
    from physadv.harness.replay import Replay
    from physadv.jobs.replay import run_replay_job
    from physadv.models import load_model

    classifier = load_model("default", task="classify")
    replay = Replay(classifier, ReplayGoal("classify", classifier.names.id("stop")))

    def peak_after(frames: int) -> int:
        _avi(tmp_path / f"{frames}.avi", frames, size=(160, 120))
        run_replay_job(replay, str(tmp_path / f"{frames}.avi"), tmp_path / str(frames), "default")
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    peak_after(150)  # warm up: imports, model, first allocations
    short = peak_after(300)
    long = peak_after(3000)  # 10× the frames: 2700 more × 230 KB of float frames if they were kept
    assert long - short < 40_000, (short, long)
    metrics = json.loads((tmp_path / "3000" / "metrics.json").read_text())
    assert metrics["conditions"]["recording"]["frames"] == 3000


def test_ctrl_c_keeps_what_was_judged(tmp_path):
    import signal
    import subprocess
    import time

    from conftest import PHYSADV

    _avi(tmp_path / "long.avi", 1500, size=(320, 240))
    out = tmp_path / "out"
    process = subprocess.Popen(
        [PHYSADV, "eval", str(tmp_path / "long.avi"), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a test run started in the background (`… &`) inherits an ignored SIGINT: give Ctrl-C back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            if (out / "frames.csv").is_file() and (out / "frames.csv").read_text().count("\n") > 40:
                break
            time.sleep(0.2)
        assert process.poll() is None, "the replay ended before it could be interrupted"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=240)  # writing the report under a loaded CPU
    finally:
        if process.poll() is None:  # never leave the replay running after a failed test
            process.kill()
            process.communicate()
    assert process.returncode == 130 and "physadv: interrupted; what was written is kept" in stderr, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    recording = metrics["conditions"]["recording"]
    with open(out / "frames.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert recording["interrupted"] and 40 <= recording["frames_replayed"] == len(rows) < 1500
    assert "Interrupted" in (out / "report.md").read_text()
    assert int(cv2.VideoCapture(str(out / "annotated.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == len(rows)


def test_frames_without_objects_or_ground_truth(tmp_path):
    """A frame whose ground truth is empty is judged (hallucinations only); one the file omits is not."""
    from physadv.harness.frame_judge import ReplayGoal
    from physadv.harness.replay import Replay, Truth
    from physadv.jobs.replay import run_replay_job
    from physadv.models import load_model

    _avi(tmp_path / "v.avi", 6, size=(160, 128))
    gt = tmp_path / "gt.jsonl"
    lines = ['{"frame": 0, "objects": []}'] + [
        f'{{"frame": {i}, "box": [40, 30, 90, 80]}}' for i in range(2, 6)
    ]
    gt.write_text("\n".join(lines) + "\n")
    detector = load_model("default", task="detect")
    goal = ReplayGoal("detect", detector.names.id("stop sign"), "stop sign")
    replay = Replay(detector, goal, truth=Truth(file=load_ground_truth(gt)))
    result = run_replay_job(replay, str(tmp_path / "v.avi"), tmp_path / "out", "default", gt_file=gt)
    recording = result["conditions"]["recording"]
    assert recording["frames"] == 5 and recording["true_positive_rate"]["n"] == 4
    assert recording["true_positive_rate"]["k"] == 0  # flat grey frames hold no stop sign
    assert recording["without_ground_truth"]["frames"] == 1
    with open(tmp_path / "out" / "frames.csv", newline="") as f:
        assert [r["frame"] for r in csv.DictReader(f)] == [str(i) for i in range(6)]


def test_verdict_warns_when_the_clean_model_finds_nothing():
    """A new user's tracked box on a video without the sign: the clean rate was 0 % and the report
    said the artefact hid "100 % of them outright"."""
    from physadv.report.replay_report import verdict

    def rate(k, n):
        return {"rate": k / n, "k": k, "n": n}

    result = {
        "task": "detect",
        "true_class": "stop sign",
        "conditions": {
            "clean": {"true_positive_rate": rate(0, 30)},
            "attacked": {"true_positive_rate": rate(0, 30), "hidden_rate": rate(30, 30)},
        },
    }
    text = verdict(result)
    assert text.startswith("⚠ Without the artefact the detector finds only 0.0%") and "hidden" not in text
    result["conditions"]["clean"]["true_positive_rate"] = rate(27, 30)
    assert "90.0 points fewer" in verdict(result) and not verdict(result).startswith("⚠")
