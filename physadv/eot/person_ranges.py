"""The ranges of the physical EOT for a patch worn on a person, as validated settings (kept free of torch so
the CLI starts fast); :mod:`physadv.eot.person_eot` draws from them and applies the draws."""

from __future__ import annotations

from dataclasses import dataclass, replace

from physadv.config import Settings, nearest, setting
from physadv.errors import PhysadvError

COMPONENTS = ("sizes", "angle", "cloth", "light", "camera", "printer")


@dataclass
class PersonEOT(Settings):
    """Ranges of the random transformations (uniform unless said) and which components are on.

    :func:`physadv.eot.person_eot.draw` draws from them; the components and what they model are
    described in :mod:`physadv.eot.person_eot`.
    """

    components: tuple[str, ...] = setting(
        COMPONENTS, "the EOT components that are on: " + ", ".join(COMPONENTS)
    )
    zoom: tuple[float, float] = setting(
        (0.5, 1.0), "sizes: photos shrunk by a factor drawn log-uniformly from this range", unit="factor"
    )
    yaw_deg: float = setting(
        60.0, "angle: |yaw| of the torso plane at most this (normal, sigma = yaw_deg / 2)", unit="deg",
        minimum=0.0, maximum=89.0,
    )  # fmt: skip
    pitch_deg: float = setting(15.0, "angle: |pitch| of the torso plane at most this", unit="deg",
                               minimum=0.0, maximum=89.0)  # fmt: skip
    tps: float = setting(
        0.03, "cloth: thin-plate-spline control points moved by this sigma", unit="fraction of the side",
        minimum=0.0, maximum=0.5,
    )  # fmt: skip
    crease: float = setting(0.3, "cloth: probability of a fold in each draw", minimum=0.0, maximum=1.0)
    crease_shade: float = setting(0.3, "cloth: the most a fold darkens its side", minimum=0.0, maximum=1.0)
    shift_m: float = setting(0.03, "cloth: the patch worn this far off the torso's centre", unit="m",
                             minimum=0.0)  # fmt: skip
    gain: tuple[float, float] = setting((0.7, 1.3), "light: gain on the patch", unit="factor")
    offset: tuple[float, float] = setting((-0.05, 0.05), "light: offset on the patch", unit="of full scale")
    kelvin: tuple[float, float] = setting((4000.0, 8000.0), "light: colour temperature", unit="K")
    shadow: tuple[float, float] = setting((0.0, 0.4), "light: depth of a soft shadow across the patch")
    motion_blur_px: tuple[float, float] = setting(
        (0.0, 2.0), "camera: motion blur length, in the detector's input pixels", unit="px"
    )
    defocus_px: tuple[float, float] = setting(
        (0.0, 0.8), "camera: defocus (Gaussian sigma), in the detector's input pixels", unit="px"
    )
    noise_std: tuple[float, float] = setting((0.0, 0.02), "camera: sensor noise sigma", unit="of full scale")
    jpeg_quality: tuple[int, int] = setting((50, 95), "camera: video-quality JPEG quality range")
    jpeg_probability: float = setting(0.3, "camera: share of frames re-encoded as JPEG", minimum=0.0,
                                      maximum=1.0)  # fmt: skip
    printer_jitter: float = setting(
        0.04, "printer: per-placement deviation of the colour transfer (ink, paper, light)", minimum=0.0
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in self.components:
            if name not in COMPONENTS:
                raise PhysadvError(f"unknown EOT component '{name}'{nearest(name, COMPONENTS)}")

    def on(self, name: str) -> bool:
        return name in self.components

    def without(self, *names: str) -> PersonEOT:
        """The same ranges with ``names`` switched off."""
        return replace(self, components=tuple(c for c in self.components if c not in names))
