"""Defenses by name, as users write them: ``"jpeg:75,median:3,lgs,patchcleanser:0.25"``.

Each :class:`Choice` wraps a model adapter in its defense; the wrapper keeps the adapter's contract,
so the attack made against it is the adaptive attack. Most settings are a number; the trained patch
detectors take a file instead (``sac:segmenter.safetensors``, ``adyolo:best.pt``), and without one
use physadv's embedded ones, made for the embedded world and detector.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from physadv.defenses.ad_yolo import AdYolo
from physadv.defenses.defended import Defended
from physadv.defenses.flagging import DetectorNetDefense, KernelDensity, LocalIntrinsicDimensionality
from physadv.defenses.jedi import Jedi
from physadv.defenses.masking import ObjectSeeker, PatchCleanser
from physadv.defenses.mc_dropout import MCDropout
from physadv.defenses.sac import SegmentAndComplete
from physadv.defenses.trained import TrainedModel
from physadv.defenses.transforms import (
    BitDepth,
    Defense,
    GaussianBlur,
    Jpeg,
    LocalGradientSmoothing,
    MedianBlur,
    ResizePad,
)
from physadv.errors import PhysadvError
from physadv.models.loading import EMBEDDED_DIR

BOTH = ("classifier", "detector")
EMBEDDED_SEGMENTER = EMBEDDED_DIR / "patch_segmenter.safetensors"
EMBEDDED_ADYOLO = EMBEDDED_DIR / "detector_adyolo.pt"


@dataclass
class Choice:
    """A named defense: ``wrap(model, seed)`` returns the defended adapter."""

    name: str
    wrap: Callable
    kinds: tuple[str, ...] = BOTH
    transform: Defense | None = None  # the input transform, for transform defenses


def _transform(defense) -> Choice:
    return Choice(defense.name, lambda model, seed: Defended(model, [defense], seed), transform=defense)


def _wrapper(key: str, cls, setting: str, value, kinds: tuple[str, ...]) -> Choice:
    return Choice(f"{key}:{value:g}", lambda model, seed: cls(model, **{setting: value}, seed=seed), kinds)


def _sac(value: str) -> Choice:
    path = Path(value) if value else EMBEDDED_SEGMENTER
    name = "sac" if not value else f"sac:{path.stem}"

    def make(model, seed: int) -> SegmentAndComplete:
        return SegmentAndComplete(model, path, seed=seed, name=name)

    return Choice(name, make, ("detector",))


def _adyolo_for(model, value: str, seed: int) -> AdYolo:
    if value:
        return AdYolo(model, value, seed=seed, name=f"adyolo:{Path(value).stem}")
    if not str(getattr(model, "file_format", "")).startswith("physadv's embedded"):
        raise PhysadvError(
            "adyolo without a file stands in the embedded detector's patch-class twin, so it needs "
            "--model default; for your detector, train its twin (physadv train detector --patch-class) "
            "and give it: adyolo:PATH/best.pt"
        )
    return AdYolo(model, EMBEDDED_ADYOLO, seed=seed)


def _adyolo(value: str) -> Choice:
    name = "adyolo" if not value else f"adyolo:{Path(value).stem}"
    return Choice(name, lambda model, seed: _adyolo_for(model, value, seed), ("detector",))


MAKERS: dict[str, Callable[[str], Choice]] = {
    "jpeg": lambda v: _transform(Jpeg(float(v or 75))),
    "median": lambda v: _transform(MedianBlur(int(v or 3))),
    "gauss": lambda v: _transform(GaussianBlur(float(v or 1.0))),
    "bits": lambda v: _transform(BitDepth(int(v or 4))),
    "resize": lambda v: _transform(ResizePad(float(v or 0.85))),
    "lgs": lambda v: _transform(LocalGradientSmoothing(threshold=float(v or 0.1))),
    "patchcleanser": lambda v: _wrapper(
        "patchcleanser", PatchCleanser, "patch", float(v or 0.25), ("classifier",)
    ),
    "objectseeker": lambda v: _wrapper("objectseeker", ObjectSeeker, "lines", int(v or 3), ("detector",)),
    "mcdropout": lambda v: _wrapper("mcdropout", MCDropout, "p", float(v or 0.2), ("classifier",)),
    "trained": lambda v: _from_file("trained", TrainedModel, v),
    "detector-net": lambda v: _from_file("detector-net", DetectorNetDefense, v),
    "kd": lambda v: _from_file("kd", KernelDensity, v),
    "lid": lambda v: _from_file("lid", LocalIntrinsicDimensionality, v),
    "jedi": lambda v: _wrapper("jedi", Jedi, "min_region", float(v or 0.005), ("detector",)),
    "sac": _sac,
    "adyolo": _adyolo,
}

# Defenses whose setting is a file: a model 'physadv train classifier' made, the detectors
# 'physadv train detector-net' made for the --model classifier, or a trained patch detector.
FILES = {
    "trained": "a classifier file from 'physadv train classifier --defense …'",
    "detector-net": "a file from 'physadv train detector-net'",
    "kd": "a file from 'physadv train detector-net'",
    "lid": "a file from 'physadv train detector-net'",
    "sac": "a patch segmenter from 'physadv train patch-segmenter'",
    "adyolo": "a detector trained with 'physadv train detector --patch-class'",
}
EMBEDDED_FILES = {"sac": EMBEDDED_SEGMENTER, "adyolo": EMBEDDED_ADYOLO}  # none is shipped yet
FLAGGING = ("mcdropout", "detector-net", "kd", "lid")  # detection defenses: they flag inputs


def _from_file(key: str, cls, value: str) -> Choice:
    name = f"trained:{Path(value).stem}" if key == "trained" else key
    return Choice(name, lambda model, seed: cls(model, Path(value), seed=seed), ("classifier",))


# What each defense's number means and which values work; anything else is refused in one line
# (gauss:0 once reached Kornia as a zero-width kernel).
SETTINGS: dict[str, tuple[Callable[[float], bool], str]] = {
    "jpeg": (lambda v: 1 <= v <= 100, "a JPEG quality from 1 to 100"),
    "median": (lambda v: v >= 3 and v % 2 == 1, "an odd window size in pixels, 3 or more"),
    "gauss": (lambda v: 0 < v <= 20, "a blur sigma in pixels, above 0 and at most 20"),
    "bits": (lambda v: v in range(1, 9), "bits per channel, a whole number from 1 to 8"),
    "resize": (lambda v: 0 < v <= 1, "the smallest scale, above 0 and at most 1"),
    "lgs": (lambda v: 0 < v < 1, "a gradient threshold between 0 and 1"),
    "patchcleanser": (lambda v: 0 < v < 1, "the patch side as a share of the image side, between 0 and 1"),
    "objectseeker": (lambda v: v >= 1 and v == int(v), "the number of cut lines, a whole number from 1"),
    "mcdropout": (lambda v: 0 < v < 1, "a dropout probability between 0 and 1"),
    "jedi": (lambda v: 0 <= v < 1, "the smallest patch region kept, as a share of the image, from 0 to 1"),
}


def _check_setting(key: str, value: str, item: str) -> None:
    if key in FILES:
        if not value:
            if key in EMBEDDED_FILES and EMBEDDED_FILES[key].is_file():
                return  # the embedded one
            embedded = " (none is embedded yet)" if key in EMBEDDED_FILES else ""
            raise PhysadvError(f"defense '{item}' needs a file, {key}:PATH: {FILES[key]}{embedded}")
        if not Path(value).is_file():
            raise PhysadvError(f"defense '{item}': '{value}' is not a file ({FILES[key]})")
        return
    if not value:
        return  # the defense's default
    try:
        number = float(value)
    except ValueError:
        raise PhysadvError(f"bad setting in defense '{item}': want a number after ':'") from None
    ok, meaning = SETTINGS[key]
    if not ok(number):
        raise PhysadvError(f"bad setting in defense '{item}': {key} takes {meaning}")


def wrap(choice: Choice | None, model, seed: int):
    """The model behind ``choice`` (``None``: the bare model, with the wrappers' contract)."""
    return choice.wrap(model, seed) if choice else Defended(model, [], seed)


def adaptive_paths(out: Path, defense: str, start: torch.Tensor) -> tuple[Path, Path]:
    """The checkpoint and the picture of the artefact re-optimised through ``defense`` from ``start``.
    The checkpoint's name carries a digest of ``start``, so a new artefact never resumes an old run."""
    slug = defense.replace(":", "_").replace(".", "p").replace("+", "_")
    digest = hashlib.sha1(start.float().cpu().numpy().tobytes()).hexdigest()[:8]
    return out / f"adaptive_{slug}_{digest}.safetensors", out / f"adaptive_{slug}.png"


def parse_defenses(text: str, kind: str | None = None) -> list[Choice]:
    """``"jpeg:75,median:3,gauss:1,bits:4,resize:0.85,lgs,patchcleanser:0.25,objectseeker:3,
    mcdropout:0.2,trained:PATH,detector-net:PATH,kd:PATH,lid:PATH,jedi:0.005,sac:FILE,adyolo:FILE"`` →
    choices (``kind``: the model's, to refuse defenses made for the other kind)."""
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        key, _, value = item.partition(":")
        if key not in MAKERS:
            raise PhysadvError(
                f"unknown defense '{key}': use {', '.join(MAKERS)} (e.g. jpeg:75,median:3,lgs)"
            )
        _check_setting(key, value, item)
        try:
            choice = MAKERS[key](value)
        except ValueError:
            raise PhysadvError(f"bad setting in defense '{item}': want a number after ':'") from None
        if kind is not None and kind not in choice.kinds:
            raise PhysadvError(f"defense '{key}' is for {' and '.join(choice.kinds)}s, not a {kind}")
        out.append(choice)
    if not out:
        raise PhysadvError("no defenses given (e.g. --defenses jpeg:75,median:3,lgs)")
    return out
