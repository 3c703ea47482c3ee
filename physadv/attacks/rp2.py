"""RP2 stickers (Eykholt et al., "Robust Physical-World Attacks on Deep Learning Visual
Classification", CVPR 2018), with synthetic EOT on the sign plane.

The sticker lives in sign-face coordinates; each step renders a batch of drawn views of the whole
sign with the sticker on it (:mod:`physadv.eot.sign_views`) and minimises

    objective + λ_norm·‖M·δ‖_p + λ_nps·NPS(sticker) + λ_tv·TV(sticker)

with Adam, where δ is the sticker minus the face beneath it. A learned mask (``graffiti``, ``auto``)
runs RP2's two stages: first where the stickers go (:mod:`physadv.attacks.placement`, with the L1
norm), then their colours inside the kept cells (L2). A fixed mask runs the second stage only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from physadv.artefact import Artefact
from physadv.attacks import objectives
from physadv.attacks.checkpoint import load_checkpoint, report_resumed, save_checkpoint
from physadv.attacks.losses import mask_norm, nps, total_variation
from physadv.attacks.masks import LEARNED_CELLS, area_fraction, sticker_mask
from physadv.attacks.placement import CellPlacement
from physadv.attacks.sticker_config import StickerConfig
from physadv.distributed import Ranks, ranks_from_env
from physadv.eot.colour import ColourTransfer
from physadv.eot.sign_views import draw_views, render_views, scaled_boxes
from physadv.errors import PhysadvError
from physadv.scene.render import FACE_PX_PER_MM, apply_sticker
from physadv.scene.signs import SIGNS, render_face


@dataclass
class Stage:
    """One optimisation stage: a mask and a norm (RP2: L1 to find locations, then L2)."""

    mask: torch.Tensor | None  # [1, R, R]; None while the places are learned (or not yet kept)
    p: int
    steps: int


class StickerAttack:
    """RP2 on a classifier (``logits``) or a detector (``candidates``), one sign class."""

    def __init__(
        self,
        model,
        config: StickerConfig,
        palette: torch.Tensor,
        transfer: ColourTransfer | None = None,
        start: Artefact | None = None,
        ranks: Ranks | None = None,
    ):
        self.detector = model.kind == "detector"
        if (config.goal in ("hide", "relabel")) != self.detector:
            raise PhysadvError(f"goal '{config.goal}' is not for a {model.kind}")
        if config.batch == 0:  # the default: what fits a step on this device
            config = replace(
                config, batch=(8 if self.detector else 32) * (4 if model.device.type == "cuda" else 1)
            )
        if config.pool < config.batch:
            config = replace(config, pool=config.batch)
        self.model, self.config = model, config
        # torchrun's ranks share each step's views (one process: all); ``Ranks()``: this process alone,
        # as for an adaptive attack in a defense table whose rows are spread over the ranks
        self.ranks = ranks_from_env() if ranks is None else ranks
        if self.ranks.active and config.batch < self.ranks.world:
            raise PhysadvError(f"batch {config.batch} cannot be split over {self.ranks.world} ranks")
        self.start = start  # a sticker to continue from (e.g. re-optimising through a defense)
        self.device = model.device
        self.palette = palette.to(self.device)
        self.transfer = transfer or ColourTransfer.identity()
        face = torch.from_numpy(np.array(render_face(config.sign, FACE_PX_PER_MM))).permute(2, 0, 1)
        self.face = face.to(self.device)
        r = config.resolution
        self.face_small = F.interpolate(face[None], size=(r, r), mode="area")[0].to(self.device)
        self.size_mm = (SIGNS[config.sign].width_mm, SIGNS[config.sign].height_mm)
        self.kind = "frame" if self.detector else "crop"
        self.out_size = (model.imgsz * 3 // 4, model.imgsz) if self.detector else tuple(model.input_size)

    # --- views and rendering ------------------------------------------------------------------

    def views(self, count: int, seed: int):
        rng = np.random.default_rng([self.config.seed, seed])
        return draw_views(
            rng,
            count,
            self.config.sign,
            self.kind,
            self.config.view_range,
            frame_width=self.out_size[1],
            device=self.device,
        )

    def artefact(self, image: torch.Tensor, mask: torch.Tensor, printed: bool = False) -> Artefact:
        """The sticker layer as an artefact spanning the face; ``printed``: through the colour transfer."""
        shown = self.transfer(image) if printed else image
        return Artefact(shown, self.size_mm, mask.to(image), provenance={"sign": self.config.sign})

    def stuck_face(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The sign face ``[4, h, w]`` with the printed sticker on it (differentiable in ``image``)."""
        return apply_sticker(self.face, self.artefact(image, mask, printed=True))

    # --- objective ----------------------------------------------------------------------------

    def objective(self, frames: torch.Tensor, views) -> tuple[torch.Tensor, torch.Tensor]:
        """The attack term and a per-image success estimate (for the progress bar)."""
        c = self.config
        if not self.detector:
            logits = self.model.logits(frames)
            pred = logits.argmax(1)
            # a detection defense in front (MC dropout) charges for looking adversarial: adaptive attack
            penalty = self.model.evasion_penalty(frames) if hasattr(self.model, "evasion_penalty") else 0.0
            if c.goal == "targeted":
                return objectives.targeted_cross_entropy(logits, c.target) + penalty, pred == c.target
            return objectives.untargeted_margin(logits, c.true_class) + penalty, pred != c.true_class
        cands = self.model.candidates(frames)
        boxes = scaled_boxes(views, self.out_size).to(cands.boxes)
        near = objectives.overlapping(cands, boxes)
        own = (cands.scores[..., c.true_class] * near).max(dim=1).values
        if c.goal == "hide":
            return objectives.hide_loss(cands, boxes, c.true_class), own < 0.25
        wanted = (cands.scores[..., c.target] * near).max(dim=1).values
        return objectives.relabel_loss(cands, boxes, c.true_class, c.target), (own < 0.25) & (wanted >= 0.25)

    def loss(
        self, image: torch.Tensor, mask: torch.Tensor, p: int, views, share: float = 1.0, main: bool = True
    ) -> tuple[torch.Tensor, dict]:
        """The step's loss on ``views``. Data-parallel ranks pass their ``share`` of the global batch
        (the attack term, a batch mean, is weighted by it) and only the ``main`` rank adds the terms on
        the sticker itself, so the ranks' losses sum to the single-process loss."""
        c = self.config
        frames = render_views(self.stuck_face(image, mask), views, self.out_size)
        attack, success = self.objective(frames, views)
        inside = mask.expand_as(image)
        terms = {
            "attack": attack,
            "norm": mask_norm(image - self.face_small[:3], mask, p),
            "nps": nps((image * inside)[None], self.palette) if c.lambda_nps else attack.new_zeros(()),
            "tv": total_variation(image * inside),
        }
        own = c.lambda_norm * terms["norm"] + c.lambda_nps * terms["nps"] + c.lambda_tv * terms["tv"]
        total = share * attack + (own if main else 0.0)
        info = {"successes": float(success.float().sum()), "views": len(views)}
        info.update({k: v.item() * (share if k == "attack" else 1.0) for k, v in terms.items()})
        return total, info

    # --- optimisation -------------------------------------------------------------------------

    def learns_places(self) -> bool:
        return self.start is None and self.config.mask in LEARNED_CELLS

    def stages(self, place_steps: int | None = None) -> list[Stage]:
        """The optimisation's stages; ``place_steps``: a resumed learned mask's place-finding length
        (kept from its first run, so a longer run only colours for longer)."""
        c = self.config
        alpha = self.face[3:].cpu()
        if self.start is not None:  # keep the sticker's own mask
            size = (c.resolution, c.resolution)
            mask = F.interpolate(self.start.alpha[None].float().cpu(), size=size, mode="area")[0]
            return [Stage((mask > 0.5).float(), 2, c.steps)]
        if self.learns_places():
            first = round(c.steps * c.place_share) if place_steps is None else place_steps
            if first >= c.steps:
                raise PhysadvError(
                    f"--steps {c.steps} ends before the checkpoint's {first} steps that find the sticker "
                    "places: give more --steps"
                )
            return [Stage(None, 1, first), Stage(None, 2, c.steps - first)]
        return [Stage(sticker_mask(c.mask, alpha, (c.resolution,) * 2), 2, c.steps)]

    def placement(self) -> CellPlacement:
        c = self.config
        alpha = sticker_mask("poster", self.face[3:].cpu(), (c.resolution,) * 2).to(self.device)
        return CellPlacement(alpha, LEARNED_CELLS[c.mask], c.area)

    def run(
        self,
        checkpoint: Path | None = None,
        resume: bool = False,
        checkpoint_every: int = 25,
        progress: Callable[[int, str], None] | None = None,
    ) -> tuple[Artefact, dict]:
        """Optimise; returns the sticker artefact (intended colours, alpha = mask) and a run record."""
        c = self.config
        stages = self.stages()
        places = self.placement() if self.learns_places() else None
        pool = self.views(c.pool, seed=1)
        gen = torch.Generator().manual_seed(c.seed)
        # new stickers start grey; a poster starts as the sign itself, δ = 0
        image = (
            self.face_small[:3].clone() if c.mask == "poster" else torch.full_like(self.face_small[:3], 0.5)
        )
        if self.start is not None:
            size = (c.resolution, c.resolution)
            image = F.interpolate(self.start.image[None].float(), size=size, mode="area")[0].to(self.device)
        state = {"step": 0, "history": [], "seconds": 0.0, "masks": [s.mask for s in stages]}
        opt_state = None
        if places is not None:
            state["place_steps"] = stages[0].steps
        if resume and checkpoint is not None and checkpoint.is_file():
            image, state, opt_state = self._load(checkpoint, gen)
            if places is not None:  # run on for longer: the places stage keeps its length
                stages = self.stages(state["place_steps"])
            for s, m in zip(stages, state["masks"], strict=True):
                s.mask = m
            if places is not None:
                places.logits.data.copy_(state["mask_logits"])
            report_resumed(progress, state["step"], c.steps)
        image.requires_grad_(True)
        groups = [{"params": [image], "lr": c.lr}]
        if places is not None:
            groups.append({"params": [places.logits], "lr": c.mask_lr})
        opt = torch.optim.Adam(groups)
        opt_params = [q for g in groups for q in g["params"]]
        main = self.ranks.main
        if opt_state is not None:
            opt.load_state_dict(opt_state)
        start, first_step = time.perf_counter() - state["seconds"], state["step"]
        boundaries = np.cumsum([s.steps for s in stages])

        def save() -> None:
            state["seconds"] = time.perf_counter() - start
            if places is not None:
                state["mask_logits"] = places.logits.detach().cpu()
            self._save(checkpoint, image, state, opt, gen)

        try:
            for step in range(first_step, c.steps):
                k = int(np.searchsorted(boundaries, step, side="right"))
                stage = stages[k]
                if places is not None and k == 1 and stage.mask is None:  # RP2: places found, now colours
                    stage.mask = state["masks"][1] = places.hard()
                if stage.mask is None:  # learning the places: a soft mask, charged for area over budget
                    mask = places.soft(places.temperature(step / max(1, stage.steps - 1)))
                    penalty = places.penalty(mask)
                else:
                    mask, penalty = stage.mask.to(self.device), 0.0
                idx = torch.randperm(len(pool), generator=gen)[: c.batch].tolist()
                mine = self.ranks.share(idx)  # data parallel: this rank's part of the step's views
                total, info = self.loss(
                    image, mask, stage.p, [pool[i] for i in mine], len(mine) / len(idx), main
                )
                total = total + (penalty if main else 0.0)
                opt.zero_grad()
                total.backward()
                self.ranks.sum_grads(opt_params)
                opt.step()
                info = self._global(total, info)
                with torch.no_grad():
                    image.clamp_(0, 1)
                if places is not None:
                    info["area"] = round(float(mask.detach().sum()) / places.face_px, 4)
                loss = info.pop("loss")
                state["history"].append({"step": step + 1, "loss": round(loss, 5), **info})
                state["step"] = step + 1
                if progress and main:
                    doing = "placing stickers, " if stage.mask is None else ""
                    progress(1, f"{doing}loss {loss:.3f}  batch success {100 * info['success']:.0f}%")
                done = step + 1 == c.steps
                if main and checkpoint is not None and ((step + 1) % checkpoint_every == 0 or done):
                    save()
        except BaseException:  # Ctrl-C, out of memory, any failure: keep the steps done so far
            if main and checkpoint is not None:
                state["history"] = [h for h in state["history"] if h["step"] <= state["step"]]
                save()
            raise
        mask = stages[-1].mask.cpu()  # the colour stage always has a step: round(0.4 · steps) < steps
        record = {
            "steps": c.steps,
            "seconds": round(time.perf_counter() - start, 1),
            "sticker_area_fraction": round(area_fraction(mask, self.face[3:].cpu()), 4),
            "history": state["history"],
        }
        return self.artefact(image.detach().cpu(), mask), record

    def _global(self, total: torch.Tensor, info: dict) -> dict:
        """The step's loss, success and terms over all ranks, rounded for the history."""
        keys = ("attack", "successes", "views")
        summed = dict(
            zip(
                keys + ("loss",),
                self.ranks.sum([info[k] for k in keys] + [total.item()], self.device),
                strict=True,
            )
        )
        out = {k: round(v, 5) if isinstance(v, float) else v for k, v in info.items() if k not in keys}
        out.update(attack=round(summed["attack"], 5), loss=summed["loss"])
        out["success"] = summed["successes"] / max(1.0, summed["views"])
        return out

    def _save(self, path: Path, image, state, opt, gen) -> None:
        save_checkpoint(
            path,
            self.config.as_dict(),
            image=image.detach().cpu(),
            state={**state, "masks": [None if m is None else m.cpu() for m in state["masks"]]},
            optimizer=opt.state_dict(),
            generator=gen.get_state(),
        )

    def may_change(self) -> tuple[str, ...]:
        """Settings a resumed run may change: ``steps`` (run on for longer; a learned mask keeps its
        place-finding stage and colours for longer)."""
        return ("steps",)

    def _load(self, path: Path, gen: torch.Generator):
        c = self.config
        saved = load_checkpoint(path, c.as_dict(), may_change=self.may_change())
        if self.learns_places():  # checkpoints from before place_steps was kept: the run's own split
            saved["state"].setdefault("place_steps", round(saved["config"]["steps"] * c.place_share))
        gen.set_state(saved["generator"])
        return saved["image"].to(self.device), saved["state"], saved["optimizer"]
