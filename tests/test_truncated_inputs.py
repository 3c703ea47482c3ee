"""Files cut short, from a user trial (issue 29): a truncated photo among good ones is skipped and named
"(truncated)" by every reader of user images, never half-decoded into training; a file that is not a
model checkpoint is refused in plain words. Every file is made here."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from physadv.data.images import UnreadableImage, read_image, truncation
from physadv.errors import ModelError
from tests.conftest import run_physadv


def _photo(seed: int = 0, size=(240, 320)) -> np.ndarray:
    """A smooth RGB picture whose JPEG is several kB (a 3000-byte cut falls inside its scan)."""
    noise = (np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8)
    return cv2.GaussianBlur(noise, (9, 9), 3)


def _cut(path: Path, keep: int) -> Path:
    path.write_bytes(path.read_bytes()[:keep])
    return path


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """Rendered street photos with people, in YOLO format (ids: 0 person, 1 stop sign)."""
    from physadv.scene.dataset import write_detection_set

    out = tmp_path_factory.mktemp("people")
    write_detection_set(out, 8, 0, seed=3, scene="persons")
    return out


def test_patch_skips_and_names_a_truncated_photo(people, tmp_path):
    """The trial: 00005.jpg cut to its first 3000 bytes (label kept) went into training half grey,
    with only libjpeg's unattributed "Premature end of JPEG file" on stderr."""
    images, labels = tmp_path / "mixed" / "images", tmp_path / "mixed" / "labels"
    shutil.copytree(people / "images" / "train", images)
    shutil.copytree(people / "labels" / "train", labels)
    names = sorted(p.name for p in images.glob("*.jpg"))
    _cut(images / names[5], 3000)
    (images / names[6]).write_bytes(b"not a jpeg")  # garbage, named as before
    result = run_physadv(
        "patch", "--images", images, "--out", tmp_path / "run", "--steps", 1, "--batch", 2,
        "--resolution", 32, "--holdout", 0.5,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    said = f"training: skipped 2 unreadable image(s) in {images}: {names[5]} (truncated), {names[6]}"
    assert said in result.stderr
    assert "Premature end" not in result.stderr and "Corrupt JPEG" not in result.stderr
    assert "training: 6 images" in result.stdout


@pytest.mark.parametrize(
    "params", [[], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 4]], ids=str
)
def test_every_cut_of_a_jpeg_is_truncated_and_a_whole_one_is_not(tmp_path, params, capfd):
    """Baseline, progressive and restart-interval JPEGs: whole (also with bytes after the end-of-image
    marker, as some cameras write) they read; cut anywhere they are refused as truncated, with
    nothing from libjpeg on stderr."""
    path = tmp_path / "a.jpg"
    cv2.imwrite(str(path), _photo(), params)
    whole = path.read_bytes()
    (tmp_path / "trailer.jpg").write_bytes(whole + b"\0trailer" * 50)
    assert truncation(path) is None and truncation(tmp_path / "trailer.jpg") is None
    assert read_image(tmp_path / "trailer.jpg").rgb8.shape == (240, 320, 3)
    for keep in (3000, len(whole) // 2, len(whole) - 2, len(whole) - 1):
        cut = tmp_path / f"cut{keep}.jpg"
        cut.write_bytes(whole[:keep])
        with pytest.raises(UnreadableImage, match="truncated: the JPEG ends before its end-of-image") as e:
            read_image(cut, "photo")
        assert e.value.reason == "truncated"
    assert "JPEG" not in capfd.readouterr().err


def test_a_cut_inside_the_exif_thumbnail_is_truncated(tmp_path):
    """A phone photo carries a whole JPEG thumbnail (with its own FF D9) in its EXIF segment: a file
    cut just after the thumbnail is still truncated."""
    thumb = tmp_path / "thumb.jpg"
    cv2.imwrite(str(thumb), _photo(1, (60, 80)))
    big = tmp_path / "big.jpg"
    cv2.imwrite(str(big), _photo())
    data, thumb_bytes = big.read_bytes(), thumb.read_bytes()
    app1 = b"Exif\0\0" + thumb_bytes  # enough structure for the marker walk: a segment holding a JPEG
    phone = data[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + data[2:]
    (tmp_path / "phone.jpg").write_bytes(phone)
    assert truncation(tmp_path / "phone.jpg") is None
    end_of_thumb = 6 + len(app1)  # SOI, APP1 marker and length, the segment
    (tmp_path / "cut.jpg").write_bytes(phone[:end_of_thumb])
    assert phone[end_of_thumb - 2 : end_of_thumb] == b"\xff\xd9"
    assert truncation(tmp_path / "cut.jpg").startswith("truncated")


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".ppm", ".webp", ".tif"])
def test_other_formats_cut_short_are_unreadable(tmp_path, suffix):
    """PNG is checked for its IEND chunk; OpenCV refuses the others cut short, and Pillow's
    "truncated" names the reason where it gives one."""
    path = tmp_path / f"a{suffix}"
    cv2.imwrite(str(path), _photo())
    assert read_image(path).rgb8.shape == (240, 320, 3)
    _cut(path, path.stat().st_size // 2)
    with pytest.raises(UnreadableImage, match=f"cannot read image '{path}'") as e:
        read_image(path)
    if suffix in (".png", ".bmp", ".ppm"):
        assert e.value.reason == "truncated" and "truncated" in str(e.value)


def test_a_truncated_chart_photo_is_a_one_line_error(tmp_path):
    path = tmp_path / "chart.jpg"
    cv2.imwrite(str(path), _photo())
    _cut(path, 3000)
    result = run_physadv("calibrate", "photo", path, "--out", tmp_path / "cal")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"physadv: error: cannot read photo '{path}': truncated: the JPEG ends before its "
        "end-of-image marker (3000 bytes)"
    )


