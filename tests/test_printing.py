"""Printables: palettes, NPS/TV/mask norms, colour calibration from a photo, files at true size."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import run_physadv

from physadv.artefact import Artefact
from physadv.attacks.losses import mask_norm, nps, total_variation
from physadv.eot.colour import ColourTransfer, delta_e2000, rgb_to_lab
from physadv.errors import PhysadvError
from physadv.printing.calibrate import read_chart
from physadv.printing.chart import ChartLayout, render_chart
from physadv.printing.export import save_pdf, save_png
from physadv.printing.palette import Palette

PT_PER_MM = 72 / 25.4


def media_boxes_mm(pdf: Path) -> list[tuple[float, float]]:
    """Each page's (width, height) in mm, read with Pillow's PDF parser (a page without its own
    MediaBox inherits the document's)."""
    from PIL.PdfParser import PdfParser

    parser = PdfParser(str(pdf))
    default = parser.read_indirect(parser.root[b"Pages"]).get(b"MediaBox")
    boxes = [parser.read_indirect(ref).get(b"MediaBox") or default for ref in parser.pages]
    return [(float(x1) / PT_PER_MM, float(y1) / PT_PER_MM) for _, _, x1, y1 in boxes]


def page_images(pdf: Path) -> list[np.ndarray]:
    """The image drawn on each page, decoded from the PDF stream (``[H, W, 3]`` uint8); fails on
    anything but lossless Flate data."""
    from PIL.PdfParser import IndirectReference, PdfParser

    parser = PdfParser(str(pdf))

    def deref(obj):
        return parser.read_indirect(obj) if isinstance(obj, IndirectReference) else obj

    images = []
    for ref in parser.pages:
        xobjects = deref(deref(deref(ref)[b"Resources"])[b"XObject"])
        (stream,) = [deref(r) for r in xobjects.values()]
        info = stream.dictionary
        assert info[b"Filter"] == b"FlateDecode" and info[b"DecodeParms"][b"Predictor"] == 15
        w, h = info[b"Width"], info[b"Height"]
        rows = np.frombuffer(stream.decode(max_length=h * (1 + 3 * w)), np.uint8).reshape(h, 1 + 3 * w)
        assert not rows[:, 0].any()  # PNG row filter 0: the bytes are the pixels
        images.append(rows[:, 1:].reshape(h, w, 3))
    return images


# --- palette and loss terms -------------------------------------------------------------------


def test_palette_roundtrip_and_errors(tmp_path):
    pal = Palette.default()
    assert len(pal) == 30 and pal.colours.min() >= 0 and pal.colours.max() <= 1
    path = pal.save(tmp_path / "p.txt")
    torch.testing.assert_close(Palette.load(path).colours, pal.colours, atol=1e-6, rtol=0)
    (tmp_path / "bad.txt").write_text("0.1,0.2,0.3\n0.5,1.7,0.2\n")
    with pytest.raises(PhysadvError, match="line 2"):
        Palette.load(tmp_path / "bad.txt")


def test_nps_zero_on_palette_and_grows_away():
    pal = Palette.default().colours
    idx = torch.randint(0, len(pal), (2, 16, 16))
    on_palette = pal[idx].permute(0, 3, 1, 2)
    assert float(nps(on_palette, pal)) == 0.0
    target = pal[0].view(1, 3, 1, 1).expand(1, 3, 8, 8)
    away = [float(nps((target + step).clamp(0, 1), pal[:1])) for step in (0.05, 0.1, 0.2)]
    assert away[0] < away[1] < away[2]
    assert float(nps(on_palette, pal, mode="product")) == 0.0


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: nps(x, Palette.default().colours),
        lambda x: nps(x, Palette.default().colours, mode="product"),
        total_variation,
        lambda x: mask_norm(x - 0.5, torch.ones_like(x), p=1),
        lambda x: mask_norm(x - 0.5, torch.ones_like(x), p=2),
    ],
)
def test_loss_gradients(fn):
    x = torch.rand(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-4)


