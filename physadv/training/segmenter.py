"""Train SAC's patch segmenter (:mod:`physadv.defenses.segmenter`) on photos of people wearing patches.

Every step puts one patch — one of the user's (turned by a random multiple of 90° and mirrored), or,
for ``random_share`` of the steps, a random texture (blocky noise or smooth colour blobs at a random
scale, so the segmenter learns "a printed square that does not belong" rather than one picture) — on
a random ``patch_share`` of the people in a batch of photos, through the patch attack's own placement
and physical EOT (:mod:`physadv.training.patch_wear`; the printed side varies over ``size_mm``). The
target is where the patch landed (the same draw composited white on black). The loss is binary
cross-entropy (patch pixels weighted up, they are rare) plus the Dice loss, as SAC's training.
Checkpoints (physadv state files) every ``checkpoint_every`` steps; ``resume`` continues from the
last one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from physadv.attacks.checkpoint import setting_changes
from physadv.data.image_set import ImageSet
from physadv.defenses.segmenter import PatchSegmenter
from physadv.errors import PhysadvError
from physadv.statefile import load_state, save_state
from physadv.training.patch_wear import wear_on_people
from physadv.training.segmenter_config import SegmenterTraining

TEXTURE_PX = 64  # side of the random textures (the attack's EOT noise uses the same)


def random_texture(generator: torch.Generator) -> torch.Tensor:
    """``[3, 64, 64]`` in [0, 1]: blocky noise (2–64 cells a side) or smooth colour blobs (2–8)."""
    if torch.rand(1, generator=generator).item() < 0.5:
        cells = int(torch.randint(2, TEXTURE_PX + 1, (1,), generator=generator))
        small = torch.rand(1, 3, cells, cells, generator=generator)
        return F.interpolate(small, size=(TEXTURE_PX, TEXTURE_PX), mode="nearest")[0]
    cells = int(torch.randint(2, 9, (1,), generator=generator))
    small = torch.rand(1, 3, cells, cells, generator=generator)
    smooth = F.interpolate(small, size=(TEXTURE_PX, TEXTURE_PX), mode="bicubic", align_corners=True)
    return smooth[0].clamp(0, 1)


def pick_patch(patches: list[torch.Tensor], share: float, generator: torch.Generator) -> torch.Tensor:
    """One of ``patches`` (turned by a multiple of 90° and mirrored at random), or with probability
    ``share`` (always, without patches) a :func:`random_texture`."""
    if not patches or torch.rand(1, generator=generator).item() < share:
        return random_texture(generator)
    patch = patches[int(torch.randint(len(patches), (1,), generator=generator))]
    patch = torch.rot90(patch, int(torch.randint(4, (1,), generator=generator)), dims=(1, 2))
    return patch.flip(2) if torch.rand(1, generator=generator).item() < 0.5 else patch


def patched_batch(
    images: ImageSet,
    index: list[int],
    patch: torch.Tensor,
    share: float,
    size_m: float,
    generator: torch.Generator,
    device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Photos with ``patch`` (``size_m`` a side) on a random ``share`` of the people (EOT draws), and
    ``[B, 1, S, S]`` float targets (1 where a patch covers at least half a pixel)."""
    frames, boxes, valid = images.batch(index, device)
    worn = valid & (torch.rand(valid.shape, generator=generator) < share).to(device)
    frames, _, cover = wear_on_people(frames, boxes, worn, patch.to(device), size_m, generator)
    return frames, cover


def segmenter_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """Binary cross-entropy (patch pixels weighted ``pos_weight``) plus the Dice loss."""
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=logits.new_tensor(pos_weight))
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return bce + dice


def _checkpoint_path(out: Path) -> Path:
    return out.with_name(out.stem + ".ckpt.safetensors")


def train_segmenter(
    images: ImageSet,
    patches: list[torch.Tensor],
    settings: SegmenterTraining,
    out: Path,
    device: torch.device,
    resume: bool = False,
    progress: Callable[[int, str], None] | None = None,
) -> tuple[PatchSegmenter, dict]:
    """Train on ``images`` (people's boxes in canvas pixels) with ``patches`` (``[3, P, P]`` each);
    returns the network (eval mode) and a record of the run (steps, seconds, loss history)."""
    s = settings
    if not len(images):
        raise PhysadvError("no training photos with people to put patches on")
    torch.manual_seed(s.seed)
    net = PatchSegmenter(s.width, int(images.images.shape[-1])).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=s.lr)
    gen = torch.Generator().manual_seed(s.seed)
    state = {"step": 0, "history": [], "seconds": 0.0}
    checkpoint = _checkpoint_path(out)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    if not resume and checkpoint.is_file():  # starting at 0 would overwrite it at the first save
        step = load_state(checkpoint, "segmenter checkpoint").get("state", {}).get("step", "?")
        raise PhysadvError(
            f"'{checkpoint}' holds a checkpoint at step {step} of this command: add --resume to continue "
            "it, or choose another --out"
        )
    if resume and checkpoint.is_file():
        saved = load_state(checkpoint, "segmenter checkpoint")
        # a longer run, or checkpoints at another interval, continue the same training
        changed = setting_changes(saved.get("settings", {}), s.to_dict(), ("steps", "checkpoint_every"))
        if changed:
            raise PhysadvError(
                f"'{checkpoint}' was made with different settings: {'; '.join(changed)}; resume with its "
                "settings, or choose another --out to start a new run"
            )
        net.load_state_dict(saved["weights"])
        opt.load_state_dict(saved["optimizer"])
        gen.set_state(saved["generator"])
        state = saved["state"]
        if progress:
            progress(state["step"], f"resumed at step {state['step']}", resumed=True)
    net.train()
    started = time.perf_counter() - state["seconds"]

    def save() -> None:
        state["seconds"] = time.perf_counter() - started
        save_state(
            checkpoint,
            {
                "settings": s.to_dict(),
                "weights": net.state_dict(),
                "optimizer": opt.state_dict(),
                "generator": gen.get_state(),
                "state": state,
            },
        )

    try:
        for step in range(state["step"], s.steps):
            size_m = float(torch.empty(1).uniform_(*s.size_mm, generator=gen)) / 1000
            index = torch.randint(len(images), (s.batch,), generator=gen).tolist()
            patch = pick_patch(patches, s.random_share, gen)
            with torch.no_grad():
                frames, target = patched_batch(images, index, patch, s.patch_share, size_m, gen, device)
            loss = segmenter_loss(net(frames), target, s.pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            state["history"].append(round(loss.item(), 5))
            state["step"] = step + 1
            if progress:
                progress(1, f"loss {loss.item():.3f}")
            if (step + 1) % s.checkpoint_every == 0 or step + 1 == s.steps:
                save()
    except BaseException:  # Ctrl-C, out of memory, any failure: keep the steps done so far
        state["history"] = state["history"][: state["step"]]
        save()
        raise
    record = {"steps": s.steps, "seconds": round(time.perf_counter() - started, 1), "loss": state["history"]}
    return net.eval(), record
