"""Real recordings end to end (issue 20): the planar sign tracker, artefacts put into footage
(relit stickers, patches on linked people), system-level metrics, and `physadv track` / `physadv
eval` on a video as a user runs them."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import run_physadv
from PIL import Image

from physadv.boxes import box_iou
from physadv.data.groundtruth import focal_px, load_ground_truth, pose_from_corners
from physadv.harness.sources import VideoSource
from physadv.harness.tracking import PlanarTracker, corners_from_box
from physadv.harness.two_way import TwoWayTracker


def _render(out, **driveby):
    from physadv.scene.render import render_scene
    from physadv.scene.spec import load_spec
    from physadv.scene.video import write_scene

    spec = load_spec("scenes/driveby_stop.yaml")
    spec["driveby"].update(driveby)
    n = write_scene(render_scene(spec), out, fps=spec["driveby"]["fps"])
    return out, n


@pytest.fixture(scope="module")
def short_driveby(tmp_path_factory):
    """The drive-by from 50 to 5 ft at 5 frames a second (25 frames): the sign grows 27 → 120 px."""
    return _render(tmp_path_factory.mktemp("driveby5"), fps=5)


def _sign(truth, index):
    return next((o for o in truth.get(index, []) if o.class_name == "stop"), None)


def _follow(video, keys, edit=None, two_way=False):
    """Each frame's point; with ``two_way``, as `physadv track` tracks (forward, then backwards over
    the small frames)."""
    tracker = (TwoWayTracker if two_way else PlanarTracker)(keys, "stop")
    points = []
    for frame in VideoSource(video).frames():
        image = frame.bgr if edit is None else edit(frame.index, frame.bgr.copy())
        points.append(tracker.update(frame.index, image))
    return tracker.finish() if two_way else points


@pytest.mark.slow
def test_tracker_meets_the_issue_target_on_the_rendered_drive_by(tmp_path):
    """Done-when of issue 20 item 1: the whole drive-by (149 frames, 30 fps) played back as a plain
    mp4, only the first frame's box given: IoU ≥ 0.8 with the true box in ≥ 95 % of the frames where
    the sign is seen, distance within 10 %."""
    out, n = _render(tmp_path)
    truth = load_ground_truth(out / "ground_truth.jsonl")
    points = _follow(out / "scene.mp4", {0: corners_from_box(_sign(truth, 0).box)}, two_way=True)
    ious, errors = [], []
    for p in points:
        sign = _sign(truth, p.index)
        if sign is None:
            continue
        ious.append(float(box_iou(torch.tensor(p.box), torch.tensor(sign.box))) if p.found else 0.0)
        if p.found:
            d, _ = pose_from_corners(p.corners, 0.75, 0.75, focal_px(640, 60), (640, 480))
            errors.append(abs(d / sign.distance_m - 1))
    sizes = [_sign(truth, i).box[3] - _sign(truth, i).box[1] for i in (0, n - 1)]
    assert sizes[1] / sizes[0] > 4  # the sign grows from 27 to over 110 pixels
    assert len(ious) == n and np.mean(np.array(ious) >= 0.8) >= 0.95, ious
    assert len(errors) == n and max(errors) <= 0.10, errors


def test_tracker_finds_the_sign_again_after_occlusion_and_drops_out(short_driveby):
    video, n = short_driveby
    truth = load_ground_truth(video / "ground_truth.jsonl")
    hidden = range(8, 11)

    def occlude(index, image):
        if index in hidden:  # a grey truck passes in front of the sign
            x1, y1, x2, y2 = (round(v) for v in _sign(truth, index).box)
            image[y1 - 20 : y2 + 20, x1 - 40 : x2 + 40] = 128
        if index >= 18:  # the camera pans away: the sign leaves the frame to the left
            shift = min(630, 150 * (index - 17))
            image[:, : image.shape[1] - shift] = image[:, shift:].copy()
            image[:, image.shape[1] - shift :] = 90
        return image

    points = _follow(video / "scene.mp4", {0: corners_from_box(_sign(truth, 0).box)}, occlude)
    status = [p.status for p in points]
    assert all(status[i] == "lost" for i in hidden), status
    assert status[11:17] == ["tracked"] * 6, status  # found again after the occlusion
    for p in points[11:17]:
        assert float(box_iou(torch.tensor(p.box), torch.tensor(_sign(truth, p.index).box))) >= 0.8
    assert status[18:20] == ["tracked"] * 2 and set(status[20:]) == {"outside"}, status  # left, stays out


def test_tracker_places_the_corners_of_a_known_sign_without_a_half_pixel_shift():
    """A stop sign drawn by the renderer's own warp (92–98 px, where the tracker aligns to the drawn
    face), marked by a box a pixel off: the corners come back within a fifth of a pixel of where the
    face's corners are drawn, with no shift (it was +0.5 px in x and y: a resized template's pixel
    centres read as its pixel corners), in the key frame and in a tracked one."""
    from kornia.geometry.linalg import transform_points

    from physadv.scene.compose import composite, plan_warp
    from physadv.scene.signs import render_face
    from physadv.scene.video import to_bgr8

    face = torch.from_numpy(np.array(render_face("stop"))).permute(2, 0, 1)[None]
    tracker = PlanarTracker({0: corners_from_box([101, 80, 199, 180])}, "stop")
    for index, corners in enumerate(
        [
            [[101.3, 80.6], [197.8, 83.2], [196.1, 178.9], [99.7, 176.4]],
            [[104.6, 82.1], [201.9, 84.4], [200.2, 181.3], [103.0, 179.0]],
        ]
    ):
        corners = torch.tensor([corners])
        frame = composite(torch.full((1, 3, 260, 300), 0.45), face, corners)[0]
        # the face's own corners as the warp draws them: half a texel outside its texel centres
        plan = plan_warp(tuple(face.shape[-2:]), corners)
        h, w = plan.texture_hw
        edges = torch.tensor([[[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]]])
        drawn = transform_points(plan.matrix, edges)[0].numpy()
        error = tracker.update(index, to_bgr8(frame)).corners - drawn
        assert np.abs(error.mean(0)).max() < 0.15, error  # no shift
        assert np.linalg.norm(error, axis=1).mean() < 0.2, error


def test_backward_pass_corrects_the_small_frames_of_a_box_marked_track(short_driveby):
    """The rendered drive-by (5 frames a second, the sign growing from 27 to 120 px), marked in its
    first frame by the true box moved 0.4 px down and shrunk by 1 % (a hand-marked box's error): the
    forward tracker carries that error through every frame below FACE_PX (too small to refine against
    the face); the backward pass from the later, refined frames removes it there."""
    from physadv.harness.tracking import FACE_PX

    video, n = short_driveby
    truth = load_ground_truth(video / "ground_truth.jsonl")
    true = [np.array(_sign(truth, i).corners) for i in range(n)]
    box = np.array(_sign(truth, 0).box)
    centre = box.reshape(2, 2).mean(0)
    marked = corners_from_box(np.tile(centre, 2) + (box - np.tile(centre, 2)) * 0.99 + [0, 0.4, 0, 0.4])
    forward, two_way = PlanarTracker({0: marked}, "stop"), TwoWayTracker({0: marked}, "stop")
    ahead = [forward.update(f.index, f.bgr) for f in VideoSource(video / "scene.mp4").frames()]
    for f in VideoSource(video / "scene.mp4").frames():
        two_way.update(f.index, f.bgr)
    both = two_way.finish()
    small = [i for i in range(n) if np.linalg.norm(true[i][1] - true[i][0]) < FACE_PX]
    assert len(small) >= 8

    def error(points):  # mean corner error (px) and mean vertical shift (px) over the small frames
        d = np.array([points[i].corners - true[i] for i in small])
        return np.linalg.norm(d, axis=2).mean(), d[..., 1].mean()

    (before, low_before), (after, low_after) = error(ahead), error(both)
    assert before > 0.4 and low_before > 0.25, (before, low_before)  # the mark's error, carried forward
    assert after < before / 2 and abs(low_after) < 0.1, (after, low_after)
    assert [p.status for p in both] == [p.status for p in ahead]  # statuses are the forward pass's
    refined = [i for i in range(n) if np.linalg.norm(true[i][1] - true[i][0]) > 1.6 * FACE_PX]
    assert all(np.array_equal(both[i].corners, ahead[i].corners) for i in refined)  # left as they were
    # memory stays flat: with room for 5 crops, only the last 5 are held, and the early frames keep the
    # forward corners (the backward passes lose the sign where its crop was let go)
    held = TwoWayTracker({0: marked}, "stop", max_crops=5)
    for f in VideoSource(video / "scene.mp4").frames():
        held.update(f.index, f.bgr)
    assert sum(v.crop is not None for v in held.views) == 5
    bounded = held.finish()
    assert not np.array_equal(both[0].corners, ahead[0].corners)  # corrected when its crop is kept …
    assert np.array_equal(bounded[0].corners, ahead[0].corners)  # … and left as it was when let go


def test_relighting_recovers_a_known_gain_offset_and_blur():
    from physadv.scene.compose import warp_texture
    from physadv.scene.relight import blur, fit_light, noise_level
    from physadv.scene.signs import render_face

    face = torch.from_numpy(np.array(render_face("stop"))).permute(2, 0, 1)[None]
    corners = torch.tensor([[[40.0, 30.0], [150.0, 36.0], [148.0, 140.0], [38.0, 134.0]]])
    rgb, alpha = warp_texture(face, corners, (170, 190))
    gain, offset = torch.tensor([0.8, 0.9, 0.7]), torch.tensor([0.06, 0.02, 0.09])
    generator = torch.Generator().manual_seed(0)
    background = torch.rand(1, 3, 170, 190, generator=generator) * 0.5
    seen = background * (1 - alpha) + gain.view(1, 3, 1, 1) * rgb + offset.view(1, 3, 1, 1) * alpha
    seen = blur(seen, 1.0)
    seen[..., 60:150, 90:98] = 0.5  # a grey pole in front of the sign
    seen = (seen + torch.randn(seen.shape, generator=generator) * 0.01).clamp(0, 1)[0]
    light = fit_light(seen, rgb[0], alpha[0], alpha[0] > 0.99)
    assert light.gain == pytest.approx(gain, abs=0.05) and light.offset == pytest.approx(offset, abs=0.03)
    assert light.blur_px == 1.0
    assert noise_level(seen) == pytest.approx(0.01, abs=0.006)
    assert fit_light(seen, rgb[0] * 0 + 0.5 * alpha[0], alpha[0], alpha[0] > 0.99) is None  # one colour


def test_system_metrics_on_a_constructed_timeline():
    from physadv.harness.system import SystemRules, Timelines, acquired_at, longest_miss_s

    times = np.array([0.0, 0.1, 0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2])  # variable frame rate
    seen = np.array([0, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1], bool)
    assert longest_miss_s(times, seen) == pytest.approx(0.6 - 0.2)  # frames 2–4 missed: 0.2 s → 0.6 s
    assert acquired_at(seen, 3, 5) == 5  # from frame 5 on, every 5 frames hold ≥ 3 detections
    assert acquired_at(np.array([1, 1, 1, 0, 0, 0, 0], bool), 3, 5) is None  # lost at the end
    rules = SystemRules(speed_kmh=50)
    assert rules.stopping_distance_m(50) == pytest.approx(63.1, abs=0.1)  # AASHTO: 65 m design value
    assert rules.fastest_stop_kmh(rules.stopping_distance_m(30)) == pytest.approx(30)
    sign = Timelines()
    for t, d, hit in zip(times, np.linspace(80, 50, len(times)), seen, strict=True):
        sign.add_frame([(None, float(t), float(d), bool(hit))])
    m = sign.as_dict("sign", rules)["objects"]["sign"]
    assert m["first_detected"]["distance_m"] == pytest.approx(80 - 30 / 11, abs=1e-3)
    assert m["acquired"]["distance_m"] == pytest.approx(80 - 5 * 30 / 11, abs=1e-3)
    assert m["in_time_to_stop"] is True and m["stopping_distance_m"] == pytest.approx(63.09, abs=0.01)
    late = SystemRules(speed_kmh=60)  # needs 83 m: the sign was acquired at 66 m
    assert sign.as_dict("sign", late)["objects"]["sign"]["in_time_to_stop"] is False
    people = Timelines()
    for k, t in enumerate(np.arange(30) / 10):
        people.add_frame([(1, float(t), None, True), (2, float(t), None, not 5 <= k < 20)])
    p = people.as_dict("people", SystemRules(hidden_s=1.0))
    assert (
        p["objects"]["2"]["longest_hidden_s"] == pytest.approx(1.5)
        and p["objects"]["1"]["detected_share"] == 1
    )
    assert p["lost_share"]["k"] == 1 and p["people"] == 2


def test_bytetrack_links_a_constructed_sequence():
    from physadv.data.groundtruth import GtObject
    from physadv.harness.people import fill_gaps, link_boxes, new_tracker

    tracker = new_tracker(frame_rate=10)
    ids = {"a": set(), "b": set()}
    truth = {}
    for k in range(20):
        a = np.array([20 + 4 * k, 40, 60 + 4 * k, 140], float)  # walks right
        b = np.array([300 - 3 * k, 50, 340 - 3 * k, 160], float)  # walks left
        boxes, scores = [b], [0.8]
        if k != 9:  # a is missed in frame 9
            boxes.append(a), scores.append(0.7)
        linked = link_boxes(tracker, np.array(boxes), np.array(scores))
        truth[k] = []
        for tid, box, _ in linked:
            who = "a" if box[0] < 200 else "b"
            ids[who].add(tid)
            truth[k].append(GtObject("person", box, track_id=tid))
    assert len(ids["a"]) == 1 and len(ids["b"]) == 1 and ids["a"] != ids["b"]  # identities held
    assert len(truth[9]) == 1
    filled = fill_gaps(truth, 30)
    (a_id,) = ids["a"]
    gap = [o for o in filled[9] if o.track_id == a_id]
    assert len(gap) == 1 and gap[0].box[0] == pytest.approx(20 + 4 * 9, abs=3)


@pytest.mark.slow
def test_track_and_eval_with_a_sticker_on_a_small_video(short_driveby, tmp_path):
    video, n = short_driveby
    truth = load_ground_truth(video / "ground_truth.jsonl")
    box = ",".join(f"{v:.1f}" for v in _sign(truth, 0).box)
    track = run_physadv("track", video / "scene.mp4", "--mark", box, "--out", tmp_path / "t")
    assert track.returncode == 0, track.stderr
    assert f"the sign is placed in {n} of {n} frames (1 marked, {n - 1} tracked" in track.stdout
    summary = json.loads((tmp_path / "t" / "track_summary.json").read_text())
    assert summary["fps"] == pytest.approx(cv2.VideoCapture(str(video / "scene.mp4")).get(cv2.CAP_PROP_FPS))
    assert summary["fps_given"] is None
    lines = [json.loads(x) for x in (tmp_path / "t" / "track.jsonl").read_text().splitlines()]
    assert len(lines) == n and lines[0]["tracking"] == "key" and len(lines[5]["objects"][0]["corners"]) == 4
    assert int(cv2.VideoCapture(str(tmp_path / "t" / "review.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == n
    sticker = np.zeros((300, 300, 4), np.uint8)
    sticker[:, :, :3] = 20
    sticker[30:270, 30:270, 3] = 255  # a dark square over most of the face
    Image.fromarray(sticker, "RGBA").save(tmp_path / "sticker.png")
    out = tmp_path / "e"
    result = run_physadv(
        "eval", video / "scene.mp4", "--gt", tmp_path / "t" / "track.jsonl",
        "--artefact", tmp_path / "sticker.png", "--speed-kmh", "10", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    clean, attacked = metrics["conditions"]["clean"], metrics["conditions"]["attacked"]
    assert clean["frames"] == attacked["frames"] == n
    assert attacked["insertion"]["sticker_frames"] == n and attacked["insertion"]["relit_frames"] >= n // 2
    assert clean["true_positive_rate"]["rate"] > attacked["true_positive_rate"]["rate"]
    stop = clean["system"]["objects"]["0"]
    assert stop["in_time_to_stop"] is True and stop["stopping_distance_m"] == pytest.approx(8.08, abs=0.01)
    assert stop["acquired"]["distance_m"] == pytest.approx(15.4, abs=1.0)  # from the tracked corners
    report = (out / "report.md").read_text()
    assert "Would the car have stopped?" in report and "in time to stop" in report.split("\n")[2]
    assert (out / "annotated_both.mp4").is_file() and (out / "plots" / "detected_over_time.png").is_file()
    bad = run_physadv("track", video / "scene.mp4", "--mark", "1,2,3", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "needs 4 numbers" in bad.stderr and "Traceback" not in bad.stderr
    bare = run_physadv(
        "eval", video / "scene.mp4", "--artefact", tmp_path / "sticker.png", "--out", tmp_path / "y"
    )
    assert bare.returncode == 2 and "needs the sign's corners" in bare.stderr


def test_a_patch_on_the_people_of_a_recording(short_driveby, tmp_path):
    """People placed from ground-truth boxes: the patch is drawn on each at its physical size."""
    from physadv.artefact import Artefact
    from physadv.harness.insertion import patch_corners_on_person, place_patch_on_people

    corners = patch_corners_on_person((100, 50, 160, 220), (400, 400), 1.7)  # 170 px tall: 100 px a metre
    # the torso plane of physadv.scene.wear: centred across the box, 2.6/7.5 of its height below the top
    assert corners[1, 0] - corners[0, 0] == pytest.approx(40, abs=1e-3)
    assert corners[:, 1].mean() == pytest.approx(50 + 170 * 2.6 / 7.5, abs=1e-3)
    patch = Artefact(torch.zeros(3, 32, 32), (400.0, 400.0))
    image = place_patch_on_people(torch.ones(3, 240, 320), patch, [(100, 50, 160, 220)])
    assert float(image[:, 110:125, 125:135].max()) < 0.05 and float(image[:, 10:20, 10:20].min()) == 1.0
    video, n = short_driveby
    gt = tmp_path / "people.jsonl"
    person = {"class": "person", "box": [60, 150, 130, 400], "id": 7}
    gt.write_text("".join(json.dumps({"frame": i, "objects": [person]}) + "\n" for i in range(n)))
    Image.fromarray(np.full((64, 64, 3), 30, np.uint8)).save(tmp_path / "patch.png")
    out = tmp_path / "p"
    result = run_physadv(
        "eval", video / "scene.mp4", "--gt", gt, "--target-class", "person",
        "--patch", tmp_path / "patch.png", "--out", out, "--no-video",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["conditions"]["attacked"]["insertion"]["patch_people_frames"] == n
    assert metrics["conditions"]["attacked"]["system"]["objects"]["7"]["frames"] == n
    assert "ByteTrack" not in metrics["ground_truth"]  # people from the file, not linked detections


def test_longest_miss_is_timed_by_timestamps():
    """Longest misses are read from each frame's time (variable frame rate), not from its index."""
    from physadv.harness.system import SystemRules, Timelines

    lines = Timelines()
    for index, t in enumerate([0.0, 0.04, 0.5, 0.54, 2.0]):
        lines.add_frame([(None, t, None, index not in (1, 2))])
    m = lines.as_dict("sign", SystemRules())
    assert m["objects"]["sign"]["longest_miss_s"] == pytest.approx(0.54 - 0.04)


@pytest.mark.slow
def test_track_refuses_marks_it_cannot_use_before_writing_anything(tmp_path):
    """A new user's faults: a mark outside the picture was tracked (an inverted box written), a key
    frame past the end was refused only after writing a track of lost frames, and --out naming a file
    gave an internal error."""
    video = tmp_path / "v.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    rng = np.random.default_rng(0)
    for _ in range(8):
        writer.write((rng.random((64, 96, 3)) * 255).astype(np.uint8))
    writer.release()

    def one_line(result, words: str) -> bool:
        lines = result.stderr.strip().splitlines()
        return result.returncode == 2 and len(lines) == 1 and words in lines[0]

    outside = run_physadv("track", video, "--mark", "700,700,720,720", "--out", tmp_path / "a")
    assert one_line(outside, "lies outside the 96×64 picture"), outside.stderr
    assert not (tmp_path / "a").exists()
    past = run_physadv("track", video, "--mark", "500:10,10,40,40", "--out", tmp_path / "b")
    assert one_line(past, "key frame 500 is past the video's last frame (7)"), past.stderr
    assert not (tmp_path / "b").exists()
    (tmp_path / "c").write_text("a file, not a folder")
    blocked = run_physadv("track", video, "--mark", "10,10,40,40", "--out", tmp_path / "c")
    assert one_line(blocked, "cannot make the folder"), blocked.stderr
    noise = run_physadv("track", video, "--mark", "10,10,40,40", "--out", tmp_path / "d", "--no-video")
    assert noise.returncode == 0, noise.stderr  # no drawn face to refine against: nothing to go back over
    summary = json.loads((tmp_path / "d" / "track_summary.json").read_text())
    assert summary["backward_refinement"] == "none needed (no small, early frames)"


def test_track_shows_its_backward_pass_and_keeps_the_forward_track_on_ctrl_c(
    short_driveby, tmp_path, capsys, monkeypatch
):
    """`physadv track` as the CLI runs it (in-process): the backward refinement shows progress (log
    lines up to every frame its passes read), and a Ctrl-C during it writes the forward pass's
    complete track, says the refinement was skipped, and ends as any Ctrl-C does (exit 130)."""
    import contextlib

    from physadv import cli
    from physadv.harness.sign_track import parse_mark
    from physadv.jobs import track as track_job

    video, n = short_driveby
    box = ",".join(f"{v:.1f}" for v in _sign(load_ground_truth(video / "ground_truth.jsonl"), 0).box)
    command = ["track", str(video / "scene.mp4"), "--mark", box, "--out"]
    with pytest.raises(SystemExit) as ended:
        cli.main([*command, str(tmp_path / "full"), "--no-video"])
    assert ended.value.code == 0
    shown = [x for x in capsys.readouterr().out.splitlines() if x.startswith("refining the early frames")]
    total = int(shown[-1].split(": ")[1].split("/")[1].split(" ")[0])
    assert total > n and f": {total}/{total} (100%)" in shown[-1]  # several passes over the small frames
    assert json.loads((tmp_path / "full" / "track_summary.json").read_text())["backward_refinement"] == "done"

    real = track_job.progress_bar

    @contextlib.contextmanager
    def ctrl_c_while_refining(description, frames):  # SIGINT arriving at the backward pass's 3rd frame
        with real(description, frames) as advance:
            if not description.startswith("refining"):
                yield advance
                return
            ticks = []

            def tick(k=1, status=None, resumed=False):
                advance(k, status)
                ticks.append(k)
                if len(ticks) == 3:
                    raise KeyboardInterrupt

            yield tick

    monkeypatch.setattr(track_job, "progress_bar", ctrl_c_while_refining)
    with pytest.raises(SystemExit) as ended:
        cli.main([*command, str(tmp_path / "cut")])
    assert ended.value.code == 130
    err = capsys.readouterr().err
    assert "backward refinement of the small, early frames was skipped (Ctrl-C)" in err
    assert "physadv: interrupted; what was written is kept: what the line above names" in err
    summary = json.loads((tmp_path / "cut" / "track_summary.json").read_text())
    assert summary["backward_refinement"] == "skipped (interrupted)" and summary["frames"] == n
    assert not (tmp_path / "cut" / "review.mp4").exists()  # no second reading after a Ctrl-C
    lines = [json.loads(x) for x in (tmp_path / "cut" / "track.jsonl").read_text().splitlines()]
    forward = _follow(video / "scene.mp4", dict([parse_mark(box)]))
    assert len(lines) == n
    assert all(
        np.allclose(line["objects"][0]["corners"], p.corners, atol=0.006)
        for line, p in zip(lines, forward, strict=True)
        if p.found
    )  # the forward pass's corners, which the full run's backward pass changed in the small frames
    full = [json.loads(x) for x in (tmp_path / "full" / "track.jsonl").read_text().splitlines()]
    assert any(a.get("objects") != b.get("objects") for a, b in zip(full, lines, strict=True))

    @contextlib.contextmanager
    def ctrl_c_while_tracking(description, frames):  # SIGINT at the forward pass's first frame
        with real(description, frames):

            def tick(k=1, status=None, resumed=False):
                raise KeyboardInterrupt

            yield tick

    monkeypatch.setattr(track_job, "progress_bar", ctrl_c_while_tracking)
    with pytest.raises(SystemExit) as ended:
        cli.main([*command, str(tmp_path / "early")])
    assert ended.value.code == 130 and not (tmp_path / "early").exists()
    assert "stopped while tracking forwards: nothing was written" in capsys.readouterr().err
    # under `eval --track` the last line says what the tracking stage left, not eval's report
    with pytest.raises(SystemExit) as ended:
        cli.main(["eval", str(video / "scene.mp4"), "--track", box, "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err
    assert ended.value.code == 130 and "stopped while tracking forwards" in err
    assert "what was written is kept: what the line above names; nothing was judged yet" in err
