"""The inputs of issue 22 (items 3, 5, 6) and 20.4 through the ``physadv`` commands a user runs, one
figure each: run it on two checkouts to compare them (docs/inputs.md has the figures).

PYTHONPATH=. python bench/input_faults.py runs/input_faults

The faulty files are made with the helpers the tests use (tests/video_files.py): a 16-bit grey ramp,
a phone-like video (1 s at 30 fps, then 3 s at 10 fps), an MJPEG AVI whose header says 10 frames of
30, the same AVI with frame 9's chunk size zeroed (the decoder skips it without an error), and eight
rendered photos of which two are labelled with people and six have empty label files.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from video_files import numbered_frame, retime_mp4, timescale_mp4, write_mjpeg_avi, write_mp4  # noqa: E402

PHYSADV = str(Path(sys.executable).with_name("physadv"))


def physadv(*args) -> subprocess.CompletedProcess:
    return subprocess.run([PHYSADV, *map(str, args)], capture_output=True, text=True)


def make_inputs(out: Path) -> None:
    cv2.imwrite(
        str(out / "ramp16.png"), np.tile(np.linspace(0, 65535, 512).round().astype(np.uint16), (64, 1))
    )
    path = write_mp4(out / "phone.mp4", [numbered_frame(i, 96, 64) for i in range(60)], fps=30)
    scale = timescale_mp4(path)
    retime_mp4(path, [scale // 30] * 30 + [scale // 10] * 30)
    frames = [numbered_frame(i, 96, 64) for i in range(30)]
    write_mjpeg_avi(out / "short_header.avi", frames, header_frames=10)
    data = bytearray(write_mjpeg_avi(out / "damaged.avi", frames).read_bytes())
    chunks = [i for i in range(len(data) - 4) if data[i : i + 4] == b"00dc"]
    data[chunks[9] + 4 : chunks[9] + 8] = bytes(4)
    (out / "damaged.avi").write_bytes(data)
    from physadv.scene.dataset import write_detection_set

    write_detection_set(out / "people", 8, 0, seed=3, scene="persons")
    images, labels = out / "set" / "images" / "train", out / "set" / "labels" / "train"
    images.mkdir(parents=True, exist_ok=True), labels.mkdir(parents=True, exist_ok=True)
    for k, image in enumerate(sorted((out / "people" / "images" / "train").glob("*.jpg"))):
        shutil.copy(image, images / image.name)
        text = (out / "people" / "labels" / "train" / f"{image.stem}.txt").read_text() if k < 2 else ""
        (labels / f"{image.stem}.txt").write_text(text)


def main(out: Path) -> None:
    from PIL import Image

    from physadv.harness.sources import VideoSource

    out.mkdir(parents=True, exist_ok=True)
    make_inputs(out)
    physadv("printable", out / "ramp16.png", "--size-mm", "100x12.5", "--dpi", 72, "--out", out / "printed")
    grey = np.asarray(Image.open(out / "printed" / "ramp16.png").convert("L"), np.float64).mean()
    print(f"physadv printable ramp16.png: printed mean grey {grey:.1f} of 255 (the ramp's mean: 127.5)")

    physadv("eval", out / "phone.mp4", "--out", out / "phone", "--no-video")
    truth = [i / 30 for i in range(30)] + [1 + i / 10 for i in range(30)]
    with open(out / "phone" / "frames.csv", newline="") as f:
        errors = [abs(float(r["time_s"]) - truth[int(r["frame"])]) for r in csv.DictReader(f)]
    print(f"physadv eval phone.mp4: frame times off by up to {max(errors):.4f} s ({len(errors)} frames)")

    physadv("eval", out / "short_header.avi", "--out", out / "short", "--no-video")
    replayed = json.loads((out / "short" / "metrics.json").read_text())["frames_replayed"]
    print(f"physadv eval short_header.avi: {replayed} of 30 frames replayed")

    written = [numbered_frame(i, 96, 64).astype(int) for i in range(30)]
    read = list(VideoSource(out / "damaged.avi").frames())
    wrong = sum(
        int(np.argmin([np.abs(w - f.bgr.astype(int)).mean() for w in written])) != f.index for f in read
    )
    print(f"damaged.avi (frame 9 skipped by the decoder): {wrong} of {len(read)} frames numbered wrong")

    result = physadv("patch", "--images", out / "set" / "images" / "train", "--out", out / "patch",
                     "--steps", 1, "--batch", 2, "--resolution", 32, "--holdout", 0.5)  # fmt: skip
    said = [
        line for line in (result.stdout + result.stderr).splitlines() if "left out" in line or "error" in line
    ]
    print(f"physadv patch on 8 images, 2 with people: exit {result.returncode}; " + " / ".join(said))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/input_faults"))
