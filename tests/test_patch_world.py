"""Person patches in the world: one placement for renderer, attack and judge; physical EOT; the
independent compositor; training in rendered streets; tiny and huge people."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from conftest import run_physadv

from physadv.artefact import Artefact
from physadv.eot.person_eot import COMPONENTS, PersonEOT, cloth, draw, patch_textures, straight
from physadv.eot.person_views import photo_frames, wear
from physadv.harness import opencv_paste
from physadv.scene.backgrounds import make_backdrop
from physadv.scene.camera import Camera
from physadv.scene.effects import EffectParams
from physadv.scene.render import Shot, draw_shot, person_object, wear_patch
from physadv.scene.wear import TORSO_Y, composite_patches, focal_for, planes_from_boxes

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_torso_plane_from_a_box():
    """Held straight, a patch of side s on a person of height H whose box is h pixels tall is a square of
    s/H·h pixels centred TORSO_Y·h below the box top; turned by a yaw it narrows by about cos(yaw)."""
    boxes = torch.tensor([[100.0, 50.0, 160.0, 225.0], [300.0, 200.0, 306.0, 217.5]])  # 175 and 17.5 px
    planes = planes_from_boxes(boxes, focal_for(640), torch.tensor([320.0, 240.0]), person_height_m=1.75)
    quads = planes.quads(0.4)
    for quad, box in zip(quads, boxes, strict=True):
        h = float(box[3] - box[1])
        side = 0.4 / 1.75 * h
        assert torch.allclose(quad[1] - quad[0], torch.tensor([side, 0.0]), atol=1e-3 * h)
        assert torch.allclose(quad[3] - quad[0], torch.tensor([0.0, side]), atol=1e-3 * h)
        centre = torch.tensor([float(box[0] + box[2]) / 2, float(box[1]) + TORSO_Y * h])
        assert torch.allclose(quad.mean(0), centre, atol=1e-3 * h)
    ahead = planes_from_boxes(
        torch.tensor([[290.0, 50.0, 350.0, 225.0]]), focal_for(640), torch.tensor([320.0, 240.0])
    )
    turned = ahead.quads(0.4, yaw_deg=torch.tensor([60.0]))  # straight ahead: no off-axis perspective
    width = (turned[0, 1, 0] - turned[0, 0, 0]).abs()
    assert float(width) == pytest.approx(0.4 / 1.75 * 175 * math.cos(math.radians(60)), rel=0.05)
    # the drawn people wear it at the same height: TORSO_Y is their torso's convention
    sprite = person_object(1, np.random.default_rng(3), (0.0, 0.0, 5.0), 400, 0.0)
    assert sprite.torso[1] == pytest.approx(TORSO_Y, abs=1 / 400)


def test_renderer_and_attack_composite_the_same_pixels():
    """One geometry: a rendered person wears the patch through the renderer exactly as the attack puts
    it there (the attack's path with every EOT component off)."""
    rng = np.random.default_rng(0)
    people = [
        person_object(1, rng, (0.6, 0.0, 5.0), 300, 0.0),
        person_object(2, rng, (-0.2, 0.0, 9.0), 200, 10.0),
    ]
    cam = Camera(640, 480, 60.0, (0.0, 1.5, 0.0), 0.0, -3.0)
    layers, _ = draw_shot(Shot(cam, people, EffectParams(), 0.0), make_backdrop(rng))
    patch = torch.rand(3, 40, 40)
    rendered = wear_patch(layers.frame, layers, Artefact(patch, (400.0, 400.0)))
    from physadv.eot.person_views import PersonFrames

    frames = PersonFrames(
        layers.frame,
        torch.zeros(1, 1, 4),
        torch.zeros(1, 1, dtype=torch.bool),
        layers.planes,
        torch.zeros(len(layers.ranks), dtype=torch.long),
        layers.rank_map,
        layers.ranks,
    )
    eot = PersonEOT()
    attacked = wear(patch, frames, straight(len(layers.ranks), 1), eot, 0.4)
    assert (rendered - layers.frame).abs().amax() > 0.2  # the patch is there
    assert torch.allclose(rendered, attacked, atol=1e-5)


def test_compositing_gradient_is_exact():
    quads = torch.tensor(
        [
            [[3.0, 3], [9, 3], [9, 9], [3, 9]],
            [[5.0, 4], [11, 5], [10, 11], [4, 10]],
            [[1.0, 1], [6, 1], [6, 6], [1, 6]],
        ]
    ).double()
    owner = torch.tensor([0, 0, 1])
    frames = torch.rand(2, 3, 14, 13, dtype=torch.float64, requires_grad=True)
    rgb = torch.rand(3, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    alpha = torch.rand(3, 1, 6, 6, dtype=torch.float64)  # coverage is geometry: no gradient by design

    def run(f, c):
        return composite_patches(f, torch.cat([c, alpha], 1), quads, owner)

    assert torch.autograd.gradcheck(run, (frames, rgb), eps=1e-6, atol=1e-4)


def test_eot_components_switch_off_and_cloth_follows_kornia():
    from kornia.geometry.transform import get_tps_transform, warp_image_tps

    gen = torch.Generator().manual_seed(0)
    full = draw(PersonEOT(), 5, 2, gen)
    for name in COMPONENTS:
        off = draw(PersonEOT().without(name), 5, 2, torch.Generator().manual_seed(0))
        assert off.keys() == full.keys()
        changed = {k for k in full if not torch.equal(full[k], off[k])}
        assert changed, name  # switching a component off changes its own parameters ...
    none = PersonEOT(components=())
    assert (
        draw(none, 3, 1, torch.Generator())["yaw"].abs().max() == 0 and straight(3, 1)["tps"].abs().max() == 0
    )
    # ... and the cloth warp is Kornia's thin-plate spline (evaluated on a coarse grid)
    p = draw(PersonEOT(crease=0.0), 3, 1, torch.Generator().manual_seed(1))
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 48), indexing="ij")
    smooth = torch.stack([xx, yy, xx * yy, torch.ones_like(xx)])[None].expand(3, -1, -1, -1)
    line = torch.linspace(-1, 1, 4)
    src = torch.stack(torch.meshgrid(line, line, indexing="xy"), -1).view(1, -1, 2).expand(3, -1, -1)
    kernel, affine = get_tps_transform(src + p["tps"], src)
    reference = warp_image_tps(smooth, src + p["tps"], kernel, affine, align_corners=True)
    assert (cloth(smooth, p) - reference).abs().mean() < 0.01
    assert (smooth - reference).abs().mean() > 0.02  # the warp does something
    textures = patch_textures(torch.rand(3, 20, 20), draw(PersonEOT(), 4, 1, gen))
    assert textures.shape == (4, 4, 20, 20) and 0 <= textures.min() and textures.max() <= 1


