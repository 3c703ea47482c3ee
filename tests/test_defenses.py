"""Defenses: each transform on known inputs, a gradient path through each, the defended adapter,
and `physadv defend` as a user runs it."""

from __future__ import annotations

import json

import pytest
import torch

from physadv.defenses.catalogue import parse_defenses
from physadv.defenses.defended import Defended
from physadv.defenses.masking import ObjectSeeker, PatchCleanser, mask_windows
from physadv.defenses.mc_dropout import MCDropout
from physadv.defenses.transforms import (
    BitDepth,
    GaussianBlur,
    Jpeg,
    LocalGradientSmoothing,
    MedianBlur,
    ResizePad,
)
from physadv.errors import PhysadvError
from physadv.models import load_model
from physadv.models.classifier import Classifier
from physadv.models.detector import Detections
from tests.conftest import run_physadv


def _scene() -> torch.Tensor:
    """A smooth gradient image with a busy 24×24 noise square (a 'patch') at (40, 40)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 96), indexing="ij")
    image = torch.stack([x, y, (x + y) / 2])[None].clone()
    image[..., 40:64, 40:64] = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0))
    return image


def test_transforms_on_known_inputs():
    image = _scene()
    flat = torch.full((1, 3, 32, 48), 0.5)
    jpeg = Jpeg(50)(image)
    assert jpeg.shape == image.shape
    assert (jpeg - image)[..., 40:64, 40:64].abs().mean() > 3 * (jpeg - image)[..., :32, :32].abs().mean()
    assert torch.allclose(Jpeg(75)(flat), flat, atol=0.02)  # odd sizes are padded and cropped back
    salt = flat.clone()
    salt[..., 10, 10] = 1.0
    assert MedianBlur(3)(salt)[..., 10, 10].max() == pytest.approx(0.5)
    assert GaussianBlur(1.0)(salt)[..., 10, 10].max() < 0.7
    assert set(BitDepth(1)(image).unique().tolist()) <= {0.0, 1.0}
    resize = ResizePad(0.5)
    out = resize(image, torch.Generator().manual_seed(3))
    s, left, top = resize._last
    assert out.shape == image.shape and s < 1
    box = torch.tensor([[10.0, 20.0, 50.0, 60.0]])
    moved = box * s + torch.tensor([left, top, left, top])
    assert torch.allclose(resize.boxes_back(moved), box, atol=1e-4)


def test_lgs_damps_the_busy_square_only():
    image = _scene()
    lgs = LocalGradientSmoothing()
    mask = lgs.mask(image)
    assert mask[..., 44:60, 44:60].mean() > 0.5
    assert mask[..., :30, :30].max() == 0  # the smooth gradient is left alone
    out = lgs(image)
    assert torch.equal(out[..., :30, :30], image[..., :30, :30])
    assert out[..., 44:60, 44:60].mean() < 0.5 * image[..., 44:60, 44:60].mean()


@pytest.mark.parametrize("spec", ["jpeg:75", "median:3", "gauss:1", "bits:4", "resize:0.8", "lgs"])
def test_every_defense_passes_gradients(spec):
    (choice,) = parse_defenses(spec)
    defense = choice.transform
    x = _scene().requires_grad_(True)
    defense(x, torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None and x.grad[..., 40:64, 40:64].abs().sum() > 0


@pytest.mark.parametrize("spec", ["patchcleanser:0.25", "mcdropout:0.2", "jpeg:75"])
def test_classifier_defenses_pass_gradients(spec):
    bare = load_model("default", task="classify", device="cpu")
    (choice,) = parse_defenses(spec, "classifier")
    defended = choice.wrap(bare, 0)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    defended.logits(x)[:, 3].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_objectseeker_candidates_pass_gradients(lively_yolo):
    from physadv.models.detector import YoloDetector

    bare = YoloDetector(lively_yolo("yolov8n.yaml").model, imgsz=160)
    seeker = ObjectSeeker(bare, lines=2, sample=3)
    x = _scene().expand(2, -1, -1, -1).clone().requires_grad_(True)
    cands = seeker.candidates(x)
    anchors = bare.candidates(x).scores.shape[1]
    assert cands.scores.shape[:2] == (2, 4 * anchors)  # the image and three masked copies
    cands.scores[..., 0].max(dim=1).values.sum().backward()
    assert x.grad.abs().sum() > 0


def test_parse_defenses_errors():
    assert [d.name for d in parse_defenses("jpeg:60, median , lgs")] == ["jpeg:60", "median:3", "lgs"]
    names = [d.name for d in parse_defenses("patchcleanser,objectseeker:4,mcdropout")]
    assert names == ["patchcleanser:0.25", "objectseeker:4", "mcdropout:0.2"]
    with pytest.raises(PhysadvError, match="'objectseeker' is for detectors, not a classifier"):
        parse_defenses("jpeg,objectseeker", "classifier")
    with pytest.raises(PhysadvError, match="unknown defense 'jpg'"):
        parse_defenses("jpg:75")
    with pytest.raises(PhysadvError, match="bad setting in defense 'median:x'"):
        parse_defenses("median:x")
    for spec, meaning in [
        ("gauss:0", "gauss takes a blur sigma in pixels, above 0"),
        ("jpeg:0", "jpeg takes a JPEG quality from 1 to 100"),
        ("median:4", "median takes an odd window size"),
        ("bits:9", "bits takes bits per channel"),
        ("patchcleanser:1.5", "patchcleanser takes the patch side as a share"),
    ]:
        with pytest.raises(PhysadvError, match=f"bad setting in defense '{spec}': {meaning}"):
            parse_defenses(spec)


def test_defend_cli_bad_setting_is_one_line(tmp_path):
    from PIL import Image

    Image.new("RGB", (16, 16), "grey").save(tmp_path / "patch.png")
    args = ["defend", "--artefact", tmp_path / "patch.png", "--source", tmp_path, "--out", tmp_path / "o"]
    result = run_physadv(*args, "--defenses", "gauss:0")  # was an internal error from Kornia
    assert result.returncode == 2 and "gauss takes a blur sigma" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_defended_detector_maps_boxes_back(lively_yolo):
    from physadv.models.detector import YoloDetector

    bare = YoloDetector(lively_yolo("yolov8n.yaml").model, imgsz=160)
    images = _scene().expand(2, -1, -1, -1)
    resize = ResizePad(0.6)
    defended = Defended(bare, [resize], seed=1)
    cands = defended.candidates(images)
    # the same draw by hand: the detector saw the shrunk, shifted image; boxes come back unshifted
    shrunk = resize(images, torch.Generator().manual_seed(1))
    s, left, top = resize._last
    assert s < 1
    raw = bare.candidates(shrunk)
    expected = (raw.boxes - raw.boxes.new_tensor([left, top, left, top])) / s
    assert torch.allclose(cands.boxes, expected, atol=1e-3)
    assert torch.allclose(cands.scores, raw.scores)
    assert defended.imgsz == 160 and defended.kind == "detector" and defended.name == "resize:0.6"
    assert Defended(bare, []).name == "none"


def test_defend_cli_writes_the_table(tmp_path):
    persons = tmp_path / "persons"
    made = run_physadv(
        "scene", "dataset", "--task", "persons", "--out", persons, "--train", 6, "--val", 4, "--seed", 3
    )
    assert made.returncode == 0, made.stderr
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "patch.png")
    out = tmp_path / "defend"
    result = run_physadv(
        "defend",
        "--artefact",
        tmp_path / "patch.png",
        "--images",
        persons / "images" / "train",
        "--val",
        persons / "images" / "val",
        "--defenses",
        "jpeg:75,lgs,objectseeker:2",
        "--adaptive-steps",
        2,
        "--batch",
        2,
        "--resolution",
        32,
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "defenses.json").read_text())
    assert [r["defense"] for r in rows] == ["none", "jpeg:75", "lgs", "objectseeker:2"]
    for r in rows:
        for key in ("clean", "non_adaptive", "adaptive"):
            assert 0 <= r[key]["rate"] <= 1 and r[key]["n"] > 0
        assert r["ms_per_frame"] > 0
    assert rows[0]["adaptive"] == rows[0]["non_adaptive"]  # the bare model: the patch was made against it
    assert (out / "adaptive_jpeg_75.png").is_file() and (out / "defenses.png").is_file()
    assert "| jpeg:75 |" in (out / "defenses.md").read_text()
    bad = run_physadv(
        "defend",
        "--artefact",
        tmp_path / "patch.png",
        "--images",
        persons / "images" / "train",
        "--defenses",
        "jpg",
        "--out",
        tmp_path / "bad",
    )
    assert bad.returncode == 2 and "unknown defense 'jpg'" in bad.stderr and "Traceback" not in bad.stderr


# --- masking defenses on known inputs -------------------------------------------------------------


@pytest.mark.parametrize("size,patch,count", [(32, 8, 6), (32, 1, 3), (50, 13, 4), (20, 20, 2), (64, 5, 9)])
def test_mask_windows_cover_every_patch_position(size, patch, count):
    windows = mask_windows(size, patch, count)
    assert len(windows) <= count and all(0 <= a < b <= size for a, b in windows)
    for start in range(size - patch + 1):
        assert any(a <= start and start + patch <= b for a, b in windows), (start, windows)


class _Spot(torch.nn.Module):
    """'spot' (1) when any pixel is white, else 'clear' (0)."""

    def forward(self, x):
        hot = (x.amin(dim=1) > 0.95).flatten(1).any(dim=1).float()
        return torch.stack([1 - hot, hot], dim=1) * 5


def _spotted(size: int) -> torch.Tensor:
    image = torch.full((1, 3, 32, 32), 0.4)
    image[..., 10 : 10 + size, 20 : 20 + size] = 1.0
    return image


def test_patchcleanser_recovers_and_certifies():
    bare = Classifier(_Spot(), ["clear", "spot"], input_size=(32, 32))
    cleanser = PatchCleanser(bare, patch=0.25)  # 8-pixel patches: 12-pixel masks every 5 pixels
    assert len(cleanser.masks(32, 32)) == 25  # the sixth window per axis would repeat the fifth
    clean, small, large = torch.full((1, 3, 32, 32), 0.4), _spotted(5), _spotted(16)
    assert bare.predict(small)[0].item() == 1
    # a patch within the size: the masks that hide it say 'clear' and survive double masking
    assert cleanser.predict(torch.cat([clean, small]))[0].tolist() == [0, 0]
    assert cleanser.predict(large)[0].item() == 1  # larger than the threat model: not recovered
    certified = cleanser.certify(torch.cat([clean, small]), torch.tensor([0, 0]))
    assert certified.tolist() == [True, False]


class _WhiteBoxes:
    """A detector that reports the white square (class 0) unless a red pixel is in sight."""

    kind, device = "detector", torch.device("cpu")
    names = None

    def predict(self, images, conf=0.25, iou=0.7, classes=None, max_det=300):
        out = []
        for image in images:
            red = ((image[0] > 0.9) & (image[1] < 0.1) & (image[2] < 0.1)).any()
            ys, xs = torch.nonzero(image.amin(dim=0) > 0.95, as_tuple=True)
            if red or len(xs) == 0:
                out.append(Detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long)))
                continue
            box = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]).float()
            out.append(Detections(box, torch.tensor([0.9]), torch.tensor([0])))
        return out


def test_objectseeker_finds_the_object_a_patch_hides():
    image = torch.full((2, 3, 64, 64), 0.4)
    image[:, :, 20:40, 6:22] = 1.0  # the object, on the left
    image[0, :, 28:36, 48:56] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]  # a patch, on the right
    seeker = ObjectSeeker(_WhiteBoxes(), lines=3)
    assert len(_WhiteBoxes().predict(image[:1])[0].boxes) == 0  # the patch works on the bare detector
    patched, clean = seeker.predict(image)
    # a copy with the right side masked sees the object; its box is added
    assert patched.boxes.tolist() == [[6.0, 20.0, 22.0, 40.0]]
    # without the patch the unmasked image reports it, and the masked copies' boxes are pruned
    assert clean.boxes.tolist() == [[6.0, 20.0, 22.0, 40.0]]


def test_mc_dropout_spread_and_false_alarms():
    bare = load_model("default", task="classify", device="cpu")
    x = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(MCDropout(bare, p=0.0, samples=4).uncertainty(x), torch.zeros(64))
    mc = MCDropout(bare, p=0.3, samples=8, false_alarm=0.1)
    assert (mc.uncertainty(x) > 0).all()
    assert not torch.equal(mc.logits(x[:4]), mc.logits(x[:4]))  # a fresh draw every call (EOT)
    assert torch.equal(bare.logits(x[:4]), bare.logits(x[:4]))  # the bare model is untouched
    assert mc.evasion_penalty(x[:4]).item() == 0  # nothing to evade before calibration
    mc.calibrate(x)
    assert 0.02 <= mc.flag(x).float().mean().item() <= 0.2
    probe = x[:4].clone().requires_grad_(True)
    penalty = mc.evasion_penalty(probe)
    penalty.backward()
    assert penalty.item() > 0 and probe.grad.abs().sum() > 0  # the adaptive attack can lower the spread
    with pytest.raises(PhysadvError, match="classifier defense"):
        MCDropout(_WhiteBoxes())


def test_defend_cli_on_a_sticker(tmp_path):
    made = run_physadv(
        "sticker", "--target", "speed limit 45", "--steps", 3, "--batch", 4, "--pool", 8,
        "--eval-views", 4, "--no-scenes", "--out", tmp_path / "sticker",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = tmp_path / "defend"
    result = run_physadv(
        "defend", "--artefact", tmp_path / "sticker" / "sticker.png",
        "--defenses", "jpeg:75,median:3,lgs,patchcleanser:0.25,mcdropout",
        "--views", 8, "--adaptive-steps", 2, "--batch", 4, "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {r["defense"]: r for r in json.loads((out / "defenses.json").read_text())}
    assert list(rows) == ["none", "jpeg:75", "median:3", "lgs", "patchcleanser:0.25", "mcdropout:0.2"]
    for r in rows.values():
        for key in ("clean", "non_adaptive", "adaptive"):
            assert r[key]["n"] == 8
        assert set(r["success"]) == {"non_adaptive", "adaptive"}
    assert rows["none"]["clean"]["rate"] > 0.8  # the embedded classifier reads the clean sign
    assert 0 <= rows["patchcleanser:0.25"]["certified"]["rate"] <= rows["patchcleanser:0.25"]["clean"]["rate"]
    assert set(rows["mcdropout:0.2"]["flagged"]) == {"clean", "non_adaptive", "adaptive"}
    assert "certified" not in rows["jpeg:75"] and "flagged" not in rows["jpeg:75"]
    table = (out / "defenses.md").read_text()
    assert "| patchcleanser:0.25 |" in table and "certified" in table
    assert (out / "adaptive_patchcleanser_0p25.png").is_file() and (out / "defenses.png").is_file()
    again = run_physadv(
        "defend", "--artefact", tmp_path / "sticker" / "sticker.png", "--defenses", "jpeg:75",
        "--views", 8, "--adaptive-steps", 2, "--batch", 4, "--out", out,
    )  # fmt: skip
    assert again.returncode == 0 and "resumed at step 2" in again.stdout + again.stderr  # no work redone
    assert json.loads((out / "defenses.json").read_text())[1]["adaptive"] == rows["jpeg:75"]["adaptive"]
    wrong = run_physadv(
        "defend", "--artefact", tmp_path / "sticker" / "sticker.png", "--defenses", "objectseeker",
        "--out", out,
    )  # fmt: skip
    assert wrong.returncode == 2 and "'objectseeker' is for detectors" in wrong.stderr
