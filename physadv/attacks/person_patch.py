"""Person-hiding patches (Thys et al., "Fooling automated surveillance cameras: adversarial patches
to attack person detection", CVPRW 2019), for any Ultralytics detector and ensembles of them.

Each step takes a batch of training photos, puts the patch on every person under a random EOT draw
(:mod:`physadv.eot.patch_eot`) and minimises

    det + λ_nps·NPS(patch) + max(λ_tv·TV(patch), tv_floor)

with Adam, where ``det`` is each person's detection score (the best of the candidates over their
box — v8/11/26 have no objectness — or the top-k mean, or the thresholded sum), averaged over the
persons, summed or maxed over the models of an ensemble. A model behind a defense that raises alarms
(Jedi, SAC, Ad-YOLO) also charges its ``evasion_penalty`` — the adaptive attacker stays unflagged.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from physadv.attacks import objectives
from physadv.attacks.checkpoint import load_checkpoint, report_resumed, save_checkpoint
from physadv.attacks.losses import nps, total_variation
from physadv.data.image_set import ImageSet
from physadv.eot.colour import ColourTransfer
from physadv.eot.patch_eot import PatchEOT, place_patches
from physadv.errors import PhysadvError

DETECTED = 0.25  # the progress bar's "still detected" score (Ultralytics' default confidence)


@dataclass
class PatchConfig:
    """Everything that decides the result (saved in checkpoints and the summary).

    ``classes``: the attacked class names (e.g. ``["person"]``), looked up in each model.
    """

    classes: list[str]
    steps: int = 1000
    lr: float = 0.03
    batch: int = 8
    resolution: int = 150  # patch pixels per side
    loss: str = "max"  # max | topk | threshold
    topk: int = 5
    threshold: float = 0.25
    ensemble: str = "sum"  # sum | max over models
    lambda_nps: float = 0.01
    lambda_tv: float = 2.5
    tv_floor: float = 0.1
    init: str = "grey"  # grey | random
    seed: int = 0
    eot: PatchEOT = field(default_factory=PatchEOT)

    def as_dict(self) -> dict:
        return asdict(self)


class PatchAttack:
    """Optimise one patch that hides the ``classes`` objects of ``images`` from every model."""

    def __init__(
        self,
        models: list,
        config: PatchConfig,
        images: ImageSet,
        palette: torch.Tensor,
        transfer: ColourTransfer | None = None,
        model_names: list[str] | None = None,
        start: torch.Tensor | None = None,
    ):
        self.models, self.config, self.images = models, config, images
        self.start = start  # a patch to continue from (e.g. re-optimising through a defense)
        self.model_names = model_names or [f"model{k}" for k in range(len(models))]
        self.device = models[0].device
        self.class_ids = [[m.names.id(c) for c in config.classes] for m in models]
        self.palette = palette.to(self.device)
        self.transfer = transfer

    def initial_patch(self) -> torch.Tensor:
        c = self.config
        gen = torch.Generator().manual_seed(c.seed)
        if self.start is not None:
            size = (c.resolution, c.resolution)
            return (
                F.interpolate(self.start[None].float(), size=size, mode="area")[0].clamp(0, 1).to(self.device)
            )
        if c.init == "random":
            return torch.rand(3, c.resolution, c.resolution, generator=gen).to(self.device)
        return torch.full((3, c.resolution, c.resolution), 0.5, device=self.device)

    def detection_scores(self, model, ids: list[int], frames, boxes, valid) -> torch.Tensor:
        """Each person's detection score ``[B, K]`` under ``model`` (0 in empty slots)."""
        c = self.config
        scores = objectives.object_scores(model.candidates(frames), boxes, ids)
        return objectives.reduce_object_scores(scores, c.loss, c.topk, c.threshold) * valid

    def loss(self, patch: torch.Tensor, index: list[int], gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        c = self.config
        images, boxes, valid = self.images.batch(index, self.device)
        params = c.eot.draw(valid.numel(), gen, c.resolution)
        frames = place_patches(images, patch, boxes, valid, params, c.eot, self.transfer)
        per_model, detected = [], 0
        for model, ids in zip(self.models, self.class_ids, strict=True):
            score = self.detection_scores(model, ids, frames, boxes, valid)
            per_model.append(score.sum() / valid.sum().clamp(min=1))
            detected += int(((score.detach() >= DETECTED) & valid).sum())
        det = torch.stack(per_model)
        det = det.sum() if c.ensemble == "sum" else det.max()
        terms = {
            "det": det,
            "nps": nps(patch[None], self.palette) if c.lambda_nps else det.new_zeros(()),
            "tv": total_variation(patch),
        }
        total = det + c.lambda_nps * terms["nps"] + torch.clamp(c.lambda_tv * terms["tv"], min=c.tv_floor)
        evasion = [m.evasion_penalty(frames) for m in self.models if hasattr(m, "evasion_penalty")]
        if evasion:  # a defense that raises alarms stands in front: the adaptive attack keeps it silent
            terms["evasion"] = torch.stack(evasion).sum()
            total = total + terms["evasion"]
        info = {k: round(v.item(), 5) for k, v in terms.items()}
        info.update(objects=int(valid.sum()) * len(self.models), detected=detected)
        return total, info

    def run(
        self,
        checkpoint: Path | None = None,
        resume: bool = False,
        checkpoint_every: int = 25,
        progress: Callable[[int, str], None] | None = None,
    ) -> tuple[torch.Tensor, dict]:
        """Optimise; returns the patch ``[3, P, P]`` (intended colours, CPU) and a run record."""
        c = self.config
        gen = torch.Generator().manual_seed(c.seed)
        patch, state, opt_state = self.initial_patch(), {"step": 0, "history": [], "seconds": 0.0}, None
        if resume and checkpoint is not None and checkpoint.is_file():
            saved = load_checkpoint(checkpoint, c.as_dict(), may_change=("steps",))  # run on for longer
            gen.set_state(saved["generator"])
            patch, state, opt_state = saved["patch"].to(self.device), saved["state"], saved["optimizer"]
            report_resumed(progress, state["step"], c.steps)
        patch.requires_grad_(True)
        opt = torch.optim.Adam([patch], lr=c.lr)
        if opt_state is not None:
            opt.load_state_dict(opt_state)
        recent = deque(maxlen=20)  # (detected, objects) of the last steps, for the progress bar
        start = time.perf_counter() - state["seconds"]
        for step in range(state["step"], c.steps):
            index = torch.randint(len(self.images), (c.batch,), generator=gen).tolist()
            total, info = self.loss(patch, index, gen)
            opt.zero_grad()
            total.backward()
            if not (torch.isfinite(total) and torch.isfinite(patch.grad).all()):
                # a numerically broken batch must not poison the patch: skip it, but never silently
                state["skipped"] = state.get("skipped", 0) + 1
                if state["skipped"] > max(10, c.steps // 10):
                    raise PhysadvError(
                        f"the loss was not finite in {state['skipped']} steps (last: {step + 1})"
                    )
                opt.zero_grad()
            else:
                opt.step()
            with torch.no_grad():
                patch.clamp_(0, 1)
            recent.append((info["detected"], info["objects"]))
            state["history"].append({"step": step + 1, "loss": round(total.item(), 5), **info})
            state["step"] = step + 1
            if progress:
                rate = sum(d for d, _ in recent) / max(1, sum(n for _, n in recent))
                progress(1, f"loss {total.item():.3f}  still detected {100 * rate:.0f}%")
            if checkpoint is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == c.steps):
                state["seconds"] = time.perf_counter() - start
                save_checkpoint(
                    checkpoint,
                    c.as_dict(),
                    patch=patch.detach().cpu(),
                    state=state,
                    optimizer=opt.state_dict(),
                    generator=gen.get_state(),
                )
        record = {
            "steps": c.steps,
            "seconds": round(time.perf_counter() - start, 1),
            "skipped_steps": state.get("skipped", 0),
            "history": state["history"],
        }
        return patch.detach().cpu(), record