def test_total_variation_and_mask_norm_values():
    flat = torch.full((1, 3, 8, 8), 0.3)
    assert float(total_variation(flat)) == 0.0
    stripes = flat.clone()
    stripes[..., ::2] = 0.8
    assert float(total_variation(stripes)) == pytest.approx(0.5)
    delta, mask = torch.full((1, 3, 4, 4), 0.5), torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    assert float(mask_norm(delta, mask, p=1)) == pytest.approx(0.25)
    assert float(mask_norm(delta, mask, p=2)) == pytest.approx((0.125) ** 0.5)


def test_quantize_uses_only_palette_colours():
    pal = Palette.default()
    q = pal.quantize(torch.rand(3, 10, 10))
    flat = q.permute(1, 2, 0).reshape(-1, 3)
    assert all(((pal.colours - c).abs().sum(1) < 1e-6).any() for c in flat)


# --- colour science ---------------------------------------------------------------------------


def test_delta_e2000_reference_pairs():
    """Sharma, Wu & Dalal (2005) test data, pairs 1, 7 and 17."""
    lab1 = torch.tensor([[50.0, 2.6772, -79.7751], [50.0, 0.0, 0.0], [50.0, 2.5, 0.0]], dtype=torch.float64)
    lab2 = torch.tensor([[50.0, 0.0, -82.7485], [50.0, -1.0, 2.0], [73.0, 25.0, -18.0]], dtype=torch.float64)
    torch.testing.assert_close(
        delta_e2000(lab1, lab2),
        torch.tensor([2.0425, 2.3669, 27.1492], dtype=torch.float64),
        atol=1e-3,
        rtol=0,
    )


def test_colour_transfer_fit_recovers_an_affine_map():
    m, b = (
        torch.tensor([[0.8, 0.1, 0.0], [0.05, 0.85, 0.05], [0.0, 0.1, 0.75]]),
        torch.tensor([0.08, 0.06, 0.1]),
    )
    intended = torch.rand(50, 3)
    fitted = ColourTransfer.fit(intended, intended @ m.T + b)
    torch.testing.assert_close(fitted.matrix, m, atol=1e-4, rtol=0)
    torch.testing.assert_close(fitted.bias, b, atol=1e-4, rtol=0)
    img = torch.rand(2, 3, 4, 4, requires_grad=True)
    fitted(img).sum().backward()
    assert img.grad.abs().sum() > 0


# --- calibration from a photograph ------------------------------------------------------------

TRUE_M = np.array([[0.78, 0.08, 0.02], [0.04, 0.80, 0.06], [0.03, 0.07, 0.70]], np.float32)
TRUE_B = np.array([0.09, 0.08, 0.11], np.float32)


def synthetic_photo(seed: int = 0, with_chart: bool = True, cover: float = 0.0) -> np.ndarray:
    """The chart rendered, colour-shifted, warped by a random homography into a 1600×1200 scene,
    blurred and noised; plus a glare spot. ``cover``: a skin-toned, textured card lies over this share
    of the swatch area, from inside it to the page's bottom-right corner (0.25: the bottom-right
    quarter, 18 of 72 swatches, some only partly)."""
    rng = np.random.default_rng(seed)
    layout = ChartLayout()
    chart = render_chart(layout, px_per_mm=4.0).astype(np.float32) / 255
    shifted = np.clip(chart @ TRUE_M.T + TRUE_B, 0, 1)
    h, w = chart.shape[:2]
    if cover:
        rects = layout.swatch_rects_mm() * 4.0
        x0, y0, x1, y1 = rects[:, 0].min(), rects[:, 1].min(), rects[:, 2].max(), rects[:, 3].max()
        tall = max(0.5, cover)  # the bottom half of the rows (more when more is covered)
        left, top = round(x1 - (x1 - x0) * cover / tall), round(y1 - (y1 - y0) * tall)
        card = np.float32([0.78, 0.58, 0.47]) + rng.normal(0, 0.03, (h - top, w - left, 1))
        shifted[top:, left:] = np.clip(card, 0, 1)  # from inside the swatches over the page's corner
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    base = np.float32([[250, 180], [1350, 200], [1380, 1000], [220, 980]])
    dst = (base + rng.uniform(-60, 60, base.shape)).astype(np.float32)
    scene = np.tile(np.linspace(0.2, 0.45, 1600, dtype=np.float32)[None, :, None], (1200, 1, 3))
    if with_chart:
        homography = cv2.getPerspectiveTransform(src, dst)
        warped = cv2.warpPerspective(shifted, homography, (1600, 1200), flags=cv2.INTER_AREA)
        inside = cv2.warpPerspective(np.ones((h, w), np.float32), homography, (1600, 1200)) > 0.5
        scene[inside] = warped[inside]
        cx, cy = dst.mean(0).astype(int)
        cv2.circle(scene, (int(cx) + 40, int(cy) - 30), 9, (1.0, 1.0, 1.0), -1)  # glare
    scene = cv2.GaussianBlur(scene, (5, 5), 1.2)
    scene += rng.normal(0, 0.015, scene.shape).astype(np.float32)
    return (np.clip(scene, 0, 1) * 255).round().astype(np.uint8)