def test_a_folder_of_frames_names_a_truncated_frame(tmp_path):
    from physadv.harness.sources import FolderSource

    for k in range(3):
        cv2.imwrite(str(tmp_path / f"{k:03d}.jpg"), _photo(k))
    _cut(tmp_path / "001.jpg", 3000)
    source = FolderSource(tmp_path)
    assert [f.index for f in source.frames()] == [0, 2]
    assert source.unread.count == 1 and source.unread.reasons == [
        "frame 1: unreadable image '001.jpg' (truncated)"
    ]


def test_an_image_folder_names_a_truncated_image(tmp_path, capsys):
    from physadv.data.image_folder import load_image_folder

    for name in ("stop", "yield"):
        (tmp_path / name).mkdir()
        for k in range(2):
            cv2.imwrite(str(tmp_path / name / f"{k}.png"), _photo(k, (40, 40)))
    _cut(tmp_path / "yield" / "1.png", 400)
    data = load_image_folder(tmp_path)
    assert len(data.labels) == 3
    assert f"skipped 1 unreadable image(s) in {tmp_path}: yield/1.png (truncated)" in capsys.readouterr().err


def test_train_detector_leaves_a_truncated_image_out_of_its_checked_copy(tmp_path):
    """Ultralytics would rewrite ("restore") a JPEG not ending in FF D9 in the user's folder, or drop
    it as corrupt in a warning easy to miss; physadv leaves it out of the checked copy and names it."""
    from physadv.data.yolo_dataset import check_dataset
    from physadv.scene.dataset import write_detection_set

    data = write_detection_set(tmp_path / "det", train=3, val=1, seed=0)
    image = sorted((tmp_path / "det" / "images" / "train").glob("*.jpg"))[1]
    _cut(image, 3000)
    before = image.read_bytes()
    checked = check_dataset(data, tmp_path / "checked")
    assert checked.copied and checked.truncated == [f"train/{image.name}"]
    assert checked.lines() == [f"left out 1 truncated image(s): train/{image.name}"]
    copied = sorted(p.name for p in (tmp_path / "checked" / "train" / "images").iterdir())
    assert image.name not in copied and len(copied) == 2
    assert image.read_bytes() == before


