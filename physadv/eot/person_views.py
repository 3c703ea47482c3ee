"""Batches of people to put a patch on — photos or rendered streets — and the views a detector sees
of them, under a :class:`~physadv.eot.person_eot.PersonEOT` draw.

Both kinds of batch carry each wearer's torso plane (:mod:`physadv.scene.wear`), so the patch lands at
its physical size through the same compositing as the renderer's: photos derive the plane from the
person's box, rendered people know theirs. A view is made in this order:

1. the patch as each placement shows it (printer, cloth, light: :func:`person_eot.patch_textures`);
2. composited on each torso plane, turned and tilted (``angle``), hidden where a nearer object covers
   it (:func:`physadv.scene.wear.composite_patches`);
3. rendered frames: the world's light and camera drawn afresh from the scene spec's ``effects``, by the
   renderer's own function (:func:`physadv.scene.effects.apply_effects`);
4. resized to the detector's input (as the detector's adapter would), then photos zoomed out
   (``sizes``), then the camera (``camera``: blur, defocus, noise, JPEG) at the detector's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from physadv.data.images import LETTERBOX_FILL
from physadv.eot import person_eot
from physadv.eot.colour import ColourTransfer
from physadv.eot.person_eot import PersonEOT
from physadv.scene.effects import EffectParams, apply_effects
from physadv.scene.wear import (
    DEFAULT_HFOV_DEG,
    PERSON_HEIGHT_M,
    TorsoPlanes,
    composite_patches,
    fit_texture,
    focal_for,
    planes_from_boxes,
)


@dataclass
class PersonFrames:
    """Frames with the people a patch goes on.

    Attributes:
        images: ``[B, 3, H, W]`` RGB in [0, 1].
        boxes, valid: ``[B, K, 4]`` xyxy pixels and ``[B, K]``: the people the detector is judged on.
        planes: the torso planes of the ``N`` wearers; owner ``[N]``: their frame, far to near within it.
        rank_map, ranks: occlusion (see :func:`physadv.scene.wear.composite_patches`); None for photos.
        effects: rendered frames: one draw of the world's light and camera per frame; None for photos.
    """

    images: torch.Tensor
    boxes: torch.Tensor
    valid: torch.Tensor
    planes: TorsoPlanes
    owner: torch.Tensor
    rank_map: torch.Tensor | None = None
    ranks: torch.Tensor | None = None
    effects: list[EffectParams] | None = None

    @property
    def photos(self) -> bool:
        return self.effects is None


def photo_frames(
    images: torch.Tensor,
    boxes: torch.Tensor,
    valid: torch.Tensor,
    hfov_deg: float = DEFAULT_HFOV_DEG,
    person_height_m: float = PERSON_HEIGHT_M,
) -> PersonFrames:
    """Letterboxed photos (``[B, 3, S, S]``, the photo centred) whose people wear the patch on the torso
    plane their box implies; the photo's long side (the canvas side) spans ``hfov_deg``."""
    s = images.shape[-1]
    owner = torch.arange(len(images), device=valid.device)[:, None].expand_as(valid)[valid]
    principal = boxes.new_tensor([s / 2, s / 2])
    planes = planes_from_boxes(boxes[valid], focal_for(s, hfov_deg), principal, person_height_m)
    return PersonFrames(images, boxes, valid, planes, owner)


def wear(
    patch: torch.Tensor,
    frames: PersonFrames,
    params: dict,
    eot: PersonEOT,
    size_m: float,
    transfer: ColourTransfer | None = None,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """Steps 1–2: the frames with the patch on every wearer (before the world's effects)."""
    if not len(frames.planes):
        return frames.images
    dev = frames.images.device
    planes = frames.planes.to(dev)
    quads = planes.quads(size_m, params["yaw"].to(dev), params["pitch"].to(dev), params["shift"].to(dev))
    patch = fit_texture(patch.to(dev), quads)
    alpha = None if alpha is None else fit_texture(alpha.to(dev), quads)
    rgba = person_eot.patch_textures(patch, params, transfer, alpha)
    return composite_patches(frames.images, rgba, quads, frames.owner, frames.rank_map, frames.ranks)


def to_input(
    frames: torch.Tensor, boxes: torch.Tensor, imgsz: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize so the long side is ``imgsz`` exactly as the detector's adapter does (bilinear), so the
    camera's effects act on the pixels the detector sees; boxes follow."""
    h, w = frames.shape[-2:]
    if imgsz is None or max(h, w) == imgsz:
        return frames, boxes
    scale = imgsz / max(h, w)
    size = (round(h * scale), round(w * scale))
    resized = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
    return resized, boxes * boxes.new_tensor([size[1] / w, size[0] / h] * 2)


def views(
    patch: torch.Tensor | None,
    frames: PersonFrames,
    params: dict,
    eot: PersonEOT,
    size_m: float,
    imgsz: int | None,
    transfer: ColourTransfer | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frames as the detector gets them (steps 1–4) and the judged boxes in their pixels.
    ``patch`` None: the clean frames under the same world and camera."""
    x = frames.images if patch is None else wear(patch, frames, params, eot, size_m, transfer)
    if frames.effects is not None:
        x = torch.cat([apply_effects(x[i : i + 1], e, generator) for i, e in enumerate(frames.effects)])
    x, boxes = to_input(x, frames.boxes, imgsz)
    if frames.photos and eot.on("sizes"):
        x, boxes = person_eot.zoom_out(x, boxes, params, LETTERBOX_FILL)
    if eot.on("camera"):
        x = person_eot.camera(x, params)
    return x, boxes
