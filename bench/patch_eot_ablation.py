"""Which part of the physical EOT makes a person patch survive the world? Each component off in turn.

    physadv scene dataset --task persons --out runs/persons --train 160 --val 60 --seed 11
    python bench/patch_eot_ablation.py runs/persons/images/train --val runs/persons/images/val \\
        --scene scenes/pedestrians.yaml --steps 300 --out runs/ablation

For every row — all components on, each one off in turn, and none — it makes a patch the way
``physadv patch`` does (same seed, photos and street frames mixed, the same steps), then judges it:

- in the rendered street: the spec's own replay (its seed, which no training frame comes from),
  rendered by the renderer with the patch and with the noise control (true-positive rate @0.25 of the
  people seen at least half);
- on held-out photos, through the independent compositor (OpenCV, 8-bit print, JPEG), the patch held
  straight; and through physadv's under one draw of the full physical EOT (the world the patch has to
  survive), beside the noise control under the same draw.

It prints a Markdown table (and writes it with the raw numbers to ``--out``); each row's patch is kept,
so a rerun with the same ``--out`` only judges again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import physadv  # noqa: F401  (offline environment before ultralytics)


def street_tpr(model, spec: dict, patches: dict, size_mm: float) -> dict:
    """True-positive rate @0.25 per patch in the spec's own replay, rendered as ``render_scene`` does."""
    import numpy as np
    import torch

    from physadv.artefact import Artefact
    from physadv.harness.metrics import judge_object
    from physadv.scene.backgrounds import make_backdrop
    from physadv.scene.effects import apply_effects
    from physadv.scene.render import MIN_VISIBLE, SHOTS, draw_shot, wear_patch

    rng = np.random.default_rng(spec["seed"])
    backdrop = make_backdrop(rng)
    shots = [(*draw_shot(shot, backdrop), shot) for shot in SHOTS["pedestrians"](spec, rng)]
    person = model.names.id("person")
    out = {}
    for name, patch in patches.items():
        gen = torch.Generator().manual_seed(int(spec["seed"]))  # the renderer's noise, draw for draw
        hits = total = 0
        for layers, truths, shot in shots:
            frame = layers.frame
            if patch is not None:
                frame = wear_patch(frame, layers, Artefact(patch, (size_mm, size_mm)))
            dets = model.predict(apply_effects(frame, shot.effects, gen), conf=0.05)[0]
            for t in truths:
                if t.class_name == "person" and t.visible >= MIN_VISIBLE:
                    hits += judge_object(dets, torch.tensor(t.box), person, 0.25).true_positive
                    total += 1
        out[name] = round(100 * hits / max(1, total), 1)
    return out


def photo_tpr(model, val, patch, judge) -> dict:
    """Held-out photos, independent compositor (held straight), and physadv's under one full EOT draw."""
    from physadv.harness.patch_eval import PatchTrial, control_trials, evaluate_patch

    trials = control_trials(patch, 0)
    theirs, _ = evaluate_patch(
        model,
        [0],
        val,
        {k: trials[k] for k in ("clean", "patched", "noise_control")},
        judge,
        compositor="opencv",
    )
    seed = trials["patched_eot"].eot_seed  # the controls under the same EOT draw as the patch
    eot = {
        "patched_eot": trials["patched_eot"],
        "noise_control_eot": PatchTrial(trials["noise_control"].patch, eot_seed=seed),
    }
    ours, _ = evaluate_patch(model, [0], val, eot, judge)
    return {k: round(100 * v["true_positive_rate@0.25"]["rate"], 1) for k, v in {**theirs, **ours}.items()}


