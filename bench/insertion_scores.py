"""Why does a sticker inserted into a recording differ from the same sticker rendered into the scene?
Per-frame stop-sign scores of the embedded detector, rendered against inserted, with the true and the
tracked corners, and with parts of the insertion's camera model replaced by the renderer's truth.

    physadv scene render scenes/driveby_stop.yaml --out runs/driveby
    physadv track runs/driveby/scene.mp4 --mark 302,229,329,256 --out runs/track_driveby
    python bench/insertion_scores.py STICKER.png runs/track_driveby/track.jsonl 0:50 \
        fitted,truelight,blur0,noise0.008,nocodec

Variants (joined with '+'): ``fitted`` the insertion as released; ``truelight`` the renderer's true
gain and offset for the drive-by's light; ``blurS`` a Gaussian blur of S px instead of the fitted
one; ``noiseN`` noise N instead of the estimate; ``nocodec`` no JPEG round trip. Prints each frame's
scores (the highest 'stop sign' score overlapping the true box at IoU > 0.5), then per column the
true-positive rate at conf 0.25, the share of frames whose verdict agrees with the rendered one and
the mean absolute score difference. Slow on a CPU (about 5 minutes for 50 frames and two variants).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from physadv.boxes import box_iou
from physadv.harness import insertion
from physadv.harness.sources import VideoSource
from physadv.models import load_model
from physadv.printing.export import load_artefact_image
from physadv.scene import relight
from physadv.scene.effects import kelvin_to_rgb_gain
from physadv.scene.render import render_scene
from physadv.scene.spec import load_spec

RELEASED = {
    "fit_light": relight.fit_light,
    "noise_level": relight.noise_level,
    "jpeg_each": insertion.jpeg_each,
}


def true_light(effects: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The renderer's gain and offset ([3] each) for one frame's effects (contrast around mid-grey,
    brightness, colour temperature; the drive-by's shadow is negligible)."""
    rgb = torch.tensor(kelvin_to_rgb_gain(effects["colour_temperature_k"]))
    c, b = effects["contrast"], effects["brightness"]
    return c * b * rgb, 0.5 * (1 - c) * b * rgb


def use(variant: str, effects: dict) -> None:
    """Set the insertion's camera model for ``variant``."""
    fit, noise, codec = RELEASED["fit_light"], RELEASED["noise_level"], RELEASED["jpeg_each"]
    changes: dict = {}
    for part in variant.split("+"):
        if part.startswith("blur"):
            changes["blur_px"] = float(part[4:])
        elif part == "truelight":
            changes["gain"], changes["offset"] = true_light(effects)
        elif part.startswith("noise"):
            noise = lambda window, n=float(part[5:]): n  # noqa: E731
        elif part == "nocodec":
            codec = lambda frames, qualities: frames  # noqa: E731

    def fitted(*args, **kwargs):
        light = fit(*args, **kwargs)
        for key, value in changes.items():
            if light is not None:
                setattr(light, key, value)
        return light

    insertion.fit_light, insertion.noise_level, insertion.jpeg_each = fitted, noise, codec


def main(sticker_path: str, track_path: str, frames: str, variants: list[str]) -> None:
    first, last = (int(v) for v in frames.split(":"))
    want = set(range(first, last))
    sticker = load_artefact_image(sticker_path, (750, 750))
    detector = load_model("default", task="detect")
    stop = detector.names.id("stop sign")
    truth = [json.loads(line) for line in open("runs/driveby/ground_truth.jsonl")]
    track = [json.loads(line) for line in open(track_path)]
    spec = load_spec("scenes/driveby_stop.yaml")
    scene = zip(range(last), render_scene(spec, sticker), strict=False)
    rendered = {i: f for i, (f, _) in scene if i in want}
    recorded = {f.index: f.image for f in VideoSource("runs/driveby/scene.mp4").frames() if f.index in want}

    def score(image: torch.Tensor, box) -> float:
        found = detector.predict(image[None], conf=0.01)[0]
        own = found.labels == stop
        overlaps = box_iou(found.boxes[own], torch.tensor(box)[None]) > 0.5
        return float(found.scores[own][overlaps].max()) if overlaps.any() else 0.0

    rows = {i: {"rendered": score(rendered[i], truth[i]["objects"][0]["box"])} for i in sorted(want)}
    for variant in variants:
        use(variant, truth[first]["effects"])
        for i in sorted(want):
            sign = truth[i]["objects"][0]
            for name, corners in (("true", sign["corners"]), ("tracked", track[i]["objects"][0]["corners"])):
                image, _ = insertion.insert_sticker(
                    recorded[i], sticker, corners, "stop", torch.Generator().manual_seed(i)
                )
                rows[i][f"{variant}/{name}"] = score(image, sign["box"])
    use("fitted", truth[first]["effects"])
    columns = list(rows[first])
    print("frame distance_m " + " ".join(columns))
    for i in sorted(want):
        print(i, truth[i]["objects"][0]["distance_m"], " ".join(f"{rows[i][c]:.3f}" for c in columns))
    reference = np.array([rows[i]["rendered"] >= 0.25 for i in sorted(want)])
    for c in columns:
        verdict = np.array([rows[i][c] >= 0.25 for i in sorted(want)])
        difference = np.mean([abs(rows[i][c] - rows[i]["rendered"]) for i in sorted(want)])
        print(
            f"{c:32s} true-positive rate {verdict.mean():.3f}, agrees with rendered "
            f"{np.mean(verdict == reference):.3f}, mean |score difference| {difference:.3f}"
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",") if len(sys.argv) > 4 else ["fitted"])
