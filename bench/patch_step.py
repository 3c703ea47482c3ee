"""Where a person-patch attack step spends its time: the model's forward and backward against the
rest (EOT draw, compositing and its backward, NPS/TV, the optimiser), measured in one process.

    physadv scene dataset --task persons --out runs/persons --train 300 --val 100 --seed 11
    python bench/patch_step.py runs/persons/images/train [--model default] [--batch 8] [--steps 20]

The whole step is timed as the attack runs it; the model's share is timed on the same batches by
running forward and backward from the composited frames (a leaf), so it excludes everything else.
Target: the model's share ≥ 85 %. On CUDA, timings synchronise the device.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import physadv  # noqa: F401  (offline environment before ultralytics)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    import torch

    from physadv.attacks.person_patch import PatchAttack, PatchConfig
    from physadv.eot.patch_eot import place_patches
    from physadv.harness.image_set import label_folder_for, load_image_set
    from physadv.models import load_model
    from physadv.printing.palette import Palette

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--model", default="default")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--amp", action="store_true")
    args = ap.parse_args()

    model = load_model(args.model, task="detect", device=args.device, amp=args.amp)
    ids = [model.names.id("person")]
    image_set, _ = load_image_set(args.images, model.imgsz or 640, ids, label_folder_for(args.images), 16)
    image_set = image_set.with_objects()
    attack = PatchAttack(
        [model], PatchConfig(["person"], batch=args.batch), image_set, Palette.default().colours
    )
    patch = attack.initial_patch().requires_grad_(True)
    opt = torch.optim.Adam([patch], lr=0.03)
    gen = torch.Generator().manual_seed(0)
    c = attack.config
    step_s, model_s = [], []
    for step in range(args.steps + 2):  # two warm-up steps
        index = torch.randint(len(image_set), (c.batch,), generator=gen).tolist()
        state = gen.get_state()
        _sync(model.device)
        t0 = time.perf_counter()
        total, _ = attack.loss(patch, index, gen)
        opt.zero_grad()
        total.backward()
        opt.step()
        _sync(model.device)
        t1 = time.perf_counter()
        # the same batch and draw, model only: forward and backward from the frames
        gen.set_state(state)
        images, boxes, valid = image_set.batch(index, model.device)
        params = c.eot.draw(valid.numel(), gen, c.resolution)
        with torch.no_grad():
            frames = place_patches(images, patch, boxes, valid, params, c.eot)
        frames.requires_grad_(True)
        _sync(model.device)
        t2 = time.perf_counter()
        attack.detection_scores(model, ids, frames, boxes, valid).sum().backward()
        _sync(model.device)
        t3 = time.perf_counter()
        if step >= 2:
            step_s.append(t1 - t0)
            model_s.append(t3 - t2)
    step_mean, model_mean = sum(step_s) / len(step_s), sum(model_s) / len(model_s)
    print(f"device {model.device}, amp {args.amp}, batch {c.batch}, input {model.imgsz}, {args.steps} steps")
    print(f"attack step           {1000 * step_mean:8.1f} ms")
    print(f"model forward+backward {1000 * model_mean:7.1f} ms")
    print(f"model share           {100 * model_mean / step_mean:8.1f} %  (target ≥ 85 %)")


if __name__ == "__main__":
    main()
