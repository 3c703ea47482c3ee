"""Physical Expectation over Transformation for a patch worn on a person.

What makes printed patches fail in the world (Thys et al. 2019; the Full-Distance Attack, 2024;
AdvReal, 2025), each a component that can be switched off (:data:`COMPONENTS`) and measured
(``bench/patch_eot_ablation.py``):

- ``sizes``: the sizes the person is seen at. Photos are zoomed out (the frame shrunk and padded) so
  their people appear as small as people standing further away; rendered streets show people where
  they stand, 2–20 m from the camera, and need no zoom.
- ``angle``: the torso plane turned by up to ±``yaw_deg`` (a person turning; normal around facing the
  camera, σ = ``yaw_deg``/2) and tilted by up to ±``pitch_deg`` (a camera above or below), in 3D on
  the plane of :mod:`physadv.scene.wear`.
- ``cloth``: thin-plate-spline warps of the sheet (Kornia's ``get_tps_transform`` and
  ``warp_points_tps``: a 4×4 grid of control points moved by σ = ``tps`` of the side), a fold that
  shades one side and darkens along its line, and the patch worn a few centimetres off the torso's
  centre (``shift_m``).
- ``light``: gain and offset of the light on the patch, its colour temperature, and a soft shadow
  across the patch.
- ``camera``: motion blur, defocus, sensor noise and video-quality JPEG on the frame the detector sees.
- ``printer``: the printer's colour transfer (a calibration, or :meth:`ColourTransfer.typical_print`)
  with per-placement deviations of ±``printer_jitter`` (ink, paper and light differ from the chart).

Draws are sampled once (:meth:`PersonEOT.draw`) and applied deterministically, so a draw can be logged
and replayed; :meth:`PersonEOT.straight` is the patch held straight (no component).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.geometry import create_meshgrid
from kornia.geometry.transform import get_tps_transform, warp_points_tps

from physadv.eot.colour import ColourTransfer, clamp_straight_through
from physadv.eot.person_ranges import COMPONENTS, PersonEOT
from physadv.scene.effects import jpeg_batches, kelvin_to_rgb_gain

TPS_GRID = 4  # control points per side
TPS_EVAL = 17  # points per side where the spline is evaluated (then interpolated)
CAMERA_KERNEL = 11  # camera kernels' side: holds a 2 px motion blur with a 0.8 px defocus and their tails


def _kelvin_gains(kelvin: torch.Tensor) -> torch.Tensor:
    return torch.tensor([kelvin_to_rgb_gain(float(k)) for k in kelvin]).view(-1, 3)


def draw(eot: PersonEOT, places: int, frames: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Parameters of ``eot`` for ``places`` placements on ``frames`` frames (CPU tensors); components
    that are off get neutral values, so a draw has the same keys (and consumes the same random numbers)
    whatever is switched on."""
    n, b, g = places, frames, generator

    def uniform(low, high, *shape, count=n):
        return torch.rand(count, *shape, generator=g) * (high - low) + low

    p = {
        "yaw": (torch.randn(n, generator=g) * eot.yaw_deg / 2).clamp(-eot.yaw_deg, eot.yaw_deg),
        "pitch": uniform(-eot.pitch_deg, eot.pitch_deg),
        "tps": torch.randn(n, TPS_GRID * TPS_GRID, 2, generator=g) * eot.tps * 2,
        "crease": (torch.rand(n, generator=g) < eot.crease).float(),
        "crease_angle": uniform(0, math.pi),
        "crease_offset": uniform(-0.4, 0.4),
        "crease_shade": uniform(0.0, eot.crease_shade),
        "shift": uniform(-eot.shift_m, eot.shift_m, 2),
        "gain": uniform(*eot.gain),
        "offset": uniform(*eot.offset),
        "kelvin": _kelvin_gains(uniform(*eot.kelvin)),
        "shadow": uniform(*eot.shadow),
        "shadow_angle": uniform(0, 2 * math.pi),
        "shadow_offset": uniform(-0.5, 0.5),
        "printer_gain": uniform(1 - eot.printer_jitter, 1 + eot.printer_jitter, 3),
        "printer_offset": uniform(-eot.printer_jitter / 2, eot.printer_jitter / 2, 3),
        "zoom": torch.exp(uniform(math.log(eot.zoom[0]), math.log(eot.zoom[1]), count=b)),
        "zoom_at": uniform(0, 1, 2, count=b),
        "motion_blur": uniform(*eot.motion_blur_px, count=b),
        "motion_angle": uniform(0, math.pi, count=b),
        "defocus": uniform(*eot.defocus_px, count=b),
        "noise": uniform(*eot.noise_std, count=b),
        "noise_seed": torch.randint(2**31, (b,), generator=g),
        "jpeg": torch.where(
            torch.rand(b, generator=g) < eot.jpeg_probability,
            torch.randint(eot.jpeg_quality[0], eot.jpeg_quality[1] + 1, (b,), generator=g),
            torch.zeros(b, dtype=torch.long),
        ),
    }
    return neutral(p, [c for c in COMPONENTS if not eot.on(c)])


