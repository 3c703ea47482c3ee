"""physadv against IBM ART on the same job: a person-hiding patch for the same detector, trained on the
same images with the same batch, patch size, optimiser and number of steps, then both judged the same
way (physadv's held-out evaluation: the patch on every held-out person, TPR@0.25).

    physadv scene dataset --task persons --out runs/persons --train 300 --val 100 --seed 11
    python bench/art_patch.py runs/persons/images/train --val runs/persons/images/val [--steps 80]

ART is not a physadv dependency: the first run makes its own environment (``bench/.art-env``, a
virtual environment that sees this one's torch and Ultralytics through a ``.pth`` file, plus
``adversarial-robustness-toolbox`` and the few packages it imports) and runs ART there, in another
process. ART trains with its ``AdversarialPatchPyTorch`` on ``PyTorchYolo`` with ART's Ultralytics
loss wrapper (adapted to Ultralytics 8.4's dict of loss items, see ``_loss_wrapper``):
untargeted, so it maximises the detector's training loss for the labelled people, with the patch at
random places, scales and rotations — its own design, which is part of what is compared.

Prints images per second of each (optimisation only, model loading excluded) and the held-out
true-positive rate each patch reaches. Targets: physadv ≥ 2× faster, and at least as strong.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ART_ENV = Path(__file__).resolve().parent / ".art-env"
ART = "adversarial-robustness-toolbox==1.20.1"


def art_python() -> Path:
    """The ART environment's python, made on first use."""
    python = ART_ENV / "bin" / "python"
    if python.is_file():
        return python
    import site
    import sysconfig

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(ART_ENV)], check=True)
    purelib = Path(
        sysconfig.get_path("purelib", vars={"base": str(ART_ENV), "platbase": str(ART_ENV)})
    )  # the new environment's site-packages
    ours = [p for p in site.getsitepackages() if "site-packages" in p]
    # an "import" line in a .pth runs at start-up; addsitedir also reads our .pth files (physadv's
    # editable install)
    (purelib / "physadv_env.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in ours))
    uv = Path(sys.executable).parent / "uv"
    installer = [str(uv), "pip", "install", "--python", str(python)] if uv.is_file() else [
        sys.executable, "-m", "pip", "install", "--isolated", "--target", str(purelib)
    ]  # fmt: skip
    # ART's own dependencies, pinned to the versions this environment already has where it has them
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in ("numpy", "scipy", "torch", "tqdm", "six"):
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pass
    constraints = ART_ENV / "constraints.txt"
    constraints.write_text("\n".join(pins) + "\n")
    subprocess.run([*installer, "-c", str(constraints), ART], check=True)
    return python


def _loss_wrapper(detector):
    """ART's Ultralytics loss wrapper, taught that Ultralytics ≥ 8.4 returns its loss items as a dict
    (ART 1.20.1 indexes them as a tuple); everything else is ART's."""
    from art.estimators.object_detection.pytorch_yolo_loss_wrapper import PyTorchYoloLossWrapper

    class Wrapper(PyTorchYoloLossWrapper):
        def forward(self, x, targets=None):
            if not self.training:
                return super().forward(x, targets)
            batch = {"batch_idx": targets[:, 0], "bboxes": targets[:, 2:6], "cls": targets[:, 1], "img": x}
            loss, _ = self.model.loss(batch)
            return {"loss_total": loss.sum()}

    return Wrapper(detector, "yolov8")


def worker(job: Path) -> None:
    """Runs inside the ART environment: train ART's patch, write it and the time taken."""
    import numpy as np
    import torch
    from art.attacks.evasion import AdversarialPatchPyTorch
    from art.estimators.object_detection import PyTorchYolo

    import physadv  # noqa: F401
    from physadv.models import load_model

    spec = json.loads((job / "job.json").read_text())
    data = np.load(job / "train.npz", allow_pickle=True)
    x = data["images"].astype(np.float32) / 255
    y = [
        {
            "boxes": b.astype(np.float32),
            "labels": np.zeros(len(b), np.int64),
            "scores": np.ones(len(b), np.float32),
        }
        for b in data["boxes"]
    ]
    detector = load_model(spec["model"], task="detect", device="cpu").model
    for p in detector.parameters():
        p.requires_grad_(False)
    estimator = PyTorchYolo(
        _loss_wrapper(detector),
        input_shape=x.shape[1:],
        clip_values=(0.0, 1.0),
        attack_losses=("loss_total",),
        device_type="cpu",
    )
    attack = AdversarialPatchPyTorch(
        estimator,
        rotation_max=20.0,
        scale_min=0.1,
        scale_max=0.25,
        learning_rate=spec["lr"],
        max_iter=spec["steps"] // (len(x) // spec["batch"]),
        batch_size=spec["batch"],
        patch_shape=(3, spec["resolution"], spec["resolution"]),
        patch_type="square",
        targeted=False,
        verbose=False,
    )
    start = time.perf_counter()
    patch, _ = attack.generate(x=x, y=y)
    seconds = time.perf_counter() - start
    np.save(job / "art_patch.npy", patch)
    (job / "art.json").write_text(json.dumps({"seconds": seconds, "torch": torch.__version__}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", type=Path, help="training photos with people (YOLO labels beside them)")
    ap.add_argument("--val", type=Path, required=True, help="held-out photos with labels")
    ap.add_argument("--model", default="default")
    ap.add_argument("--train", type=int, default=64, help="training images (a multiple of --batch)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=80, help="optimiser steps for each tool")
    ap.add_argument("--resolution", type=int, default=150)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker)

    import numpy as np
    import torch

    import physadv  # noqa: F401
    from physadv.attacks.person_patch import PatchAttack, PatchConfig
    from physadv.data.image_set import label_folder_for, load_image_set
    from physadv.harness.patch_eval import Judge, PatchTrial, evaluate_patch
    from physadv.models import load_model
    from physadv.printing.palette import Palette

    torch.manual_seed(0)
    model = load_model(args.model, task="detect", device="cpu")
    ids = [model.names.id("person")]
    size = model.imgsz or 640
    train, _ = load_image_set(args.images, size, ids, label_folder_for(args.images), 16)
    train = train.with_objects()
    # ART batches targets with the default collate, which needs the same number of people in every
    # image: both tools train on the images with the most common count
    counts = [len(b) for b in train.boxes]
    common = max(set(counts), key=counts.count)
    keep = [i for i, n in enumerate(counts) if n == common]
    keep = keep[: min(len(keep), args.train) // args.batch * args.batch]
    train = train.subset(keep)
    val, _ = load_image_set(args.val, size, ids, label_folder_for(args.val), 16)
    steps = args.steps - args.steps % (len(keep) // args.batch)

    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp)
        np.savez(
            job / "train.npz",
            images=train.images.numpy(),
            boxes=np.array([b.numpy() for b in train.boxes], dtype=object),
        )
        spec = {"model": args.model, "steps": steps, "batch": args.batch, "lr": args.lr}
        (job / "job.json").write_text(json.dumps({**spec, "resolution": args.resolution}))
        python = art_python()
        subprocess.run([str(python), __file__, "x", "--val", "x", "--worker", str(job)], check=True)
        art = json.loads((job / "art.json").read_text())
        art_patch = torch.from_numpy(np.load(job / "art_patch.npy")).float()

    config = PatchConfig(["person"], steps=steps, batch=args.batch, resolution=args.resolution, lr=args.lr)
    attack = PatchAttack([model], config, train, Palette.default().colours)
    # torch imports its compiler when the first optimiser is made; ART makes its optimiser before its
    # clock starts, so physadv's is warmed up outside its clock too
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    start = time.perf_counter()
    ours, _ = attack.run(None, False)
    our_seconds = time.perf_counter() - start

    trials = {"clean": PatchTrial(None), "physadv": PatchTrial(ours), "art": PatchTrial(art_patch)}
    metrics, _ = evaluate_patch(model, ids, val, trials, Judge(config.size_mm / 1000, config.eot))
    tpr = {k: metrics[k]["true_positive_rate@0.25"] for k in trials}
    images = steps * args.batch
    ours_ips, art_ips = images / our_seconds, images / art["seconds"]
    print(
        f"same detector ({args.model}), {len(keep)} training images, batch {args.batch}, {steps} steps, "
        f"patch {args.resolution} px, Adam lr {args.lr}, CPU threads {torch.get_num_threads()}"
    )
    print(f"{'':>10} {'images/s':>9} {'seconds':>8}  held-out TPR@0.25 ({tpr['clean']['n']} people)")
    print(f"{'clean':>10} {'':>9} {'':>8}  {100 * tpr['clean']['rate']:.1f} %")
    for name, ips, sec in (("physadv", ours_ips, our_seconds), ("ART", art_ips, art["seconds"])):
        r = tpr[name.lower()]
        low, high = r["ci95"]
        print(
            f"{name:>10} {ips:9.2f} {sec:8.1f}  {100 * r['rate']:.1f} % [{100 * low:.1f}, {100 * high:.1f}]"
        )
    print(f"speed ratio physadv / ART: {ours_ips / art_ips:.2f}× (target ≥ 2)")
    ours_tpr, art_tpr = 100 * tpr["physadv"]["rate"], 100 * tpr["art"]["rate"]
    print(f"strength: physadv leaves {ours_tpr:.1f} % detected, ART {art_tpr:.1f} % (lower is stronger)")


if __name__ == "__main__":
    main()
