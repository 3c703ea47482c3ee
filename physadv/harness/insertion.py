"""Artefacts put into recorded footage, so a sticker or a patch can be judged on a user's own video
before it is printed.

Stickers go onto the sign in every frame through that frame's corners (its homography), relit to
the frame — the per-channel gain and offset and the blur fitted between the sign's reference face
and its observed pixels outside the sticker (:mod:`physadv.scene.relight`) — with the frame's noise
level added and a JPEG round trip (:data:`CODEC_QUALITY`) around it, and warped with the renderer's
own :func:`physadv.scene.compose.warp_texture`.
Patches go onto every person box (:func:`place_patch_on_people`) in the one geometry physadv uses for
people everywhere, :mod:`physadv.scene.wear` (torso plane from the box, patch at its physical size).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from physadv.artefact import Artefact
from physadv.data.groundtruth import GroundTruth, GtObject
from physadv.harness.sources import Frame
from physadv.models.classes import ClassNames
from physadv.scene.compose import warp_texture
from physadv.scene.effects import jpeg_each
from physadv.scene.relight import blur, fit_light, noise_level, occluded
from physadv.scene.render import FACE_PX_PER_MM, sticker_layer
from physadv.scene.signs import render_face
from physadv.scene.wear import DEFAULT_HFOV_DEG, quads_on_boxes, wear_on_boxes

PERSON_HEIGHT_M = 1.7
CODEC_QUALITY = 90  # JPEG quality the inserted sticker's pixels are compressed at (a camera's codec)


def _window(corners: torch.Tensor, shape: tuple[int, int], margin: int) -> tuple[int, int, int, int]:
    x0, y0 = (int(v) for v in (corners.min(0).values - margin).floor().clamp(min=0))
    x1 = int(min(shape[1], float(corners[:, 0].max().ceil()) + margin))
    y1 = int(min(shape[0], float(corners[:, 1].max().ceil()) + margin))
    return x0, y0, x1, y1


def insert_sticker(
    image: torch.Tensor, sticker: Artefact, corners, sign: str, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, dict]:
    """Put ``sticker`` (an artefact spanning the sign face) onto the sign at ``corners`` in ``image``.

    Shape:
        - image: ``[3, H, W]`` RGB in [0, 1]; corners: ``[4, 2]`` frame pixels (TL, TR, BR, BL of the face)
        - returns: the new image and what was fitted (gain, offset, blur, noise; ``relit`` False when
          the sign showed too little of itself outside the sticker to fit, and the sticker went in as is)
    """
    corners = torch.as_tensor(np.asarray(corners, np.float32))
    x0, y0, x1, y1 = _window(corners, image.shape[-2:], margin=12)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return image, {"relit": False, "inserted": False}
    window = image[:, y0:y1, x0:x1]
    local = (corners - corners.new_tensor([x0, y0]))[None]
    face = torch.from_numpy(np.array(render_face(sign, FACE_PX_PER_MM))).permute(2, 0, 1)
    size = tuple(window.shape[-2:])
    face_rgb, face_alpha = warp_texture(face[None], local, size)
    stick_rgb, stick_alpha = warp_texture(sticker_layer(face, sticker)[None], local, size)
    # fit on the sign's own pixels, a pixel away from its edge and from the stickers
    usable = (face_alpha > 0.98) & (F.max_pool2d(stick_alpha, 3, 1, 1) < 0.02)
    usable = usable & (F.max_pool2d((face_alpha <= 0.98).float(), 3, 1, 1) == 0)
    light = fit_light(window, face_rgb[0], face_alpha[0], usable[0])
    noise = noise_level(window)
    if light is not None:
        gain, offset, sigma = light.gain, light.offset, light.blur_px
    else:
        gain, offset, sigma = torch.ones(3), torch.zeros(3), 0.0
    if light is not None:  # what stands in front of the sign stays in front of the sticker
        front = 1 - occluded(window, face_rgb[0], face_alpha[0], light)[None].float()
        stick_alpha, stick_rgb = stick_alpha * front, stick_rgb * front
    rgb = gain.view(1, 3, 1, 1) * stick_rgb + offset.view(1, 3, 1, 1) * stick_alpha  # premultiplied
    rgb = torch.minimum(rgb.clamp(min=0), stick_alpha)
    layer = blur(torch.cat([rgb, stick_alpha], 1), sigma)
    grain = torch.randn(window.shape, generator=generator) * noise
    inserted = (window * (1 - layer[0, 3:]) + layer[0, :3] + grain * layer[0, 3:]).clamp(0, 1)
    # the sticker's pixels (and a ring around them) go through a camera's codec, as the recording's did
    near = F.max_pool2d((layer[:, 3:] > 0.01).float(), 9, 1, 4)[0]
    coded = jpeg_each([inserted[None]], [CODEC_QUALITY])[0][0]
    out = image.clone()
    out[:, y0:y1, x0:x1] = inserted * (1 - near) + coded * near
    fit = {"relit": light is not None, "inserted": True, "noise_std": round(noise, 4)}
    return out, fit | (light.as_dict() if light else {})


def patch_corners_on_person(
    box,
    size_mm: tuple[float, float],
    person_height_m: float = PERSON_HEIGHT_M,
    image_size: tuple[int, int] | None = None,
    hfov_deg: float = DEFAULT_HFOV_DEG,
) -> torch.Tensor:
    """``[4, 2]`` corners (TL, TR, BR, BL, pixels) of a patch of ``size_mm`` worn upright on the
    torso of a person of ``person_height_m`` whose box is ``box`` (x1, y1, x2, y2 pixels), by
    :func:`physadv.scene.wear.quads_on_boxes`: the box height gives the scale, the patch is centred
    across the box at :data:`physadv.scene.wear.TORSO_Y` of its height below the top. ``image_size``
    (H, W): the frame (None: a frame centred on the box, where the plane faces the camera)."""
    box = torch.as_tensor([float(v) for v in box])
    if image_size is None:
        image_size = (2 * float(box[1::2].mean()), 2 * float(box[0::2].mean()))
    return quads_on_boxes(box[None], image_size, size_mm, hfov_deg, person_height_m)[0]


def place_patch_on_people(
    image: torch.Tensor, patch: Artefact, boxes, person_height_m: float = PERSON_HEIGHT_M
) -> torch.Tensor:
    """Put ``patch`` (at its physical size, ``patch.size_mm``) on every person box in ``image``.

    The one place a real frame's patch geometry is decided, delegated to the placement every person
    patch in physadv shares (:func:`physadv.scene.wear.wear_on_boxes`): the patch held straight on the
    torso plane the box implies (the box spans ``person_height_m``), composited with the patch's alpha.

    Shape:
        - image: ``[3, H, W]`` RGB in [0, 1]; boxes: ``[N, 4]`` xyxy pixels
        - returns: ``[3, H, W]``
    """
    boxes = [[float(v) for v in b] for b in boxes if float(b[3]) - float(b[1]) >= 8]
    if not boxes:
        return image
    alpha = torch.ones(1, *patch.image.shape[-2:]) if patch.alpha is None else patch.alpha
    rgba = torch.cat([patch.image, alpha])
    return wear_on_boxes(image, rgba, boxes, patch.size_mm, person_height_m=person_height_m)


def _is_person(obj: GtObject, unnamed: bool = False) -> bool:
    return ClassNames.same(obj.class_name, "person") if obj.class_name else unnamed


class InsertedSource:
    """A recording with artefacts put in: the ``sticker`` on every sign the ground truth gives
    corners for, the ``patch`` on every person of ``people`` (ground truth, or detections linked
    over time). Frames, timestamps and unreadable frames are the recording's own."""

    def __init__(
        self,
        base,
        truth: GroundTruth | None,
        sticker: Artefact | None = None,
        sign: str = "stop",
        patch: Artefact | None = None,
        people: GroundTruth | None = None,
        person_height_m: float = PERSON_HEIGHT_M,
    ):
        self.base, self.truth, self.sticker, self.sign = base, truth or {}, sticker, sign
        self.patch, self.people, self.person_height_m = patch, people or {}, person_height_m
        self.kind, self.fps, self.expected = base.kind, base.fps, base.expected
        self.fits: list[dict] = []

    @property
    def unread(self):
        return self.base.unread  # the base's own, renewed by each reading

    @property
    def warnings(self) -> list[str]:
        return list(getattr(self.base, "warnings", []))

    def _signs(self, objects: list[GtObject]) -> list[GtObject]:
        return [o for o in objects if o.corners is not None and not _is_person(o)]

    def frames(self) -> Iterator[Frame]:
        generator = torch.Generator().manual_seed(0)
        for frame in self.base.frames():
            image = frame.image
            if self.sticker is not None:
                for obj in self._signs(self.truth.get(frame.index, [])):
                    image, fit = insert_sticker(image, self.sticker, obj.corners, self.sign, generator)
                    self.fits.append(fit)
            if self.patch is not None:
                boxes = [o.box for o in self.people.get(frame.index, []) if _is_person(o, unnamed=True)]
                image = place_patch_on_people(image, self.patch, boxes, self.person_height_m)
            yield replace(frame, image=image, bgr=None)

    def summary(self) -> dict:
        """What the insertion did, for ``metrics.json``."""
        out: dict = {}
        if self.sticker is not None:
            relit = [f for f in self.fits if f.get("relit")]
            out["sticker_frames"] = sum(f.get("inserted", False) for f in self.fits)
            out["relit_frames"] = len(relit)
            if relit:
                out["gain_median"] = np.median([f["gain"] for f in relit], 0).round(3).tolist()
                out["offset_median"] = np.median([f["offset"] for f in relit], 0).round(3).tolist()
                out["blur_px_median"] = float(np.median([f["blur_px"] for f in relit]))
                out["noise_std_median"] = round(float(np.median([f["noise_std"] for f in relit])), 4)
        if self.patch is not None:
            out["patch_people_frames"] = sum(len(v) for v in self.people.values())
            out["person_height_m"] = self.person_height_m
        return out
