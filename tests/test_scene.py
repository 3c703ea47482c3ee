"""The embedded world: geometry, determinism, ground truth against pixels, specs, videos, datasets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import run_physadv

from physadv.errors import PhysadvError
from physadv.scene.backgrounds import make_backdrop
from physadv.scene.camera import Camera
from physadv.scene.effects import EffectParams
from physadv.scene.render import Shot, render_scene, render_shot, sign_object
from physadv.scene.signs import SIGN_CLASSES, render_face
from physadv.scene.spec import FT, load_spec, validate

ROOT = Path(__file__).resolve().parents[1]
LAB = {"kind": "lab", "lab": {"poses": [{"distance_ft": 10, "angle_deg": 0}], "draws_per_pose": 1}}


def head_on_shot(distance_m: float, name: str = "stop", with_sign: bool = True) -> Shot:
    centre = (0.0, 1.5, 30.0)
    cam = Camera(640, 480, 60.0, (0.0, 1.5, 30.0 - distance_m))
    objects = [sign_object(0, name, centre, 0.0)] if with_sign else []
    return Shot(cam, objects, EffectParams(), 0.0)


@pytest.mark.parametrize("distance_m", [1.524, 3.048, 12.19])
def test_sign_images_to_pinhole_size(distance_m):
    """A 750 mm stop sign at distance d spans f·0.75/d pixels, in the ground truth and in the pixels."""
    backdrop = make_backdrop(np.random.default_rng(0))
    shot = head_on_shot(distance_m)
    image, truth = render_shot(shot, backdrop)
    expected = shot.camera.focal_px * 0.75 / distance_m
    (obj,) = truth.objects
    assert abs((obj.box[2] - obj.box[0]) - expected) / expected < 0.02
    empty, _ = render_shot(head_on_shot(distance_m, with_sign=False), backdrop)
    changed = (image - empty).abs().amax(0) > 0.05
    ys, xs = torch.nonzero(changed, as_tuple=True)
    measured = float(xs.max() - xs.min() + 1)
    assert abs(measured - expected) / expected < 0.02 + 2 / expected  # ±1 px of anti-aliasing at each edge
    assert abs(float(xs.min()) - obj.box[0]) <= 1.5 and abs(float(ys.min()) - obj.box[1]) <= 1.5
    assert obj.distance_m == pytest.approx(distance_m, rel=1e-3) and obj.angle_deg == pytest.approx(
        0, abs=0.1
    )


def test_viewing_angle_and_distance_in_lab_truth():
    spec = validate({**LAB, "lab": {"poses": [{"distance_ft": 10, "angle_deg": 30}], "draws_per_pose": 2}})
    frames = list(render_scene(spec))
    assert len(frames) == 2
    for _, truth in frames:
        (obj,) = truth.objects
        assert obj.angle_deg == pytest.approx(30, abs=0.5)
        horizontal = 10 * FT
        vertical = abs(spec["camera"]["height_m"] - (spec["sign"]["height_m"] + 0.375))
        assert obj.distance_m == pytest.approx(math.hypot(horizontal, vertical), rel=1e-3)


def test_backdrop_stays_fixed_through_a_video():
    spec = validate(
        {
            "kind": "driveby",
            "camera": {"width": 160, "height": 120, "jitter_deg": 0},
            "driveby": {"start_ft": 30, "end_ft": 20, "speed_kmh": 30, "fps": 10},
            "effects": {
                "noise_std": 0,
                "brightness": 1,
                "contrast": 1,
                "shadow": 0,
                "motion_blur_px": 0,
                "colour_temperature_k": 6500,
            },
        }
    )
    frames = [f for f, _ in render_scene(spec)]
    assert len(frames) >= 3
    sky = [f[:, :5].mean(dim=(1, 2)) for f in frames]  # the top rows: sky only
    assert all(torch.allclose(sky[0], s, atol=0.02) for s in sky)


def test_rendering_is_deterministic_for_a_seed():
    spec = validate({**LAB, "seed": 7})
    ((a, ta),) = list(render_scene(spec))
    ((b, tb),) = list(render_scene(spec))
    assert torch.equal(a, b) and ta.as_json() == tb.as_json()
    ((c, _),) = list(render_scene({**spec, "seed": 8}))
    assert not torch.equal(a, c)


def test_every_sign_class_renders_with_a_shape():
    assert len(SIGN_CLASSES) >= 10
    for name in SIGN_CLASSES:
        face = render_face(name, 0.1)
        assert face.shape[-1] == 4 and 0.4 < face[..., 3].mean() <= 1.0


def test_spec_validation_names_the_nearest_key(tmp_path):
    with pytest.raises(PhysadvError, match="did you mean 'distance_ft'"):
        validate({**LAB, "lab": {"poses": [{"distanse_ft": 5}]}})
    with pytest.raises(PhysadvError, match="did you mean 'camera'"):
        validate({**LAB, "camara": {}})
    with pytest.raises(PhysadvError, match="did you mean 'stop'"):
        validate({**LAB, "sign": {"class": "stopp"}})
    with pytest.raises(PhysadvError, match="must be a number"):
        validate({**LAB, "camera": {"width": "wide"}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: lab\n  poses: [\n")
    with pytest.raises(
        PhysadvError, match="not valid YAML: line 2, column 8: mapping values are not allowed"
    ):
        load_spec(bad)


@pytest.mark.parametrize(
    "text, said",
    [
        # a user trial's specs: each crashed the renderer ("low >= high", "float division by zero")
        (
            "kind: pedestrians\npedestrians: {count: [5, -2]}\n",
            "'pedestrians.count' is [5, -2]: low must not",
        ),
        ("kind: pedestrians\ncamera: {hfov_deg: 0}\n", "'camera.hfov_deg' is 0; it must lie between 1.0"),
        (
            "kind: pedestrians\npedestrians: {distance_m: [2]}\n",
            "'pedestrians.distance_m' must be a [low, high]",
        ),
        ("kind: pedestrians\npedestrians: {count: [1.5, 3]}\n", "'pedestrians.count' must be a whole number"),
        ("kind: pedestrians\neffects: {noise_std: -0.1}\n", "'effects.noise_std' is -0.1; it must lie"),
        ("kind: lab\nlab: {poses: [{distance_ft: 0}]}\n", "'lab.poses[0].distance_ft' is 0; it must lie"),
        # rendered a default drive-by, the pedestrians block silently ignored
        (
            "kind: driveby\npedestrians: {count: [1, 2]}\n",
            "its 'pedestrians' section would be ignored: kind is",
        ),
        ("pedestrians: {count: [1, 2]}\n", "no kind is given (so 'lab'); set kind: pedestrians"),
        # said "a lab scene needs lab.poses"
        ("", "is empty: it needs a kind (lab, driveby or pedestrians)"),
    ],
)
def test_a_bad_spec_value_is_one_line_naming_it(tmp_path, text, said):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    result = run_physadv("scene", "render", spec, "--out", tmp_path / "out")
    assert result.returncode == 2, result.stderr
    assert said in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_single_number_is_a_range_of_one_value():
    spec = validate({"kind": "pedestrians", "pedestrians": {"count": 3, "distance_m": 5}})
    assert spec["pedestrians"]["count"] == [3, 3] and spec["pedestrians"]["distance_m"] == [5, 5]


@pytest.mark.parametrize("name", ["lab_rp2.yaml", "driveby_stop.yaml", "pedestrians.yaml"])
def test_shipped_specs_validate(name):
    spec = load_spec(ROOT / "scenes" / name)
    assert spec["kind"] in ("lab", "driveby", "pedestrians")


def test_lab_table_poses_follow_rp2():
    poses = [
        (p["distance_ft"], p["angle_deg"])
        for p in load_spec(ROOT / "scenes" / "lab_rp2.yaml")["lab"]["poses"]
    ]
    assert poses == [(5, 0), (5, 15), (10, 0), (10, 30), (40, 0)]


def test_scene_render_cli_writes_video_and_truth(tmp_path):
    spec = tmp_path / "short_driveby.yaml"
    spec.write_text(
        "kind: driveby\nseed: 3\ncamera: {width: 320, height: 240}\n"
        "driveby: {start_ft: 20, end_ft: 15, speed_kmh: 20, fps: 10}\n"
    )
    result = run_physadv("scene", "render", str(spec), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in (tmp_path / "out" / "ground_truth.jsonl").read_text().splitlines()]
    video = cv2.VideoCapture(str(tmp_path / "out" / "scene.mp4"))
    count = 0
    while video.read()[0]:
        count += 1
    assert count == len(lines) == 3  # 5 ft at 20 km/h and 10 fps: 0.549 m per frame → 3 frames
    # not a terminal (captured, as under CI or nohup): progress comes as log lines, not one bar at the end
    assert "rendering short_driveby.yaml: 1/3 (33%)" in result.stdout
    assert "rendering short_driveby.yaml: 3/3 (100%)" in result.stdout
    distances = [line["objects"][0]["distance_m"] for line in lines]
    assert distances == sorted(distances, reverse=True)  # approaching
    assert {"index", "time_s", "objects"} <= set(lines[0]) and lines[0]["objects"][0]["class_name"] == "stop"


def test_bad_spec_is_one_line(tmp_path):
    spec = tmp_path / "typo.yaml"
    spec.write_text("kind: lab\nlab: {poses: [{distance_ft: 5}]}\neffect: {}\n")
    result = run_physadv("scene", "render", str(spec), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "did you mean 'effects'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_datasets_load_in_torch_and_ultralytics(tmp_path):
    from ultralytics.data.utils import check_det_dataset

    from physadv.data.image_folder import load_image_folder
    from physadv.scene.dataset import write_classification_set, write_detection_set

    counts = write_classification_set(tmp_path / "cls", per_class=2, seed=0)
    data = load_image_folder(tmp_path / "cls")
    assert len(data.names) == len(counts) == len(SIGN_CLASSES) and data.images.shape[1:] == (3, 32, 32)
    yaml_path = write_detection_set(tmp_path / "det", train=4, val=2, seed=0)
    info = check_det_dataset(str(yaml_path))
    assert info["names"] == {0: "person", 1: "stop sign"}
    labels = [
        line.split()
        for p in (tmp_path / "det" / "labels" / "train").glob("*.txt")
        for line in p.read_text().splitlines()
    ]
    assert labels and all(row[0] in ("0", "1") and all(0 <= float(v) <= 1 for v in row[1:]) for row in labels)


def test_sticker_and_patch_placement_is_differentiable():
    """Gradients reach the artefact through the same placement the renderer uses."""
    from physadv.artefact import Artefact
    from physadv.scene.compose import composite
    from physadv.scene.render import apply_sticker, draw_shot, person_object, wear_patch
    from physadv.scene.wear import TORSO_Y

    rng = np.random.default_rng(0)
    sticker = Artefact(torch.rand(3, 30, 30, requires_grad=True), (750.0, 750.0), torch.zeros(1, 30, 30))
    sticker.alpha[:, 5:10, 5:25] = 1
    face = torch.from_numpy(np.array(render_face("stop", 0.2))).permute(2, 0, 1)
    stuck = apply_sticker(face, sticker)
    corners = torch.tensor([[[100.0, 80.0], [220.0, 85.0], [218.0, 200.0], [102.0, 196.0]]])
    frame = composite(torch.full((1, 3, 240, 320), 0.5), stuck[None], corners)
    frame.mean().backward()
    assert sticker.image.grad is not None and sticker.image.grad.abs().sum() > 0
    assert sticker.image.grad[:, 15:, :].abs().sum() == 0  # no gradient outside the sticker mask

    # a patch goes on a rendered person's torso at its physical size, differentiably
    person = person_object(1, rng, (0.0, 0.0, 4.0), 300, 0.0)
    cam = Camera(640, 480, 60.0, (0.0, 1.5, 0.0), 0.0, -3.0)
    layers, (truth,) = draw_shot(Shot(cam, [person], EffectParams(), 0.0), make_backdrop(rng))
    patch = Artefact(torch.rand(3, 120, 120, requires_grad=True), (400.0, 400.0))
    worn = wear_patch(layers.frame, layers, patch)
    ys, xs = torch.nonzero((worn - layers.frame).abs().amax(dim=(0, 1)) > 0.02, as_tuple=True)
    depth = float(layers.planes.centre[0, 2])  # the torso plane's depth (m)
    assert abs(float(xs.max() - xs.min() + 1) - cam.focal_px * 0.4 / depth) <= 3  # 40 cm at that depth
    centre_y = float(ys.min() + ys.max() + 1) / 2
    sprite_top, sprite_height = truth.corners[0][1], truth.corners[3][1] - truth.corners[0][1]
    assert abs(centre_y - (sprite_top + TORSO_Y * sprite_height)) <= 2  # 2/5 down the torso
    worn.sum().backward()
    assert patch.image.grad.abs().sum() > 0


def test_person_box_matches_rendered_pixels():
    from physadv.scene.render import person_object

    rng = np.random.default_rng(5)
    person = person_object(1, rng, (0.5, 0.0, 6.0), 300, 0.0)
    cam = Camera(640, 480, 60.0, (0.0, 1.5, 0.0), 0.0, -3.0)
    backdrop = make_backdrop(np.random.default_rng(0))
    image, truth = render_shot(Shot(cam, [person], EffectParams(), 0.0), backdrop)
    empty, _ = render_shot(Shot(cam, [], EffectParams(), 0.0), backdrop)
    ys, xs = torch.nonzero((image - empty).abs().amax(0) > 0.03, as_tuple=True)
    (obj,) = truth.objects
    measured = [float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1]
    assert all(abs(m - b) <= 2.5 for m, b in zip(measured, obj.box, strict=True)), (measured, obj.box)
    expected_height = cam.focal_px * person.height_m / math.hypot(6.0, 1.5 - person.height_m / 2)
    assert abs((obj.box[3] - obj.box[1]) - expected_height) / expected_height < 0.03


def test_hidden_person_box_covers_only_what_is_seen():
    """A person half behind a nearer one gets the box of their visible part; one fully behind gets none."""
    from physadv.scene.render import person_object

    cam = Camera(640, 480, 60.0, (0.0, 1.5, 0.0), 0.0, -3.0)
    backdrop = make_backdrop(np.random.default_rng(0))
    near = person_object(1, np.random.default_rng(1), (0.0, 0.0, 4.0), 300, 0.0)
    beside = person_object(2, np.random.default_rng(2), (0.35, 0.0, 8.0), 300, 0.0)
    behind = person_object(3, np.random.default_rng(3), (0.0, 0.0, 9.0), 300, 0.0)
    (alone,) = render_shot(Shot(cam, [beside], EffectParams(), 0.0), backdrop)[1].objects
    image, truth = render_shot(Shot(cam, [near, beside, behind], EffectParams(), 0.0), backdrop)
    by_id = {o.object_id: o for o in truth.objects}
    assert 3 not in by_id  # entirely hidden behind person 1
    assert by_id[1].visible == 1.0
    seen = by_id[2]
    assert 0.1 < seen.visible < 0.9
    # the visible part of person 2 is where the scene with them alone differs from the scene without
    without, _ = render_shot(Shot(cam, [near, behind], EffectParams(), 0.0), backdrop)
    ys, xs = torch.nonzero((image - without).abs().amax(0) > 0.03, as_tuple=True)
    measured = [float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1]
    assert all(abs(m - b) <= 2.5 for m, b in zip(measured, seen.box, strict=True)), (measured, seen.box)
    assert seen.box[2] - seen.box[0] < alone.box[2] - alone.box[0] - 5


def test_scene_render_with_sticker_changes_only_the_sign(tmp_path):
    from PIL import Image

    spec = tmp_path / "one_pose.yaml"
    spec.write_text(
        "kind: lab\nseed: 4\ncamera: {width: 320, height: 240, jitter_deg: 0}\n"
        "lab: {poses: [{distance_ft: 8, angle_deg: 10}], draws_per_pose: 1}\n"
        "effects: {noise_std: 0, motion_blur_px: 0}\n"
    )
    rgba = np.zeros((75, 75, 4), np.uint8)
    rgba[20:30, 10:60] = (0, 0, 0, 255)  # one black bar across the face
    Image.fromarray(rgba, "RGBA").save(tmp_path / "sticker.png")
    clean = run_physadv("scene", "render", spec, "--out", tmp_path / "clean", "--frames")
    stuck = run_physadv(
        "scene",
        "render",
        spec,
        "--out",
        tmp_path / "stuck",
        "--frames",
        "--sticker",
        tmp_path / "sticker.png",
    )
    assert clean.returncode == 0 and stuck.returncode == 0, clean.stderr + stuck.stderr
    a = cv2.imread(str(tmp_path / "clean" / "frames" / "000000.png")).astype(int)
    b = cv2.imread(str(tmp_path / "stuck" / "frames" / "000000.png")).astype(int)
    ys, xs = np.nonzero(np.abs(a - b).max(-1) > 30)
    box = json.loads((tmp_path / "clean" / "ground_truth.jsonl").read_text().splitlines()[0])["objects"][0][
        "box"
    ]
    assert len(xs) > 50, "the sticker must show"
    assert (
        xs.min() >= box[0] - 1
        and xs.max() <= box[2] + 1
        and ys.min() >= box[1] - 1
        and ys.max() <= box[3] + 1
    )