def test_independent_compositor_puts_the_same_print_in_the_same_place():
    """OpenCV's paste of a smooth patch matches physadv's within a few levels; a noise patch does not
    (its pixels depend on the resampling: what the independent judgement is for)."""
    frame = torch.full((1, 3, 240, 320), 0.5)
    boxes = torch.tensor([[[120.0, 40.0, 200.0, 220.0]]])
    frames = photo_frames(frame, boxes, torch.ones(1, 1, dtype=torch.bool))
    quad = frames.planes.quads(0.4)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 60), torch.linspace(0, 1, 60), indexing="ij")
    smooth = torch.stack([xx, yy, 1 - xx])
    for patch, limit in ((smooth, 0.03), (torch.rand(3, 60, 60), None)):
        ours = wear(patch, frames, straight(1, 1), PersonEOT(), 0.4)[0]
        printed = (patch.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        theirs = opencv_paste.paste(
            (frame[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), printed, quad[0].numpy()
        )
        theirs = torch.from_numpy(theirs).permute(2, 0, 1).float() / 255
        x0, y0 = (quad[0].amin(0) + 2).int().tolist()
        x1, y1 = (quad[0].amax(0) - 2).int().tolist()
        gap = (ours - theirs)[:, y0:y1, x0:x1].abs().mean()
        if limit is not None:
            assert gap < limit
        else:
            assert gap > 0.03
    jpeg = opencv_paste.jpeg(np.full((16, 16, 3), 100, np.uint8), 85)
    assert jpeg.shape == (16, 16, 3) and abs(int(jpeg.mean()) - 100) <= 1


def _grey_photos(folder, label: str, count: int = 2):
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    for i in range(count):
        cv2.imwrite(str(folder / "images" / f"{i}.jpg"), np.full((480, 640, 3), 128, np.uint8))
        (folder / "labels" / f"{i}.txt").write_text(label + "\n")


@pytest.mark.parametrize("min_box", ["0", "8"])
def test_tiny_people_run_and_min_box_is_in_photo_pixels(tmp_path, min_box):
    """Issue 22.2: people 11 × 27 photo pixels (5 × 14 on the detector's 320 canvas) ran into the EOT
    blur's padding limit. They run now; --min-box 8 keeps them (photo pixels), --min-box 16 does not."""
    _grey_photos(tmp_path / "tiny", "0 0.42 0.48 0.017 0.057")
    args = ["patch", "--images", tmp_path / "tiny" / "images", "--labels", tmp_path / "tiny" / "labels"]
    args += ["--steps", 2, "--batch", 2, "--resolution", 24, "--holdout", 0.5, "--out", tmp_path / "run"]
    result = run_physadv(*args, "--min-box", min_box)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["train_objects"] == 1 and summary["heldout_objects"] == 1
    assert any("--holdout" in w for w in summary["warnings"])  # one training person: it says so
    assert "--holdout" in result.stderr
    assert result.stderr.count("physadv: warning: only 1 people in") == 1  # said once, before training
    if min_box == "8":
        refused = run_physadv(*args[:-1], tmp_path / "run16", "--min-box", 16)
        assert refused.returncode == 2 and "no person found" in refused.stderr


def test_huge_people_and_a_huge_patch(tmp_path):
    """A person filling the photo, wearing a 3 m patch larger than the frame: composited, judged, no error."""
    _grey_photos(tmp_path / "huge", "0 0.5 0.5 1.0 1.0")
    args = ["patch", "--images", tmp_path / "huge" / "images", "--labels", tmp_path / "huge" / "labels"]
    args += ["--steps", 1, "--batch", 2, "--resolution", 16, "--holdout", 0.5, "--min-box", 0]
    result = run_physadv(*args, "--size-mm", 3000, "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["size_mm"] == 3000


def test_patch_in_a_rendered_street(tmp_path):
    """`physadv patch --scene` optimises in fresh street frames and judges on held-out ones through both
    compositors; the street's own replay (the spec's seed) is not among them."""
    spec = tmp_path / "street.yaml"
    spec.write_text(
        "kind: pedestrians\nseed: 2\ncamera: {width: 320, height: 240}\n"
        "pedestrians: {frames: 4, count: [2, 3], distance_m: [3, 8], sign_probability: 0}\n"
    )
    out = tmp_path / "run"
    args = ["patch", "--scene", spec, "--scene-frames", 3, "--scene-val", 2, "--steps", 3, "--batch", 2]
    result = run_physadv(*args, "--resolution", 24, "--checkpoint-every", 1, "--out", out)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["judged_on"] == "scene" and summary["train_images"] == 0
    assert summary["train_scene_frames"] == 3 + 1  # the pool, then one new frame every other step
    judged = summary["judged"]["scene"]["default"]
    assert set(judged) == {"physadv", "independent", "agreement"}
    assert judged["independent"]["clean"]["objects"] == summary["heldout_objects"] > 0
    assert (out / "grid.jpg").is_file() and (out / "patch.pdf").is_file()
    resumed = run_physadv(*args, "--resolution", 24, "--checkpoint-every", 1, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    wrong = run_physadv("patch", "--scene", ROOT / "scenes" / "lab_rp2.yaml", "--out", tmp_path / "lab")
    assert wrong.returncode == 2 and "pedestrians" in wrong.stderr and "Traceback" not in wrong.stderr
    none = run_physadv("patch", "--out", tmp_path / "none")
    assert none.returncode == 2 and "--scene" in none.stderr
    off = run_physadv("patch", "--scene", spec, "--eot-off", "wind", "--out", tmp_path / "off")
    assert off.returncode == 2 and "wind" in off.stderr


def test_wear_on_people_draws_and_covers():
    """The segmenter's training data (``physadv train patch-segmenter``): a patch worn under a random
    draw and held straight, with the cover mask of the same draw (the call broke on a moved helper)."""
    from physadv.training.patch_wear import wear_on_people

    images = torch.rand(2, 3, 256, 256)
    boxes = torch.tensor([[[60.0, 40.0, 120.0, 220.0]], [[100.0, 30.0, 170.0, 240.0]]])
    worn = torch.ones(2, 1, dtype=torch.bool)
    for generator in (None, torch.Generator().manual_seed(0)):
        out, quads, cover = wear_on_people(images, boxes, worn, torch.rand(3, 64, 64), 0.4, generator)
        assert out.shape == images.shape and quads.shape == (2, 4, 2) and cover.shape == (2, 1, 256, 256)
        assert 0.005 < float(cover.mean()) < 0.2  # a 0.4 m patch on a ~180-px person
        assert (out - images).abs()[cover.expand_as(out) > 0].mean() > 0.1  # the patch is there
