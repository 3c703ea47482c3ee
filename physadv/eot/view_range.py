"""Where EOT views of a sign are drawn from (kept free of torch so the CLI starts fast)."""

from __future__ import annotations

from dataclasses import dataclass

from physadv.config import Settings, setting


@dataclass
class ViewRange(Settings):
    """Where views are drawn from (uniform in each range; distance log-uniform).

    Covers RP2's lab table (5–40 ft, 0–30°) and a drive-by (50 ft to 5 ft) with margin.
    """

    distance_ft: tuple[float, float] = setting((4.0, 55.0), "camera to sign (log-uniform)", unit="ft")
    angle_deg: tuple[float, float] = setting(
        (-45.0, 45.0), "between the sign's normal and the camera", unit="deg"
    )
    camera_height_m: tuple[float, float] = setting((1.0, 1.9), "camera above the ground", unit="m")
    sign_height_m: tuple[float, float] = setting((1.0, 2.2), "bottom of the face above the ground", unit="m")
    effects: dict = setting(
        {
            "brightness": [0.65, 1.3],
            "contrast": [0.8, 1.1],
            "colour_temperature_k": [4000, 8500],
            "shadow": [0.0, 0.35],
            "motion_blur_px": [0.0, 2.5],
            "noise_std": [0.0, 0.025],
        },
        "ranges of the scene effects (physadv.scene.effects)",
    )
    jpeg_probability: float = setting(0.3, "share of views re-encoded as JPEG", minimum=0.0, maximum=1.0)
    jpeg_quality: tuple[int, int] = setting((60, 95), "JPEG quality range")
