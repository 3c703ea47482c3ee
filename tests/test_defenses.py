"""Defenses: each transform on known inputs, a gradient path through each, the defended adapter,
and `physadv defend` as a user runs it."""

from __future__ import annotations

import json

import pytest
import torch

from physadv.defenses.defended import Defended
from physadv.defenses.transforms import (
    BitDepth,
    GaussianBlur,
    Jpeg,
    LocalGradientSmoothing,
    MedianBlur,
    ResizePad,
    parse_defenses,
)
from physadv.errors import PhysadvError
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
    (defense,) = parse_defenses(spec)
    x = _scene().requires_grad_(True)
    defense(x, torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None and x.grad[..., 40:64, 40:64].abs().sum() > 0


def test_parse_defenses_errors():
    assert [d.name for d in parse_defenses("jpeg:60, median , lgs")] == ["jpeg:60", "median:3", "lgs"]
    with pytest.raises(PhysadvError, match="unknown defense 'jpg'"):
        parse_defenses("jpg:75")
    with pytest.raises(PhysadvError, match="bad setting in defense 'median:x'"):
        parse_defenses("median:x")


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
        "jpeg:75,lgs",
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
    assert [r["defense"] for r in rows] == ["none", "jpeg:75", "lgs"]
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
