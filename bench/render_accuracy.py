"""How far the batched and the per-view render of sign views are from each other and from a float64 render.

    python bench/render_accuracy.py [--crops 128] [--frames 32] [--jpeg]

Draws crop views (seed 1) and frame views (320 wide, seed 2) with their effects as drawn, renders them
with the face at the attack's resolution both ways in float32 (``render_views``, batched, and
``_render_views_each``, one view at a time) and the per-view way in float64, and prints the largest
absolute pixel differences. Without ``--jpeg`` the views' JPEG is switched off (a real codec turns a
rounding difference at a quantisation boundary into a whole step); with it, it counts the views that
differ by more than 1e-5.
"""

from __future__ import annotations

import argparse
import copy

import physadv  # noqa: F401  (offline environment before ultralytics)


def main() -> None:
    import numpy as np
    import torch

    from physadv.eot.sign_views import _render_views_each, draw_views, render_views
    from physadv.scene.render import FACE_PX_PER_MM
    from physadv.scene.signs import render_face

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crops", type=int, default=128)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--jpeg", action="store_true")
    args = ap.parse_args()
    face = torch.from_numpy(np.array(render_face("stop", FACE_PX_PER_MM))).permute(2, 0, 1)
    for kind, count, seed, out_size in (
        ("crop", args.crops, 1, (32, 32)),
        ("frame", args.frames, 2, (240, 320)),
    ):
        views = draw_views(np.random.default_rng(seed), count, kind=kind, frame_width=320)
        for v in views:
            v.effects.jpeg_quality = v.effects.jpeg_quality if args.jpeg else 0
        batched, each = render_views(face, views, out_size), _render_views_each(face, views, out_size)
        wide = copy.deepcopy(views)
        for v in wide:
            v.base, v.cache = v.base.double(), {}
        exact = _render_views_each(face.double(), wide, out_size)
        per_view = (batched - each).abs().flatten(1).amax(1)
        print(
            f"{count} {kind} views: batched vs one at a time {per_view.max():.3g}, one at a time vs float64 "
            f"{(each - exact).abs().max():.3g}, batched vs float64 {(batched - exact).abs().max():.3g}"
            + (f"; views differing by more than 1e-5: {int((per_view > 1e-5).sum())}" if args.jpeg else "")
        )


if __name__ == "__main__":
    main()