FRAME_KEYS = ("zoom", "zoom_at", "motion_blur", "motion_angle", "defocus", "noise", "noise_seed", "jpeg")


def share_of_draw(p: dict, frames: slice, places: slice) -> dict:
    """The part of a draw (:func:`draw`) for some frames and the placements on them (a torchrun rank's
    share of a step: every rank draws the whole step, so all consume the same random numbers)."""
    out = {}
    for key, value in p.items():
        if value.dim() == 0:
            out[key] = value
        else:
            out[key] = value[frames] if key in FRAME_KEYS else value[places]
    return out


def neutral(p: dict, off: list[str]) -> dict:
    """The draw ``p`` with the components named in ``off`` set to their no-effect values (in place:
    pass a copy to keep ``p``); e.g. the same placement unlit and unprinted."""
    keys = {
        "angle": {"yaw": 0.0, "pitch": 0.0},
        "cloth": {"tps": 0.0, "crease": 0.0, "shift": 0.0},
        "light": {"gain": 1.0, "offset": 0.0, "kelvin": 1.0, "shadow": 0.0},
        "camera": {"motion_blur": 0.0, "defocus": 0.0, "noise": 0.0, "jpeg": 0},
        "printer": {"printer_gain": 1.0, "printer_offset": 0.0},
        "sizes": {"zoom": 1.0},
    }
    for name in off:
        for key, value in keys[name].items():
            p[key] = torch.full_like(p[key], value)
    p["printer_off"] = torch.tensor(float("printer" in off))
    return p


def straight(places: int, frames: int) -> dict[str, torch.Tensor]:
    """The patch held straight: every component off (the printer too)."""
    return draw(PersonEOT(components=()), places, frames, torch.Generator().manual_seed(0))


def print_colours(patch: torch.Tensor, p: dict, transfer: ColourTransfer | None) -> torch.Tensor:
    """``[N, 3, h, w]`` printed colours of ``patch`` (``[3, h, w]``) for each placement: the transfer
    (``transfer``, or the typical print when the printer component is on and none is given) and each
    placement's deviation from it."""
    n = len(p["gain"])
    if transfer is None and not bool(p["printer_off"]):
        transfer = ColourTransfer.typical_print()
    x = (transfer(patch) if transfer is not None else patch)[None].expand(n, -1, -1, -1)
    dev = patch.device
    return x * p["printer_gain"].to(dev)[:, :, None, None] + p["printer_offset"].to(dev)[:, :, None, None]


