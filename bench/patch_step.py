"""Where a person-patch attack step spends its time, and how it scales, measured in one process.

    physadv scene dataset --task persons --out runs/persons --train 300 --val 100 --seed 11
    python bench/patch_step.py runs/persons/images/train [--batches 4,8,16] [--sizes 320,640] [--steps 10]
        [--scene scenes/pedestrians.yaml]

For each batch size and input size it times the attack step as the attack runs it, then the same
batch and EOT draw again in parts:

- EOT + compositing: drawing the physical transformations, putting the patch on every torso and the
  camera's effects (forward);
- model forward + backward: the detector from the composited frames (a leaf) to their gradient;
- compositing backward: that gradient through the compositing to the patch;
- update: NPS and TV with their gradients, and the Adam step.

It prints images per second, the split, the share outside the model (the overhead to drive down;
target ≤ 15 %), and peak memory (CUDA: the allocator's peak per configuration; CPU: the process's
peak resident size so far, which only grows). ``--device cuda --amp`` measures mixed precision.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from laps import Laps  # bench/laps.py (the script's own folder is on the path)

import physadv  # noqa: F401  (offline environment before ultralytics)


def measure(args, batch: int, size: int) -> dict:
    import torch

    from physadv.attacks.losses import nps, total_variation
    from physadv.attacks.person_patch import PatchAttack, PatchConfig
    from physadv.data.image_set import label_folder_for, load_image_set
    from physadv.eot.person_eot import draw
    from physadv.eot.person_scenes import ScenePeople
    from physadv.eot.person_views import views
    from physadv.models import load_model
    from physadv.printing.palette import Palette
    from physadv.scene.spec import load_spec

    model = load_model(args.model, task="detect", device=args.device, amp=args.amp, imgsz=size)
    ids = [model.names.id("person")]
    image_set, _ = load_image_set(args.images, size, ids, label_folder_for(args.images), 16)
    image_set = image_set.with_objects()
    scenes = ScenePeople(load_spec(args.scene), 8, 0.5) if args.scene else None
    config = PatchConfig(["person"], batch=batch)
    attack = PatchAttack([model], config, image_set, Palette.default().colours, scenes=scenes)
    c = attack.config
    patch = attack.initial_patch().requires_grad_(True)
    opt = torch.optim.Adam([patch], lr=0.03)
    palette = attack.palette
    gen = torch.Generator().manual_seed(0)
    laps = Laps(model.device, ["step", "eot", "model", "composite_back", "update"])
    for _ in range(args.steps + laps.warmup):  # warm-up steps first
        state = gen.get_state()
        laps.start()
        total, _ = attack.loss(patch, gen)
        opt.zero_grad()
        total.backward()
        opt.step()
        laps.mark("step")
        # the same batch and draw again, in parts
        gen.set_state(state)
        opt.zero_grad()
        composed = []
        for frames in attack.parts(gen):
            params = draw(c.eot, len(frames.planes), len(frames.images), gen)
            x, boxes = views(
                patch, frames, params, c.eot, c.size_mm / 1000, model.imgsz, attack.transfer, gen
            )
            composed.append((x, boxes, frames.valid))
        laps.mark("eot")
        leaves = []
        for x, boxes, valid in composed:
            leaf = x.detach().requires_grad_(True)
            score = attack.detection_scores(model, ids, leaf, boxes, valid)
            score.sum().backward()
            leaves.append(leaf)
        laps.mark("model")
        for (x, _, _), leaf in zip(composed, leaves, strict=True):
            x.backward(leaf.grad)
        laps.mark("composite_back")
        extra = c.lambda_nps * nps(patch[None], palette) + c.lambda_tv * total_variation(patch)
        extra.backward()
        opt.step()
        laps.mark("update")
        laps.next_step()
    return {"batch": batch, "size": size, "peak_mib": laps.peak_mib(), **laps.means()}


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--model", default="default")
    ap.add_argument("--scene", type=Path, default=None, help="also street frames (half of each batch)")
    ap.add_argument("--batches", default="4,8,16")
    ap.add_argument("--sizes", default="320,640")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--amp", action="store_true")
    args = ap.parse_args()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # torch imports its compiler here: not timed
    rows = [measure(args, int(b), int(s)) for s in args.sizes.split(",") for b in args.batches.split(",")]
    from physadv.device import select_device

    print(
        f"device {select_device(args.device)}, amp {args.amp}, {args.steps} steps per row, model {args.model}"
    )
    print(
        f"{'batch':>5} {'input':>5} {'img/s':>7} {'step ms':>8} {'EOT+comp':>9} {'model f+b':>10} "
        f"{'comp back':>10} {'update':>7} {'outside model':>14} {'peak MiB':>9}"
    )
    for r in rows:
        inside = r["model"] / (r["eot"] + r["model"] + r["composite_back"] + r["update"])
        print(
            f"{r['batch']:>5} {r['size']:>5} {r['batch'] / r['step']:7.1f} {1000 * r['step']:8.1f} "
            f"{1000 * r['eot']:9.1f} {1000 * r['model']:10.1f} {1000 * r['composite_back']:10.1f} "
            f"{1000 * r['update']:7.1f} {100 * (1 - inside):13.1f}% {r['peak_mib']:9.0f}"
        )
    print("target: outside model ≤ 15 % (the parts are timed separately; 'step ms' is the fused step)")


if __name__ == "__main__":
    main()
