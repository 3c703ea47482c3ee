"""Which sticker shapes work under an area budget: RP2 stickers of the same settings through masks of
different shapes, each judged on held-out views, RP2's lab table and the drive-by.

    python bench/sticker_masks.py [--task classify|detect] [--steps 500] [--shapes bars,graffiti,...]

Every fixed shape is two rectangles, above and below the legend, cut to the sign face; ``graffiti``
and ``auto`` are physadv's learned masks (the first 40 % of the steps find where the stickers go).
Prints one row per shape: the area fraction it really covers and the success rates with 95 % Wilson
intervals (a run is about 5 minutes per shape on two CPU cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import physadv  # noqa: F401  (offline environment before ultralytics)

# name: physadv's own mask of that name, or two rectangles (x0, y0, x1, y1) as fractions of the face
SHAPES = {
    # physadv's first graffiti: thin bars (0.24-0.76 × 0.20-0.31 and 0.69-0.80, on its 128-pixel grid)
    "bars": [(31 / 128, 26 / 128, 97 / 128, 40 / 128), (31 / 128, 88 / 128, 97 / 128, 102 / 128)],
    "stripes": "stripes",  # full width
    "tall_bars": [(0.24, 0.19, 0.76, 0.31), (0.24, 0.69, 0.76, 0.81)],
    "wide_blocks": [(0.305, 0.1725, 0.695, 0.3275), (0.305, 0.6725, 0.695, 0.8275)],
    "blocks": "blocks",  # 0.31 × 0.195 blocks
    "squares": [(0.375, 0.13, 0.625, 0.37), (0.375, 0.63, 0.625, 0.87)],
    "blocks_in": [(0.345, 0.2025, 0.655, 0.3975), (0.345, 0.6025, 0.655, 0.7975)],
    "blocks_out": [(0.345, 0.1025, 0.655, 0.2975), (0.345, 0.7025, 0.655, 0.8975)],
    # about twice the budget, for scale (0.10-0.90 × 0.17-0.32 and 0.68-0.83)
    "wide_28": [(12 / 128, 21 / 128, 115 / 128, 40 / 128), (12 / 128, 87 / 128, 115 / 128, 106 / 128)],
    "graffiti": "graffiti",  # learned places, 8 × 8 cells, 15 %
    "auto": "auto",  # learned places, 16 × 16 cells, 15 %
}


def mask_image(rects: list[tuple[float, float, float, float]], path: Path, size: int = 512) -> str:
    import numpy as np
    from PIL import Image

    mask = np.zeros((size, size), np.uint8)
    for x0, y0, x1, y1 in rects:
        mask[int(y0 * size) : int(y1 * size), int(x0 * size) : int(x1 * size)] = 255
    Image.fromarray(mask).save(path.with_suffix(".png"))
    return str(path.with_suffix(".png"))


def run_shape(model, task: str, mask: str, steps: int, lr: float, seed: int) -> dict:
    from physadv.attacks.rp2 import StickerAttack, StickerConfig
    from physadv.harness.metrics import Rate
    from physadv.jobs.sticker import Evaluation, evaluate
    from physadv.printing.palette import Palette

    if task == "classify":
        goal = dict(
            goal="targeted", true_class=model.names.id("stop"), target=model.names.id("speed limit 45")
        )
    else:
        goal = dict(goal="hide", true_class=model.names.id("stop sign"))
    config = StickerConfig(
        **goal, mask=mask, steps=steps, lr=lr, seed=seed, batch=32 if task == "classify" else 8
    )
    attack = StickerAttack(model, config, Palette.default().colours)
    start = time.perf_counter()
    sticker, record = attack.run()
    seconds = time.perf_counter() - start
    conditions, _ = evaluate(attack, sticker, Evaluation(views=200))
    rates = {
        k: Rate(v["targeted_success_rate"]["k"], v["targeted_success_rate"]["n"])
        for k, v in conditions.items()
    }
    return {"area": record["sticker_area_fraction"], "seconds": seconds, **rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="classify", choices=["classify", "detect"])
    parser.add_argument("--shapes", default=",".join(SHAPES), help=", ".join(SHAPES))
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from physadv.models import load_model

    names = [s.strip() for s in args.shapes.split(",")]
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        raise SystemExit(f"unknown shape(s) {', '.join(unknown)}: use {', '.join(SHAPES)}")
    model = load_model("default", task=args.task, device="cpu")
    print(f"{args.task}, {args.steps} steps, lr {args.lr}, seed {args.seed}")
    print(f"{'shape':<13} {'area':>6}  {'held-out':<26} {'lab table':<26} {'drive-by':<26} opt s")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            r = run_shape(
                model,
                args.task,
                shape if isinstance(shape := SHAPES[name], str) else mask_image(shape, Path(tmp) / name),
                args.steps,
                args.lr,
                args.seed,
            )
            print(
                f"{name:<13} {100 * r['area']:5.1f}%  "
                f"{r['eot_heldout']!s:<26} {r['lab_table']!s:<26} {r['driveby']!s:<26} {r['seconds']:.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