def cloth(rgba: torch.Tensor, p: dict) -> torch.Tensor:
    """Thin-plate-spline warp of each ``[N, 4, h, w]`` sheet and a fold's shading (alpha warps too)."""
    n, dev = len(rgba), rgba.device
    tps = p["tps"].to(dev)
    if tps.abs().max() > 0:
        line = torch.linspace(-1, 1, TPS_GRID, device=dev)
        src = torch.stack(torch.meshgrid(line, line, indexing="xy"), dim=-1).view(1, -1, 2).expand(n, -1, -1)
        kernel, affine = get_tps_transform(src + tps, src)
        # the spline is smooth: evaluate it on a coarse grid and interpolate (as warp_image_tps would,
        # at a fraction of the cost), then sample the sheet once
        coarse = create_meshgrid(TPS_EVAL, TPS_EVAL, normalized_coordinates=True, device=dev).reshape(
            1, -1, 2
        )
        warped = warp_points_tps(coarse.expand(n, -1, -1), src + tps, kernel, affine)
        h, w = rgba.shape[-2:]
        grid = warped.view(n, TPS_EVAL, TPS_EVAL, 2).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=True).permute(0, 2, 3, 1)
        rgba = F.grid_sample(rgba, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    if p["crease"].max() > 0:
        h, w = rgba.shape[-2:]
        yy, xx = torch.meshgrid(
            torch.linspace(-0.5, 0.5, h, device=dev), torch.linspace(-0.5, 0.5, w, device=dev), indexing="ij"
        )
        a, off = p["crease_angle"].to(dev).view(n, 1, 1), p["crease_offset"].to(dev).view(n, 1, 1)
        d = xx * torch.cos(a) + yy * torch.sin(a) - off
        shade = (p["crease"] * p["crease_shade"]).to(dev).view(n, 1, 1)
        factor = 1 - shade * (torch.sigmoid(d * 40) + torch.exp(-((d / 0.015) ** 2)))
        rgba = torch.cat([rgba[:, :3] * factor.clamp(min=0)[:, None], rgba[:, 3:]], dim=1)
    return rgba


def light(rgb: torch.Tensor, p: dict) -> torch.Tensor:
    """Gain, offset, colour temperature and a soft shadow edge across each ``[N, 3, h, w]`` patch."""
    n, dev = len(rgb), rgb.device
    gain = p["gain"].to(dev).view(n, 1, 1, 1) * p["kelvin"].to(dev).view(n, 3, 1, 1)
    x = rgb * gain + p["offset"].to(dev).view(n, 1, 1, 1)
    if p["shadow"].max() > 0:
        h, w = rgb.shape[-2:]
        yy, xx = torch.meshgrid(
            torch.linspace(-1, 1, h, device=dev), torch.linspace(-1, 1, w, device=dev), indexing="ij"
        )
        a, off = p["shadow_angle"].to(dev).view(n, 1, 1), p["shadow_offset"].to(dev).view(n, 1, 1)
        edge = torch.sigmoid((xx * torch.cos(a) + yy * torch.sin(a) - off) * 12)
        x = x * (1 - p["shadow"].to(dev).view(n, 1, 1) * edge)[:, None]
    return x


def patch_textures(
    patch: torch.Tensor, p: dict, transfer: ColourTransfer | None = None, alpha: torch.Tensor | None = None
) -> torch.Tensor:
    """``[N, 4, h, w]`` RGBA of the patch as each placement shows it: printed, deformed, lit.

    Shape: patch ``[3, h, w]`` intended colours in [0, 1]; alpha ``[1, h, w]`` or None (all printed)."""
    rgb = print_colours(patch, p, transfer)
    a = torch.ones_like(rgb[:, :1]) if alpha is None else alpha.to(rgb)[None].expand(len(rgb), -1, -1, -1)
    rgba = cloth(torch.cat([rgb, a], dim=1), p)
    rgb = clamp_straight_through(light(rgba[:, :3], p))
    return torch.cat([rgb, rgba[:, 3:].clamp(0, 1)], dim=1)


def zoom_out(
    frames: torch.Tensor, boxes: torch.Tensor, p: dict, fill: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shrink each ``[B, 3, H, W]`` frame by its ``zoom`` (antialiased) and pad it with ``fill`` at a
    random place, as if its people stood further away; boxes ``[B, K, 4]`` follow."""
    out, moved = [], []
    h, w = frames.shape[-2:]
    for i in range(len(frames)):
        s = float(p["zoom"][i])
        if s >= 0.999:
            out.append(frames[i])
            moved.append(boxes[i])
            continue
        nh, nw = max(8, round(h * s)), max(8, round(w * s))
        small = F.interpolate(frames[i : i + 1], size=(nh, nw), mode="bilinear", antialias=True)[0]
        top, left = int(float(p["zoom_at"][i, 1]) * (h - nh)), int(float(p["zoom_at"][i, 0]) * (w - nw))
        out.append(F.pad(small, (left, w - nw - left, top, h - nh - top), value=fill))
        moved.append(boxes[i] * boxes.new_tensor([nw / w, nh / h] * 2) + boxes.new_tensor([left, top] * 2))
    return torch.stack(out), torch.stack(moved)


def _camera_kernels(p: dict, dev) -> torch.Tensor | None:
    """``[B, 1, k, k]`` motion-blur-then-defocus kernels (None if every frame is sharp). Each frame's
    kernel depends on its own draw alone (a fixed size, a sharp frame's kernel the identity), so a frame
    looks the same whatever else is in its batch — as torchrun's ranks, which split batches, need."""
    length, angle, sigma = p["motion_blur"], p["motion_angle"], p["defocus"]
    sharp = (length < 0.5) & (sigma < 0.3)
    if bool(sharp.all()):
        return None
    k = CAMERA_KERNEL
    r = torch.arange(k, dtype=torch.float32) - k // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    # all frames at once, each with its own scalars (rounded to float32 as a Python float would be)
    c, s = (v.float().view(-1, 1, 1) for v in (angle.double().cos(), angle.double().sin()))
    along, across = xx * c + yy * s, -xx * s + yy * c
    half = (length.double() / 2).float().view(-1, 1, 1)
    spread = sigma.double().clamp(min=0.35)  # a blurred frame's kernel is at least a pixel wide
    dist = torch.clamp(along.abs() - half, min=0) ** 2 + across**2
    kernel = torch.exp(-dist / (2 * spread**2).float().view(-1, 1, 1))
    kernel = kernel / kernel.flatten(1).sum(1).view(-1, 1, 1)
    identity = ((xx == 0) & (yy == 0)).float()
    return torch.where(sharp.view(-1, 1, 1), identity, kernel)[:, None].to(dev)


def camera(frames: torch.Tensor, p: dict) -> torch.Tensor:
    """Motion blur, defocus, sensor noise and JPEG (real codec, straight-through gradient) per frame."""
    b, c, h, w = frames.shape
    kernels = _camera_kernels(p, frames.device)
    x = frames
    if kernels is not None:
        pad = kernels.shape[-1] // 2
        weight = kernels.to(frames).repeat_interleave(c, dim=0)
        padded = F.pad(x, (pad,) * 4, mode="replicate").reshape(1, b * c, h + 2 * pad, w + 2 * pad)
        x = F.conv2d(padded, weight, groups=b * c).view(b, c, h, w)
    if float(p["noise"].max()) > 0:
        noise = torch.stack(
            [torch.randn(c, h, w, generator=torch.Generator().manual_seed(int(s))) for s in p["noise_seed"]]
        )
        x = x + noise.to(x) * p["noise"].to(x).view(b, 1, 1, 1)
    x = clamp_straight_through(x)
    return jpeg_batches([x], [p["jpeg"].tolist()])[0]
