"""Where an RP2 sticker step spends its time, and how it scales with the EOT batch, in one process.

    python bench/sticker_step.py [--task classify|detect] [--batches 8,32,128] [--steps 10]
                                 [--device cuda] [--amp] [--compare-steps 3]

For each batch size it times the step as the attack runs it (colour stage, fixed mask), then the
same batch again in parts:

- render: the sticker onto the face and the face into every view, with the view's effects (forward);
- model forward + backward: the objective from the rendered views (a leaf) to their gradient;
- render backward: that gradient through the rendering to the sticker;
- update: the norm, NPS and TV terms with their gradients, and the Adam step.

It prints views per second, the split, the share outside the model, and peak memory (CUDA: the
allocator's peak per row; CPU: the process's peak resident size so far). Then, for the same views and
the same face, the rendering alone (forward and backward) one view at a time, as before issue 23
(``_render_views_each``), against the batched rendering the attack now uses (``render_views``),
alternating, in views per second, and the torch operations each issues (forward and backward, counted
by the profiler at the top level: on a GPU the step waits on the host issuing them; the last column
with the face shrunk for all views at once, as on a GPU).
"""

from __future__ import annotations

import argparse

from laps import Laps  # bench/laps.py (the script's own folder is on the path)

import physadv  # noqa: F401  (offline environment before ultralytics)


def measure(args, batch: int) -> dict:
    import torch

    from physadv.attacks.losses import mask_norm, nps, total_variation
    from physadv.attacks.rp2 import StickerAttack, StickerConfig
    from physadv.eot.sign_views import render_views
    from physadv.models import load_model
    from physadv.printing.palette import Palette

    model = load_model("default", task=args.task, device=args.device, amp=args.amp)
    stop = model.names.first_of("stop sign", "stop")
    goal = ("hide", None) if model.kind == "detector" else ("targeted", model.names.id("speed limit 45"))
    config = StickerConfig(goal=goal[0], true_class=stop, target=goal[1], mask="blocks", batch=batch)
    attack = StickerAttack(model, config, Palette.default().colours)
    mask = attack.stages()[0].mask.to(attack.device)
    pool = attack.views(batch, seed=1)
    image = torch.full_like(attack.face_small[:3], 0.5).requires_grad_(True)
    opt = torch.optim.Adam([image], lr=config.lr)
    laps = Laps(attack.device, ["step", "render", "model", "render_back", "update"])
    for _ in range(args.steps + laps.warmup):  # warm-up steps first (the views keep their warp plans)
        laps.start()
        total, _ = attack.loss(image, mask, 2, pool)
        opt.zero_grad()
        total.backward()
        opt.step()
        laps.mark("step")
        opt.zero_grad()
        frames = render_views(attack.stuck_face(image, mask), pool, attack.out_size)
        laps.mark("render")
        leaf = frames.detach().requires_grad_(True)
        attack.objective(leaf, pool)[0].backward()
        laps.mark("model")
        frames.backward(leaf.grad)
        laps.mark("render_back")
        inside = mask.expand_as(image)
        extra = (
            config.lambda_norm * mask_norm(image - attack.face_small[:3], mask, 2)
            + config.lambda_nps * nps((image * inside)[None], attack.palette)
            + config.lambda_tv * total_variation(image * inside)
        )
        extra.backward()
        opt.step()
        laps.mark("update")
        laps.next_step()
    row = {"batch": batch, "peak_mib": laps.peak_mib(), "device": str(attack.device), **laps.means()}
    return row | render_rates(attack, pool, attack.stuck_face(image.detach(), mask), args.compare_steps)


def render_rates(attack, views, face, steps: int) -> dict:
    """Seconds a render (forward and backward) takes one view at a time and batched, same views and face,
    alternating (the first round of each is a warm-up)."""
    from functools import partial

    import torch

    from physadv.eot.sign_views import _render_views_each, render_views

    upstream = torch.rand(len(views), 3, *attack.out_size, generator=torch.Generator().manual_seed(0))
    paths = {"each": _render_views_each, "batched": render_views}
    laps = Laps(attack.device, list(paths), warmup=1)
    for _ in range(steps + 1):
        laps.start()
        for name, render in paths.items():
            leaf = face.clone().requires_grad_(True)
            (render(leaf, views, attack.out_size) * upstream.to(leaf)).sum().backward()
            laps.mark(name)
        laps.next_step()
    ops = {}
    counted = paths | {"shrink_batched": partial(render_views, batched_shrink=True)}  # as on a GPU
    for name, render in counted.items():  # what a GPU step waits on the host for: operations issued
        leaf = face.clone().requires_grad_(True)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            (render(leaf, views, attack.out_size) * upstream.to(leaf)).sum().backward()
        ops[f"ops_{name}"] = sum(
            e.name.startswith("aten::") and not (e.cpu_parent and e.cpu_parent.name.startswith("aten::"))
            for e in prof.events()
        )
    return {f"render_{k}": v for k, v in laps.means().items()} | ops


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="classify", choices=["classify", "detect"])
    ap.add_argument("--batches", default="8,32,128")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--compare-steps", type=int, default=3, help="renders timed per path (after a warm-up)")
    args = ap.parse_args()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # torch imports its compiler here: not timed
    rows = [measure(args, int(b)) for b in args.batches.split(",")]
    print(f"device {rows[0]['device']}, amp {args.amp}, task {args.task}, {args.steps} steps per row")
    print(
        f"{'batch':>5} {'views/s':>8} {'step ms':>8} {'render':>8} {'model f+b':>10} {'render back':>12} "
        f"{'update':>7} {'outside model':>14} {'peak MiB':>9}"
    )
    for r in rows:
        inside = r["model"] / (r["render"] + r["model"] + r["render_back"] + r["update"])
        print(
            f"{r['batch']:>5} {r['batch'] / r['step']:8.1f} {1000 * r['step']:8.1f} "
            f"{1000 * r['render']:8.1f} "
            f"{1000 * r['model']:10.1f} {1000 * r['render_back']:12.1f} {1000 * r['update']:7.1f} "
            f"{100 * (1 - inside):13.1f}% {r['peak_mib']:9.0f}"
        )
    print("(the parts are timed separately; 'step ms' is the fused step)")
    print("rendering alone, forward + backward, same views and face (views/s):")
    print(
        f"{'batch':>5} {'one view at a time':>19} {'batched':>8} {'x':>6} "
        f"{'torch ops: one at a time':>25} {'batched':>8} {'batched, face shrunk at once (GPU)':>35}"
    )
    for r in rows:
        each, batched = r["batch"] / r["render_each"], r["batch"] / r["render_batched"]
        print(
            f"{r['batch']:>5} {each:19.1f} {batched:8.1f} {batched / each:6.2f} "
            f"{r['ops_each']:>25} {r['ops_batched']:>8} {r['ops_shrink_batched']:>35}"
        )


if __name__ == "__main__":
    main()
