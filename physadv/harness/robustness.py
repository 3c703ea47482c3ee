"""The sanity table of digital baselines: top-1 accuracy of a classifier (bare, defended or
adversarially trained) under each attack of :mod:`physadv.attacks.digital`, with the perturbations'
mean L∞ and L2 sizes, and Athalye et al.'s warnings where the numbers look like gradient masking."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import torch

from physadv.attacks.digital import ATTACKS
from physadv.harness.metrics import Rate

MARGIN = 0.05


def labelled_crops(root: Path, model) -> tuple[torch.Tensor, torch.Tensor]:
    """An ImageFolder of crops, resized to the model's input, labelled with the model's class ids
    (folder names are matched to class names)."""
    from physadv.data.image_folder import load_image_folder

    data = load_image_folder(root, size=model.input_size)
    ids = torch.tensor([model.names.id(n) for n in data.names])
    return data.images, ids[data.labels]


def robustness_rows(
    model,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    attacks=tuple(ATTACKS),
    batch: int = 128,
    seed: int = 0,
    progress=None,
) -> list[dict]:
    """``images`` uint8 or float ``[N, 3, H, W]``; one row for clean, then one per attack."""
    rows = []
    for name in ("clean", *attacks):
        generator = torch.Generator().manual_seed(seed)
        correct, linf, l2, start = 0, 0.0, 0.0, time.perf_counter()
        for i in range(0, len(images), batch):
            x = images[i : i + batch].to(model.device)
            x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
            y = labels[i : i + batch].to(model.device)
            adv = x if name == "clean" else ATTACKS[name](model.logits, x, y, eps, generator)
            correct += int((model.predict(adv)[0].to(y) == y).sum())
            delta = (adv - x).flatten(1)
            linf += float(delta.abs().amax(dim=1).sum())
            l2 += float(delta.norm(dim=1).sum())
        if progress:
            progress(1, name)
        n = len(images)
        rows.append(
            {
                "attack": name,
                "accuracy": Rate(correct, n).as_dict(),
                "mean_linf": round(linf / n, 4),
                "mean_l2": round(l2 / n, 4),
                "seconds": round(time.perf_counter() - start, 2),
            }
        )
    return rows


def masking_warnings(rows: list[dict]) -> list[str]:
    """Signs of gradient masking: a weaker attack doing better than a stronger one."""
    acc = {r["attack"]: r["accuracy"]["rate"] for r in rows}
    out = []
    for weak, strong in (("fgsm", "pgd"), ("fgsm", "bim"), ("noise", "pgd")):
        if weak in acc and strong in acc and acc[weak] < acc[strong] - MARGIN:
            out.append(
                f"{weak} ({100 * acc[weak]:.1f} %) beats {strong} ({100 * acc[strong]:.1f} %): a one-step or "
                "random perturbation should never beat an iterative attack — a sign of gradient masking"
            )
    for unbounded in ("deepfool", "cw_l2"):
        if acc.get(unbounded, 0) > 0.1:
            out.append(
                f"{unbounded} left {100 * acc[unbounded]:.1f} % correct although its size is unbounded: "
                "gradients may be masked (try the attack through a BPDA surrogate)"
            )
    return out


def write_robustness(rows: list[dict], out: Path, title: str, eps: float) -> str:
    """baselines.json, baselines.csv and baselines.md (returned)."""
    out.mkdir(parents=True, exist_ok=True)
    warnings = masking_warnings(rows)
    (out / "baselines.json").write_text(
        json.dumps({"eps": eps, "rows": rows, "warnings": warnings}, indent=2)
    )
    with (out / "baselines.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["attack", "accuracy", "ci95_low", "ci95_high", "mean_linf", "mean_l2", "seconds"])
        for r in rows:
            a = r["accuracy"]
            w.writerow([r["attack"], a["rate"], *a["ci95"], r["mean_linf"], r["mean_l2"], r["seconds"]])
    lines = [
        f"# {title}",
        "",
        f"Top-1 accuracy under each attack (L∞ budget {255 * eps:g}/255 for noise, FGSM, BIM and PGD;",
        "DeepFool and Carlini–Wagner L2 are unbounded minimum-norm attacks). 95 % Wilson intervals.",
        "",
        "| attack | accuracy | mean L∞ | mean L2 | seconds |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        rate, (low, high) = r["accuracy"]["rate"], r["accuracy"]["ci95"]
        lines.append(
            f"| {r['attack']} | {100 * rate:.1f} % [{100 * low:.1f}, {100 * high:.1f}] | "
            f"{r['mean_linf']:.4f} | {r['mean_l2']:.3f} | {r['seconds']:.1f} |"
        )
    text = "\n".join(lines + ([""] + [f"⚠ {w}" for w in warnings] if warnings else [])) + "\n"
    (out / "baselines.md").write_text(text)
    return text
