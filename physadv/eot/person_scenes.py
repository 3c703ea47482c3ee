"""Rendered streets to optimise a person patch in: a pool of frames drawn from a scene spec, with each
person's torso plane and the occlusion the renderer saw, refreshed while the attack runs.

Frames are rendered before their effects (:func:`physadv.scene.render.draw_shot`); every time a frame
is used, the world's light and camera are drawn afresh from the spec's ``effects`` ranges, and after
each batch the oldest ``refresh`` frames are replaced by new renders. Frames come from seeds of their
own (``seed``), never the spec's: a replay of the spec stays held out. A training pool may be rendered
at the detector's input resolution (``long_side``): the pixels the detector would see after its own
resize, at a quarter of the cost for a 640-pixel camera and a 320-pixel detector.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import numpy as np
import torch

from physadv.eot.person_views import PersonFrames
from physadv.errors import PhysadvError
from physadv.scene.backgrounds import ground_map, make_backdrop
from physadv.scene.effects import draw_effects
from physadv.scene.render import MIN_VISIBLE, SHOTS, draw_shot
from physadv.scene.wear import TorsoPlanes

GROUND_EVERY = 16  # frames that share one ground map (drawing one takes seconds)


@dataclass
class _Item:
    image: torch.Tensor  # [3, H, W] uint8, no effects
    rank_map: torch.Tensor  # [H, W] int8
    ranks: torch.Tensor  # [N]
    planes: TorsoPlanes
    boxes: torch.Tensor  # [M, 4] the people seen enough to be judged, xyxy pixels
    heights: torch.Tensor  # [M] their box heights, pixels


def at_resolution(spec: dict, long_side: int | None) -> dict:
    """The spec's camera with its long side at ``long_side`` pixels (the detector's input: what it sees
    of a frame after its own resize), blur lengths scaled with it; the spec itself if that is no smaller.
    The same world (people, distances, light) drawn with fewer pixels; the draws themselves differ (a
    person's cloth grain has as many random numbers as pixels)."""
    cam = spec["camera"]
    if long_side is None or long_side >= max(cam["width"], cam["height"]):
        return spec
    scale = long_side / max(cam["width"], cam["height"])
    out = copy.deepcopy(spec)
    out["camera"].update(width=round(cam["width"] * scale), height=round(cam["height"] * scale))
    blur = out["effects"]["motion_blur_px"]
    out["effects"]["motion_blur_px"] = [v * scale for v in blur] if isinstance(blur, list) else blur * scale
    return out


@functools.lru_cache(maxsize=2)
def _ground(seed: int, block: int) -> np.ndarray:
    return ground_map(np.random.default_rng([seed, block, 10**6]))


class ScenePeople:
    """A pool of ``pool`` frames of a validated ``pedestrians`` spec, ``refresh`` renewed per batch (0.5:
    one every other batch)."""

    def __init__(
        self,
        spec: dict,
        pool: int = 32,
        refresh: float = 1.0,
        seed: int = 0,
        progress=None,
        long_side: int | None = None,
    ):
        if spec["kind"] != "pedestrians":
            raise PhysadvError(
                f"--scene needs a scene with people (kind: pedestrians); this one is a '{spec['kind']}' scene"
            )
        self.spec, self.size, self.refresh, self.seed = at_resolution(spec, long_side), pool, refresh, seed
        self.restart(0, progress)
        if not self.objects:
            raise PhysadvError("the scene's frames show no person clearly enough to attack")

    def restart(self, batches: int, progress=None) -> None:
        """The pool as it stands after ``batches`` batches (frame ``k`` always lives in slot ``k % pool``)."""
        first = int(batches * self.refresh)
        self.credit = batches * self.refresh - first
        self.items = [None] * self.size
        for k in range(first, first + self.size):
            self.items[k % self.size] = self._render(k)
            if progress:
                progress()
        self.next_index = first + self.size

    def _render(self, k: int) -> _Item:
        rng = np.random.default_rng([self.seed, 7919, k])
        backdrop = make_backdrop(rng, _ground(self.seed, k // GROUND_EVERY))
        shots = SHOTS["pedestrians"](self.spec, rng)
        for _ in range(int(rng.integers(self.spec["pedestrians"]["frames"]))):
            next(shots)
        layers, truths = draw_shot(next(shots), backdrop)
        judged = [t for t in truths if t.class_name == "person" and t.visible >= MIN_VISIBLE]
        boxes = torch.tensor([t.box for t in judged], dtype=torch.float32).reshape(-1, 4)
        return _Item(
            (layers.frame[0] * 255).round().to(torch.uint8),
            layers.rank_map[0].to(torch.int8),
            layers.ranks,
            layers.planes,
            boxes,
            boxes[:, 3] - boxes[:, 1],
        )

    @property
    def objects(self) -> int:
        return sum(len(i.boxes) for i in self.items)

    def __len__(self) -> int:
        return len(self.items)

    def frames(self, index: list[int], device, rng: np.random.Generator | None = None) -> PersonFrames:
        """The pool's frames ``index`` as a batch; their effects drawn from ``rng`` (None: each frame's
        own fixed draw, for judging)."""
        items = [self.items[i] for i in index]
        k = max(1, max(len(i.boxes) for i in items))
        boxes, valid = torch.zeros(len(items), k, 4), torch.zeros(len(items), k, dtype=torch.bool)
        for row, item in enumerate(items):
            boxes[row, : len(item.boxes)], valid[row, : len(item.boxes)] = item.boxes, True
        effects = [
            draw_effects(rng or np.random.default_rng([self.seed, 104729, i]), self.spec["effects"])
            for i in index
        ]
        owner = torch.cat([torch.full((len(i.ranks),), row, dtype=torch.long) for row, i in enumerate(items)])
        return PersonFrames(
            torch.stack([i.image for i in items]).to(device).float() / 255,
            boxes.to(device),
            valid.to(device),
            TorsoPlanes.cat([i.planes for i in items]),
            owner.to(device),
            torch.stack([i.rank_map for i in items]).to(device).long(),
            torch.cat([i.ranks for i in items]).to(device),
            effects,
        )

    def batch(self, count: int, generator: torch.Generator, device) -> PersonFrames:
        """``count`` random frames with fresh effects; then the oldest ``refresh`` frames are re-rendered."""
        index = torch.randint(len(self.items), (count,), generator=generator).tolist()
        rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator)))
        frames = self.frames(index, device, rng)
        self.credit += self.refresh
        while self.credit >= 1 - 1e-9:
            self.items[self.next_index % self.size] = self._render(self.next_index)
            self.next_index += 1
            self.credit -= 1
        return frames