def test_calibration_recovers_swatches_from_a_synthetic_photo():
    reading = read_chart(synthetic_photo())
    truth = np.clip(ChartLayout().colours @ TRUE_M.T + TRUE_B, 0, 1)
    de = delta_e2000(rgb_to_lab(torch.from_numpy(reading.measured)), rgb_to_lab(torch.from_numpy(truth)))
    assert float(de.mean()) < 3.0, f"mean ΔE2000 {float(de.mean()):.2f}"
    torch.testing.assert_close(reading.transfer.matrix, torch.from_numpy(TRUE_M), atol=0.05, rtol=0)


def test_covered_swatches_are_left_out_by_position():
    """A quarter of the chart under a card: every swatch read wrong is left out, the fit holds."""
    reading = read_chart(synthetic_photo(seed=5, cover=0.25))
    truth = np.clip(ChartLayout().colours @ TRUE_M.T + TRUE_B, 0, 1).astype(np.float32)
    de = delta_e2000(rgb_to_lab(torch.from_numpy(reading.measured)), rgb_to_lab(torch.from_numpy(truth)))
    wrong = set(np.flatnonzero(de.numpy() > 3))
    left_out = set(np.flatnonzero(~reading.trusted))
    assert len(wrong) >= 16 and wrong <= left_out and len(left_out) <= len(wrong) + 4
    assert "row 8, column 9 (covered)" in reading.left_out() and "row 1, column 1" not in str(
        reading.left_out()
    )
    torch.testing.assert_close(reading.transfer.matrix, torch.from_numpy(TRUE_M), atol=0.02, rtol=0)


def test_photo_without_chart_is_a_clear_error():
    with pytest.raises(PhysadvError, match="no calibration chart found"):
        read_chart(synthetic_photo(with_chart=False))


def test_calibrate_cli_end_to_end(tmp_path):
    photo = tmp_path / "chart_photo.jpg"
    cv2.imwrite(
        str(photo), cv2.cvtColor(synthetic_photo(seed=3), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
    )
    result = run_physadv("calibrate", "photo", str(photo), "--out", str(tmp_path / "cal"))
    assert result.returncode == 0, result.stderr
    assert len(Palette.load(tmp_path / "cal" / "palette.txt")) == 72
    transfer = ColourTransfer.load(tmp_path / "cal" / "colour_transfer.json")
    torch.testing.assert_close(transfer.bias, torch.from_numpy(TRUE_B), atol=0.05, rtol=0)
    covered = tmp_path / "covered.jpg"
    cv2.imwrite(str(covered), cv2.cvtColor(synthetic_photo(seed=3, cover=0.25), cv2.COLOR_RGB2BGR))
    part = run_physadv("calibrate", "photo", str(covered), "--out", str(tmp_path / "cal2"))
    assert part.returncode == 0, part.stderr
    trusted = int(re.search(r"swatches trusted: (\d+) of 72", part.stdout).group(1))
    assert 50 <= trusted <= 56 and "row 8, column 9 (covered)" in part.stdout
    assert len(Palette.load(tmp_path / "cal2" / "palette.txt")) == trusted  # only trusted colours
    lines = (tmp_path / "cal2" / "swatches.csv").read_text().splitlines()
    assert lines[-1].startswith("8,9,") and lines[-1].endswith(",covered") and lines[1].endswith(",")
    covered.unlink()
    cv2.imwrite(str(covered), cv2.cvtColor(synthetic_photo(seed=1, cover=0.7), cv2.COLOR_RGB2BGR))
    most = run_physadv("calibrate", "photo", str(covered), "--out", str(tmp_path / "cal3"))
    assert most.returncode == 2 and "swatches can be trusted (need at least 50%)" in most.stderr
    assert len(most.stderr.strip().splitlines()) == 1 and not (tmp_path / "cal3").exists()
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), synthetic_photo(with_chart=False))
    bad = run_physadv("calibrate", "photo", str(blank), "--out", str(tmp_path / "x"))
    assert (
        bad.returncode == 2 and "no calibration chart found" in bad.stderr and "Traceback" not in bad.stderr
    )


