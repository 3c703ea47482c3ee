"""The pipelined replay (issue 23.3): decoding ahead and drawing/encoding the annotated video in
threads of their own write exactly what the plain, one-thread replay writes."""

from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest

from physadv.harness.annotate import VideoOut
from physadv.harness.sources import prefetched


def _decoded(path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while (got := capture.read())[0]:
        frames.append(got[1])
    capture.release()
    return frames


@pytest.mark.slow
def test_pipelined_replay_writes_what_the_plain_replay_writes(tmp_path):
    from physadv.data.groundtruth import load_ground_truth
    from physadv.harness.frame_judge import ReplayGoal
    from physadv.harness.replay import Replay, Truth
    from physadv.jobs.replay import run_replay_job
    from physadv.models import load_model
    from physadv.scene.render import render_scene
    from physadv.scene.spec import load_spec
    from physadv.scene.video import write_scene

    spec = load_spec("scenes/driveby_stop.yaml")
    spec["driveby"].update(start_ft=30, end_ft=15, speed_kmh=30)
    n = write_scene(render_scene(spec), tmp_path, fps=30)
    model = load_model("default", task="detect", device="cpu")
    goal = ReplayGoal("detect", model.names.id("stop sign"), "stop sign")
    gt = tmp_path / "ground_truth.jsonl"
    for pipelined in (True, False):
        replay = Replay(model, goal, truth=Truth(file=load_ground_truth(gt)), batch=4, pipelined=pipelined)
        run_replay_job(replay, str(tmp_path / "scene.mp4"), tmp_path / str(pipelined), "default", gt_file=gt)
    files = {}
    for pipelined in ("True", "False"):
        metrics = json.loads((tmp_path / pipelined / "metrics.json").read_text())
        for key in ("seconds", "frames_per_second"):
            metrics.pop(key)
        files[pipelined] = metrics, (tmp_path / pipelined / "frames.csv").read_text()
    assert files["True"] == files["False"]
    assert files["True"][0]["conditions"]["recording"]["frames"] == n
    drawn = [_decoded(tmp_path / p / "annotated.mp4") for p in ("True", "False")]
    assert len(drawn[0]) == len(drawn[1]) == n
    assert all(np.array_equal(a, b) for a, b in zip(*drawn, strict=True))


def test_prefetched_keeps_order_raises_errors_and_closes_what_it_left():
    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))
    closed = threading.Event()

    def frames():
        try:
            yield from range(1000)
        finally:
            closed.set()

    for item in prefetched(frames(), depth=2):
        if item == 5:
            break
    assert closed.wait(5)  # leaving early released the source (in the prefetching thread)

    def broken():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(prefetched(broken()))


def test_an_error_while_drawing_in_the_background_reaches_the_caller(tmp_path):
    video = VideoOut(tmp_path / "v.mp4", 30, background=True)
    video.submit(lambda: np.zeros((32, 48, 3), np.uint8))

    def broken():
        raise ValueError("bad box")

    video.submit(broken)
    with pytest.raises(ValueError, match="bad box"):
        try:
            for _ in range(100):  # a hand-over after the error raises it, or close() does
                video.submit(lambda: np.zeros((32, 48, 3), np.uint8))
        finally:
            video.close()  # also after an error: the frames drawn so far are a playable file
    assert len(_decoded(tmp_path / "v.mp4")) >= 1


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", pytest.param("yolo26n.yaml", marks=pytest.mark.slow)])
def test_a_folded_detector_finds_what_the_detector_finds_and_leaves_it_alone(lively_yolo, cfg):
    import torch

    from physadv.models.detector import YoloDetector
    from physadv.models.fused import fused_for_inference

    detector = YoloDetector(lively_yolo(cfg).model, imgsz=256)
    before = {k: v.clone() for k, v in detector.model.state_dict().items()}
    folded = fused_for_inference(detector)
    assert folded is not detector and not any(
        isinstance(m, torch.nn.BatchNorm2d) for m in folded.model.modules()
    )
    images = torch.rand(2, 3, 200, 256, generator=torch.Generator().manual_seed(0))
    for a, b in zip(detector.predict(images, conf=0.05), folded.predict(images, conf=0.05), strict=True):
        assert len(a.boxes) == len(b.boxes) > 0
        # folding re-rounds every convolution: equal to float rounding (scores of this untrained net
        # move by up to ~1e-4 with the thread count), not bit for bit
        assert torch.allclose(a.boxes, b.boxes, atol=1e-2) and torch.allclose(a.scores, b.scores, atol=1e-3)
    after = detector.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_the_reader_makes_torchs_float_frame_bit_for_bit_in_one_thread():
    import torch

    from physadv.data.video import from_bgr8

    bgr = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frame = from_bgr8(bgr)
    expected = torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1).float().div_(255)
    assert frame.dtype == torch.float32 and torch.equal(frame, expected)
    assert frame.stride() == (1, 64 * 3, 3)  # channels last, as before: no copy on the way in
