"""Patches put on the people of photos for the patch detectors' training sets (SAC's segmenter, Ad-YOLO's
patch class), through the patch attack's own placement — the torso plane each person's box implies, at
the patch's physical size, under the physical EOT (:mod:`physadv.eot.person_views`) — and where each
patch landed: its quad, its pixel mask and its box.

The geometry and light of a draw are the attack's; the camera's blur, noise and JPEG act on the whole
frame afterwards (they move no pixel). The returned quads (and so Ad-YOLO's patch boxes) leave out
the cloth's small folds; the returned cover does not.
"""

from __future__ import annotations

import torch

from physadv.eot import person_eot
from physadv.eot.person_eot import PersonEOT, draw, straight
from physadv.eot.person_views import PersonFrames, wear
from physadv.scene.wear import DEFAULT_HFOV_DEG, focal_for, planes_from_boxes


def wear_on_people(
    images: torch.Tensor,
    boxes: torch.Tensor,
    worn: torch.Tensor,
    patch: torch.Tensor,
    size_m: float,
    generator: torch.Generator | None,
    eot: PersonEOT | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``images`` with ``patch`` on the ``worn`` people under a random EOT draw (``generator`` None:
    held straight); each placed patch's ``[N, 4, 2]`` pixel quad; and ``[B, 1, H, W]`` float cover,
    1 where a patch covers at least half a pixel (the same draw composited white on black, its light
    and printer left out, so folds and turns are in it).

    Shape: images ``[B, 3, H, W]`` RGB in [0, 1]; boxes ``[B, K, 4]`` xyxy pixels; worn ``[B, K]`` bool;
    patch ``[3, p, p]``. The camera's long side spans 60° (the attack's assumption for photos)."""
    eot = eot or PersonEOT()
    h, w = images.shape[-2:]
    dev = images.device
    owner = torch.arange(len(images), device=worn.device)[:, None].expand_as(worn)[worn]
    principal = boxes.new_tensor([w / 2, h / 2])
    planes = planes_from_boxes(boxes[worn].float(), focal_for(max(h, w), DEFAULT_HFOV_DEG), principal)
    if not len(planes):
        return images, torch.zeros(0, 4, 2, device=dev), torch.zeros_like(images[:, :1])
    frames = PersonFrames(images, boxes, worn, planes, owner)
    if generator is None:
        params = straight(len(planes), len(images))
    else:
        params = draw(eot, len(planes), len(images), generator)
    out = wear(patch, frames, params, eot, size_m)
    if generator is not None and eot.on("camera"):
        out = person_eot.camera(out, params)
    plain = person_eot.neutral(dict(params), ["light", "printer"])  # the same draw, unlit
    black = PersonFrames(torch.zeros_like(images), boxes, worn, planes, owner)
    cover = wear(torch.ones_like(patch), black, plain, eot, size_m).mean(dim=1, keepdim=True) > 0.5
    shift = params["shift"].to(dev)
    quads = planes.to(dev).quads(size_m, params["yaw"].to(dev), params["pitch"].to(dev), shift)
    return out.clamp(0, 1), quads, cover.float()


def quad_boxes(quads: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[N, 4]`` xyxy pixels: each quad's box, clipped to an image of ``size`` (H, W)."""
    h, w = size
    low, high = quads.amin(dim=1), quads.amax(dim=1)
    limit = quads.new_tensor([w, h])
    return torch.cat([low.clamp(min=0), torch.minimum(high, limit)], dim=1)