# --- files at physical size -------------------------------------------------------------------


def test_pdf_page_is_the_artefact_size(tmp_path):
    art = Artefact(torch.rand(3, 64, 64), (400.0, 400.0))
    assert save_pdf(art, tmp_path / "patch.pdf", dpi=150) == 1
    ((w, h),) = media_boxes_mm(tmp_path / "patch.pdf")
    assert abs(w - 400) < 0.5 and abs(h - 400) < 0.5


def test_large_artefact_tiles_over_a4_pages(tmp_path):
    art = Artefact(torch.rand(3, 64, 64), (400.0, 400.0))
    pages = save_pdf(art, tmp_path / "patch_a4.pdf", dpi=100, paper="a4")
    assert pages == 6  # printable area 186 × 273 mm: ceil(400/186) = 3 columns, ceil(400/273) = 2 rows
    boxes = media_boxes_mm(tmp_path / "patch_a4.pdf")
    assert len(boxes) == pages and all(abs(w - 210) < 0.5 and abs(h - 297) < 0.5 for w, h in boxes)


def test_png_carries_dpi_and_true_pixel_size(tmp_path):
    from PIL import Image

    art = Artefact(torch.rand(3, 32, 48), (120.0, 80.0), alpha=torch.ones(1, 32, 48))
    path = save_png(art, tmp_path / "a.png", dpi=254)
    image = Image.open(path)
    assert image.size == (1200, 800) and round(image.info["dpi"][0]) == 254


def test_printable_cli_sticker_sheet(tmp_path):
    from PIL import Image

    art = sticker_artefact()
    rgba = torch.cat([art.image, art.alpha]).permute(1, 2, 0).numpy()
    Image.fromarray((rgba * 255).astype(np.uint8), "RGBA").save(tmp_path / "stop.png")
    result = run_physadv(
        "printable",
        str(tmp_path / "stop.png"),
        "--size-mm",
        "750",
        "--dpi",
        "72",
        "--stickers",
        "--paper",
        "letter",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 0, result.stderr
    assert (
        media_boxes_mm(tmp_path / "o" / "stop_stickers.pdf") and (tmp_path / "o" / "stop_guide.pdf").is_file()
    )
    assert "stop_stickers.pdf (1 page(s))" in result.stdout


def test_printable_cli(tmp_path):
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((50, 50, 3)) * 255).astype(np.uint8)).save(
        tmp_path / "p.png"
    )
    result = run_physadv(
        "printable",
        str(tmp_path / "p.png"),
        "--size-mm",
        "150",
        "--dpi",
        "100",
        "--out",
        str(tmp_path / "out"),
        "--quantize",
    )
    assert result.returncode == 0, result.stderr
    ((w, h),) = media_boxes_mm(tmp_path / "out" / "p.pdf")
    assert abs(w - 150) < 0.5 and abs(h - 150) < 0.5
    assert json.loads((tmp_path / "out" / "p.json").read_text())["size_mm"] == [150.0, 150.0]
    bad = run_physadv("printable", str(tmp_path / "p.png"), "--size-mm", "big")
    assert bad.returncode == 2 and "bad size" in bad.stderr


def test_print_size_keeps_the_aspect_ratio_and_says_so():
    from physadv.printing.export import print_size

    odd = print_size(601, 397, "150")  # the longer side is 150 mm, not a 150 × 150 square
    assert odd.mm == pytest.approx((150.0, 150 * 397 / 601)) and not odd.stretched
    assert "aspect ratio kept" in odd.note and "150.0 × 99.1 mm" in odd.note
    assert print_size(640, 480, 100).mm == pytest.approx((100.0, 75.0))
    assert print_size(397, 601, "150mm").mm == pytest.approx((150 * 397 / 601, 150.0))  # portrait
    assert not print_size(601, 397, "300x200").stretched  # within 1 % of the image's ratio
    square = print_size(601, 397, "150x150")  # asked for explicitly: done, and named a stretch
    assert square.mm == (150.0, 150.0) and square.stretched and "STRETCHED" in square.note
    for bad in ("big", "0", "10x20x30", "-5", "nan"):
        with pytest.raises(PhysadvError, match="bad size"):
            print_size(10, 10, bad)