# --- model files that are not models ----------------------------------------------------------------


def _zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")


def _foreign_checkpoint(path: Path) -> None:
    """A checkpoint pickling a class of a module this environment lacks (YOLOv5's ``models.yolo``)."""
    import sys
    import types

    module = types.ModuleType("yolov5_models_stand_in")
    exec("class Model:\n    pass\n", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        torch.save({"model": module.Model()}, path)
    finally:
        del sys.modules[module.__name__]


def _cut_checkpoint(path: Path) -> None:
    from physadv.models.loading import embedded_detector_checkpoint

    data = embedded_detector_checkpoint().read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "make,said",
    [
        (lambda p: p.write_text("name: my model\nweights: see the wiki\n"), "is a text file, not a PyTorch"),
        (lambda p: p.write_bytes(b""), "is an empty file \\(0 bytes\\), not a PyTorch checkpoint"),
        (_zip, "is a zip archive without a PyTorch checkpoint's data.pkl \\(it holds readme.txt\\)"),
        (_cut_checkpoint, "is a damaged or truncated zip archive \\(\\d+ bytes: copy it again\\)"),
        (
            lambda p: p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\n"),
            "is a Git LFS pointer, not the weights",
        ),
        (lambda p: p.write_bytes(b"\x00\x01\xfe\xff" * 40), "is neither a zip archive nor a pickle"),
        (lambda p: p.write_text("<!DOCTYPE html><html><body>Sign in</body></html>"), "is an HTML page"),
        (_foreign_checkpoint, "a checkpoint of another code base \\(unpickling it needs the module"),
        (lambda p: torch.save(torch.zeros(3), p), "holds a tensor, not a model"),
        (lambda p: torch.save({"w": torch.zeros(3)}, p), "holds a state dict \\(weights without"),
        (lambda p: torch.save({"epoch": 3, "model": None}, p), "holds a dict without a model"),
    ],
    ids=[
        "text",
        "empty",
        "zip",
        "truncated-zip",
        "lfs-pointer",
        "binary",
        "html",
        "foreign",
        "tensor",
        "state-dict",
        "dict",
    ],  # fmt: skip
)
def test_a_file_that_is_not_a_model_says_what_it_is(tmp_path, make, said):
    from physadv.models import load_model

    path = tmp_path / "notamodel.pt"
    make(path)
    with pytest.raises(ModelError, match=said) as e:
        load_model(path, device="cpu")
    message = str(e.value)
    assert "\n" not in message and "want an Ultralytics .pt checkpoint" in message
    for leak in ("Memo value", "Ran out of input", "enforce fail", "miniz", "magic number"):
        assert leak not in message


def test_the_trials_text_model_file_on_the_command_line(tmp_path):
    (tmp_path / "notamodel.pt").write_text("these are my notes about the model\n" * 5)
    result = run_physadv("models", "check", "notamodel.pt", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "physadv: error: model file 'notamodel.pt' is a text file, not a PyTorch checkpoint; want an "
        "Ultralytics .pt checkpoint (the whole model, as Ultralytics saves it), a TorchScript or "
        "torch.export classifier, a .safetensors of physadv's, or a model yaml"
    ]


def test_a_whole_png_missing_only_its_iend_crc_still_reads(tmp_path):
    """The PNG check asks for the IEND chunk's header, so a file that lost only trailing CRC bytes
    (all pixels present) is not refused."""
    path = tmp_path / "a.png"
    Image.fromarray(_photo()).save(path)
    _cut(path, path.stat().st_size - 2)
    assert truncation(path) is None and read_image(path).rgb8.shape == (240, 320, 3)