def make_patch(args, model, train, off: list[str], out: Path):
    import torch

    from physadv.attacks.person_patch import PatchAttack, PatchConfig
    from physadv.eot.person_eot import COMPONENTS, PersonEOT
    from physadv.eot.person_scenes import ScenePeople
    from physadv.printing.palette import Palette
    from physadv.scene.spec import load_spec

    path = out / "patch.pt"
    eot = PersonEOT(components=tuple(c for c in COMPONENTS if c not in off))
    if path.is_file():
        return torch.load(path), None
    scenes = ScenePeople(load_spec(args.scene), args.pool, 0.5, seed=args.seed)
    config = PatchConfig(
        ["person"],
        size_mm=args.size_mm,
        steps=args.steps,
        batch=args.batch,
        seed=args.seed,
        eot=eot,
        loss=args.loss,
        topk=args.topk,
        threshold=args.threshold,
        lr=args.lr,
        init=args.init,
        resolution=args.resolution,
        scene_share=args.scene_share,
    )
    attack = PatchAttack([model], config, train, Palette.default().colours, scenes=scenes)
    start = time.perf_counter()
    patch, _ = attack.run(out / "checkpoint.safetensors", resume=True)
    torch.save(patch, path)
    return patch, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--val", type=Path, required=True)
    ap.add_argument(
        "--scene", type=Path, default=Path(__file__).resolve().parents[1] / "scenes" / "pedestrians.yaml"
    )
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--pool", type=int, default=32)
    ap.add_argument("--size-mm", type=float, default=400.0)
    ap.add_argument("--seed", type=int, default=0)
    # the optimisation, as `physadv patch`'s options of the same names
    ap.add_argument("--loss", default="threshold", choices=("max", "topk", "threshold"))
    ap.add_argument("--topk", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--init", default="grey", choices=("grey", "random"))
    ap.add_argument("--resolution", type=int, default=150)
    ap.add_argument("--scene-share", type=float, default=0.5, help="the part of each batch from the street")
    ap.add_argument("--rows", default="all,sizes,angle,cloth,light,camera,printer,none")
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    args = ap.parse_args()

    from physadv.data.image_set import label_folder_for, load_image_set
    from physadv.eot.person_eot import COMPONENTS, PersonEOT
    from physadv.harness.patch_eval import Judge, control_trials
    from physadv.models import load_model
    from physadv.scene.spec import load_spec

    model = load_model("default", task="detect", device="cpu")
    sets = [
        load_image_set(f, model.imgsz, [0], label_folder_for(f), 16)[0].with_objects()
        for f in (args.images, args.val)
    ]
    spec = load_spec(args.scene)
    rows = []
    for row in args.rows.split(","):
        off = [] if row == "all" else list(COMPONENTS) if row == "none" else [row]
        out = args.out / row
        out.mkdir(parents=True, exist_ok=True)
        patch, seconds = make_patch(args, model, sets[0], off, out)
        judge = Judge(args.size_mm / 1000, PersonEOT())  # judged under the full EOT, whatever was trained
        noise = control_trials(patch, 0)["noise_control"].patch
        result = {
            "row": row,
            "train_seconds": None if seconds is None else round(seconds),
            "street": street_tpr(
                model, spec, {"clean": None, "patched": patch, "noise_control": noise}, args.size_mm
            ),
            "photos": photo_tpr(model, sets[1], patch, judge),
        }
        (out / "result.json").write_text(json.dumps(result, indent=1))
        rows.append(result)
        print(json.dumps(result), flush=True)
    lines = [
        "| EOT | street: patch (noise control) | Δ vs all | photos, independent: patch (noise) | Δ vs all "
        "| photos, full EOT draw: patch |",
        "|---|---|---|---|---|---|",
    ]
    base = next((r for r in rows if r["row"] == "all"), rows[0])
    for r in rows:
        name = {"all": "all components", "none": "none (held straight)"}.get(r["row"], f"without {r['row']}")
        ds = r["street"]["patched"] - base["street"]["patched"]
        dp = r["photos"]["patched"] - base["photos"]["patched"]
        lines.append(
            f"| {name} | {r['street']['patched']:.1f} % ({r['street']['noise_control']:.1f} %) | {ds:+.1f} | "
            f"{r['photos']['patched']:.1f} % ({r['photos']['noise_control']:.1f} %) | {dp:+.1f} | "
            f"{r['photos']['patched_eot']:.1f} % |"
        )
    clean = base["street"]["clean"], base["photos"]["clean"]
    lines.append(f"\nclean: street {clean[0]:.1f} %, photos {clean[1]:.1f} % (true-positive rate @0.25)")
    if "noise_control_eot" in base["photos"]:
        lines.append(
            f"noise control under the same full EOT draw: {base['photos']['noise_control_eot']:.1f} %"
        )
    table = "\n".join(lines)
    (args.out / "ablation.md").write_text(table + "\n")
    (args.out / "ablation.json").write_text(json.dumps(rows, indent=1))
    print(table)


if __name__ == "__main__":
    main()