def test_printable_cli_keeps_aspect_and_embeds_pixels_losslessly(tmp_path):
    from PIL import Image

    pixels = (np.random.default_rng(1).random((397, 601, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "odd.png")
    args = ["printable", tmp_path / "odd.png", "--size-mm", "150", "--dpi", "72", "--out", tmp_path / "o"]
    result = run_physadv(*args, "--paper", "a4")
    assert result.returncode == 0, result.stderr
    assert "601×397 px → 150.0 × 99.1 mm (150 mm is the longer side, aspect ratio kept)" in result.stdout
    ((w, h),) = media_boxes_mm(tmp_path / "o" / "odd.pdf")
    assert w == pytest.approx(150, abs=0.05) and h == pytest.approx(150 * 397 / 601, abs=0.05)
    assert json.loads((tmp_path / "o" / "odd.json").read_text())["size_mm"] == pytest.approx(
        [150, 99.08], abs=0.01
    )
    # the PDF holds the print pixels exactly (nearest-neighbour resize to 72 dpi, no JPEG)
    expected = np.asarray(Image.fromarray(pixels).resize((425, 281), Image.NEAREST))
    (embedded,) = page_images(tmp_path / "o" / "odd.pdf")
    assert np.array_equal(embedded, expected)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o" / "odd.png").convert("RGB")), expected)
    tiled = page_images(tmp_path / "o" / "odd_a4.pdf")[0]  # the tiled page carries them too
    assert np.array_equal(tiled[280:561, 85:510], expected)  # centred in A4's printable area at 72 dpi


# --- sticker sheets ---------------------------------------------------------------------------


def sticker_artefact() -> Artefact:
    """A 750 mm stop-sign face (75 px, 10 mm/px) with two rectangular stickers."""
    alpha = torch.zeros(1, 75, 75)
    alpha[:, 10:20, 15:45] = 1  # 300 × 100 mm at x 150, y 100
    alpha[:, 50:58, 30:36] = 1  # 60 × 80 mm at x 300, y 500
    return Artefact(torch.rand(3, 75, 75), (750.0, 750.0), alpha)


def test_find_stickers_positions_and_sizes():
    from physadv.printing.stickers import find_stickers

    big, small = find_stickers(sticker_artefact(), dpi=50)
    assert (big.x_mm, big.y_mm, big.w_mm, big.h_mm) == (150, 100, 300, 100)
    assert (small.x_mm, small.y_mm, small.w_mm, small.h_mm) == (300, 500, 60, 80)
    assert big.pixels.size == (round(300 / 25.4 * 50), round(100 / 25.4 * 50))


def test_sticker_sheet_and_guide_pdfs(tmp_path):
    from physadv.printing.stickers import save_placement_guide, save_sticker_sheet
    from physadv.scene.geometry import stop_sign_outline_mm

    # the 300 mm sticker is wider than Letter's printable width: cut into two labelled parts
    assert save_sticker_sheet(sticker_artefact(), tmp_path / "s.pdf", paper="letter", dpi=100) == 1
    from physadv.printing.stickers import _split, find_stickers

    big = find_stickers(sticker_artefact(), dpi=100)[0]
    parts = _split(big, 700, 1000, dpi=100)
    assert [p.number for p in parts] == ["1a", "1b"] and parts[1].x_mm == pytest.approx(150 + 700 * 0.254)
    assert all(abs(w - 215.9) < 0.5 and abs(h - 279.4) < 0.5 for w, h in media_boxes_mm(tmp_path / "s.pdf"))
    pages = save_placement_guide(
        sticker_artefact(), tmp_path / "g.pdf", stop_sign_outline_mm(), "letter", dpi=50
    )
    assert pages == 4 * 3  # 750 mm over a 191.9 × 255.4 mm printable area: 4 columns, 3 rows
