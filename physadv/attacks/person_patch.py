"""Person-hiding patches (Thys et al., "Fooling automated surveillance cameras: adversarial patches
to attack person detection", CVPRW 2019), for any Ultralytics detector and ensembles of them.

Each step takes a batch of people — training photos, frames of a rendered street
(:class:`~physadv.eot.person_scenes.ScenePeople`, fresh frames and light every step), or both — puts the
patch at its physical size on every person's torso plane under a random physical EOT draw
(:mod:`physadv.eot.person_eot`, composited as the renderer composites it) and minimises

    det + λ_nps·NPS(patch) + max(λ_tv·TV(patch), tv_floor)

with Adam, where ``det`` is each person's detection score (the best of the candidates over their
box — v8/11/26 have no objectness — or the top-k mean, or the thresholded sum), averaged over the
persons, summed or maxed over the models of an ensemble. A model behind a defense that raises alarms
(Jedi, SAC, Ad-YOLO) also charges its ``evasion_penalty`` — the adaptive attacker stays unflagged.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from physadv.attacks import objectives
from physadv.attacks.checkpoint import load_checkpoint, report_resumed, save_checkpoint
from physadv.attacks.losses import nps, total_variation
from physadv.attacks.patch_config import PatchConfig  # noqa: F401  (re-exported: the attack's settings)
from physadv.data.image_set import ImageSet
from physadv.distributed import Ranks, ranks_from_env
from physadv.eot.colour import ColourTransfer
from physadv.eot.person_eot import draw, share_of_draw
from physadv.eot.person_scenes import ScenePeople
from physadv.eot.person_views import PersonFrames, photo_frames, views
from physadv.errors import PhysadvError

DETECTED = 0.25  # the progress bar's "still detected" score (Ultralytics' default confidence)


class PatchAttack:
    """Optimise one patch that hides the ``classes`` objects of ``images`` (photos) and of ``scenes``
    (rendered streets; their people are persons) from every model."""

    def __init__(
        self,
        models: list,
        config: PatchConfig,
        images: ImageSet | None,
        palette: torch.Tensor,
        transfer: ColourTransfer | None = None,
        model_names: list[str] | None = None,
        start: torch.Tensor | None = None,
        scenes: ScenePeople | None = None,
        ranks: Ranks | None = None,
    ):
        if images is None and scenes is None:
            raise PhysadvError("a patch needs people to train on: photos, a scene, or both")
        if config.batch == 0:  # the settings' default: as many as the device takes in stride
            config = dataclasses.replace(config, batch=32 if models[0].device.type == "cuda" else 8)
        # torchrun's ranks share each step's photos (one process: all); ``Ranks()``: this process alone
        self.ranks = ranks_from_env() if ranks is None else ranks
        if self.ranks.active and scenes is not None:
            raise PhysadvError(
                "--scene under torchrun is not supported yet: train on photos, or in one process"
            )
        if self.ranks.active and config.batch < self.ranks.world:
            raise PhysadvError(f"batch {config.batch} cannot be split over {self.ranks.world} ranks")
        self.models, self.config, self.images, self.scenes = models, config, images, scenes
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

    def parts(self, gen: torch.Generator) -> list[PersonFrames]:
        """This step's people: photos, rendered streets, or both (split by ``scene_share``)."""
        c = self.config
        if self.images is None or self.scenes is None:
            n_scene = c.batch if self.images is None else 0
        else:
            n_scene = min(c.batch - 1, max(1, round(c.scene_share * c.batch)))
        out = []
        if self.images is not None:
            index = torch.randint(len(self.images), (c.batch - n_scene,), generator=gen).tolist()
            if self.ranks.active:  # this rank's frames; the people of the whole step are counted
                out.append(self._photo_share(index))
            else:
                images, boxes, valid = self.images.batch(index, self.device)
                out.append(photo_frames(images, boxes, valid, c.hfov_deg, c.person_height_m))
        if self.scenes is not None:
            out.append(self.scenes.batch(n_scene, gen, self.device))
        return out

    def _photo_share(self, index: list[int]) -> PersonFrames:
        """This rank's share of the step's photos, with the slices of the whole step's draw that
        belong to them (``share``) and the step's people (``people``)."""
        counts = [len(self.images.boxes[i]) for i in index]
        mine = self.ranks.share(list(range(len(index))))
        first, last = mine[0], mine[-1] + 1
        images, boxes, valid = self.images.batch(index[first:last], self.device)
        frames = photo_frames(images, boxes, valid, self.config.hfov_deg, self.config.person_height_m)
        frames.share = (
            len(index),
            sum(counts),
            slice(first, last),
            slice(sum(counts[:first]), sum(counts[:last])),
        )
        return frames

    def loss(self, patch: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        c = self.config
        per_model = [patch.new_zeros(()) for _ in self.models]
        detected = people = 0
        evasion = []  # what defenses that raise alarms charge (Jedi, SAC, Ad-YOLO)
        for frames in self.parts(gen):
            share = getattr(frames, "share", None)
            if share is None:
                params = draw(c.eot, len(frames.planes), len(frames.images), gen)
            else:  # a rank: draw the whole step (the same random numbers on every rank), keep its part
                params = share_of_draw(draw(c.eot, share[1], share[0], gen), share[2], share[3])
            for k, (model, ids) in enumerate(zip(self.models, self.class_ids, strict=True)):
                largest = self.ranks.largest if self.ranks.active else None  # textures as one process's
                x, boxes = views(
                    patch, frames, params, c.eot, c.size_mm / 1000, model.imgsz, self.transfer, gen, largest
                )
                score = self.detection_scores(model, ids, x, boxes, frames.valid)
                per_model[k] = per_model[k] + score.sum()
                if hasattr(model, "evasion_penalty"):
                    evasion.append(model.evasion_penalty(x))
                detected += int(((score.detach() >= DETECTED) & frames.valid).sum())
            people += int(frames.valid.sum()) if share is None else share[1]
        det = torch.stack(per_model) / max(1, people)
        det = det.sum() if c.ensemble == "sum" else det.max()
        terms = {
            "det": det,
            "nps": nps(patch[None], self.palette) if c.lambda_nps else det.new_zeros(()),
            "tv": total_variation(patch),
        }
        # the patch's own terms once over the ranks (rank 0), so the ranks' gradients sum to one process's
        own = 1.0 if self.ranks.main else 0.0
        total = det + own * (
            c.lambda_nps * terms["nps"] + torch.clamp(c.lambda_tv * terms["tv"], min=c.tv_floor)
        )
        if evasion:  # a defense that raises alarms stands in front: the adaptive attack keeps it silent
            terms["evasion"] = torch.stack(evasion).mean()
            total = total + terms["evasion"]
        info = {k: round(v.item(), 5) for k, v in terms.items()}
        info.update(objects=people * len(self.models), detected=detected)
        if self.ranks.active:  # the step's figures over all ranks (the sum of the shares)
            det_all, total_all, detected_all = self.ranks.sum(
                [det.item(), total.item(), detected], self.device
            )
            info.update(det=round(det_all, 5), detected=int(detected_all), loss=total_all)
        return total, info

    def may_change(self) -> tuple[str, ...]:
        """Settings a resumed run may change: ``steps`` (to run on for longer)."""
        return ("steps",)

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
            saved = load_checkpoint(checkpoint, c.as_dict(), may_change=self.may_change())
            gen.set_state(saved["generator"])
            patch, state, opt_state = saved["patch"].to(self.device), saved["state"], saved["optimizer"]
            if self.scenes is not None:  # the street frames the interrupted run had reached
                self.scenes.restart(state["step"])
            report_resumed(progress, state["step"], c.steps)
        patch.requires_grad_(True)
        opt = torch.optim.Adam([patch], lr=c.lr)
        if opt_state is not None:
            opt.load_state_dict(opt_state)
        recent = deque(maxlen=20)  # (detected, objects) of the last steps, for the progress bar
        start = time.perf_counter() - state["seconds"]

        def save() -> None:
            state["seconds"] = time.perf_counter() - start
            save_checkpoint(
                checkpoint,
                c.as_dict(),
                patch=patch.detach().cpu(),
                state=state,
                optimizer=opt.state_dict(),
                generator=gen.get_state(),
            )

        try:
            for step in range(state["step"], c.steps):
                total, info = self.loss(patch, gen)
                opt.zero_grad()
                total.backward()
                self.ranks.sum_grads([patch])  # data parallel: the whole step's gradient on every rank
                loss_value = info.pop("loss", total.item())
                if not (math.isfinite(loss_value) and torch.isfinite(patch.grad).all()):
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
                state["history"].append({"step": step + 1, "loss": round(loss_value, 5), **info})
                state["step"] = step + 1
                if progress:
                    rate = sum(d for d, _ in recent) / max(1, sum(n for _, n in recent))
                    progress(1, f"loss {loss_value:.3f}  still detected {100 * rate:.0f}%")
                due = (step + 1) % checkpoint_every == 0 or step + 1 == c.steps
                if checkpoint is not None and due and self.ranks.main:  # rank 0 alone writes
                    save()
        except BaseException:  # Ctrl-C, out of memory, any failure: keep the steps done so far
            if checkpoint is not None and self.ranks.main:
                state["history"] = [h for h in state["history"] if h["step"] <= state["step"]]
                save()
            raise
        record = {
            "steps": c.steps,
            "seconds": round(time.perf_counter() - start, 1),
            "skipped_steps": state.get("skipped", 0),
            "history": state["history"],
        }
        return patch.detach().cpu(), record
