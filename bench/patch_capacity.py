"""Can a patch of this size hide people from this detector at all? A capacity check without EOT.

    python bench/patch_capacity.py runs/persons/images/train --photos 8 --size-mm 400 --steps 150 --lr 0.03

It optimises a patch, held straight (no EOT component on), on the ``--photos`` training photos with the
largest people, drawn again and again, and prints the share of their people still detected (score
≥ 0.25) every 25 steps, as ``physadv patch``'s progress bar counts it. If that share falls near zero,
the detector can be fooled by a patch of that size on the torso, and what keeps a universal patch weak
is generalising over people and the physical EOT, not the patch's reach.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import physadv  # noqa: F401  (offline environment before ultralytics)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--size-mm", type=float, default=400.0)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--loss", default="threshold", choices=("max", "topk", "threshold"))
    ap.add_argument("--lr", type=float, default=0.1)
    args = ap.parse_args()

    from physadv.attacks.person_patch import PatchAttack, PatchConfig
    from physadv.data.image_set import label_folder_for, load_image_set
    from physadv.eot.person_eot import PersonEOT
    from physadv.models import load_model
    from physadv.printing.palette import Palette

    model = load_model("default", task="detect", device="cpu")
    photos = load_image_set(args.images, model.imgsz, [0], label_folder_for(args.images), 16)[0]
    photos = photos.with_objects()
    tallest = [float((b[:, 3] - b[:, 1]).max()) for b in photos.boxes]
    keep = sorted(range(len(tallest)), key=lambda i: -tallest[i])[: args.photos]
    photos = photos.subset(keep)
    print(f"{photos.objects} people in {len(keep)} photos, tallest {min(tallest[i] for i in keep):.0f}+ px")
    config = PatchConfig(
        ["person"],
        size_mm=args.size_mm,
        steps=args.steps,
        batch=len(keep),
        loss=args.loss,
        lr=args.lr,
        eot=PersonEOT(components=()),
    )
    attack = PatchAttack([model], config, photos, Palette.default().colours)
    _, record = attack.run()
    history = record["history"]
    for first in range(0, len(history), 25):
        part = history[first : first + 25]
        share = sum(h["detected"] for h in part) / max(1, sum(h["objects"] for h in part))
        print(f"steps {first + 1}–{first + len(part)}: {100 * share:.0f} % still detected")


if __name__ == "__main__":
    main()
