"""Images as physadv reads and frames them: one reader for every image file a user brings, and the
letterbox Ultralytics frames them with.

:func:`read_image` is the only place physadv opens an image file. It honours, the same way for
every caller:

- **bit depth**: 8-bit files are read as ``v / 255``, 16-bit as ``v / 65535`` (a 16-bit ramp
  0…65535 has mean 0.5, not "almost white"), float files (TIFF, EXR) as they are, clipped to [0, 1];
- **alpha** (RGBA, grey + alpha, a palette with a transparent colour, 16-bit RGBA): kept as
  :attr:`Picture.alpha` for callers that need it (an artefact's unprinted areas), or composited
  over a stated background by :meth:`Picture.over` (photos and frames: grey 114, the letterbox
  fill); readers that composite say how many images had transparent pixels;
- **orientation**: the EXIF orientation tag (phones store portrait photos sideways) is applied,
  so the pixels are upright as every viewer shows them.

Pixel data comes from OpenCV (``IMREAD_UNCHANGED``: every depth and channel count it supports),
the EXIF tag from Pillow (the header only), with Pillow as the fallback decoder.

A **truncated** file is unreadable, never half an image: libjpeg decodes a JPEG cut short into a
picture grey below the cut (saying only "Premature end of JPEG file" on stderr, with no file name),
so :func:`truncation` walks a JPEG's markers to its end-of-image marker (FF D9) and a PNG's chunks to
IEND before anything is decoded — reading the bytes, not decoding them twice. Other formats OpenCV
refuses when cut short; Pillow's "image file is truncated" is then the reason given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from physadv.errors import PhysadvError

LETTERBOX_FILL = 114 / 255  # Ultralytics' grey padding, as a float in [0, 1]
PHOTO_BACKGROUND = LETTERBOX_FILL  # what transparent pixels of photos and frames are composited over
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
EXIF_ORIENTATION = 0x0112
TRUNCATED = "truncated"


class UnreadableImage(PhysadvError):
    """An image file that cannot be used; ``reason`` is :data:`TRUNCATED` when the file is cut short
    (readers of image sets name it beside the file), else None."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason


def skipped_name(name: str, exc: PhysadvError) -> str:
    """``name`` as a set of images lists it when :func:`read_image` refused it with ``exc``:
    ``00005.jpg (truncated)`` where the reason is known, else ``00005.jpg``."""
    reason = getattr(exc, "reason", None)
    return f"{name} ({reason})" if reason else name


@dataclass
class Picture:
    """An image file read upright.

    Attributes:
        rgb8: ``[H, W, 3]`` RGB uint8 for 8-bit files (None otherwise: no precision is thrown away).
        rgb_float: ``[H, W, 3]`` RGB float32 in [0, 1] for 16-bit and float files (made on demand
            for 8-bit ones; read it through :attr:`rgb`).
        alpha: ``[H, W]`` float32 in [0, 1], or None when the file has no alpha channel.
        depth: "8-bit", "16-bit" or "float" (what the file stored).
        orientation: the EXIF orientation that was applied (1: none).
    """

    rgb8: np.ndarray | None
    rgb_float: np.ndarray | None
    alpha: np.ndarray | None
    depth: str
    orientation: int = 1

    @property
    def rgb(self) -> np.ndarray:
        if self.rgb_float is None:
            self.rgb_float = self.rgb8.astype(np.float32) / 255
        return self.rgb_float

    @property
    def transparent(self) -> bool:
        """Whether any pixel is less than fully opaque."""
        return self.alpha is not None and bool((self.alpha < 1).any())

    def over(self, background: float | tuple[float, float, float] = PHOTO_BACKGROUND) -> np.ndarray:
        """RGB uint8 ``[H, W, 3]`` with alpha composited over ``background`` (grey level or RGB in [0, 1])."""
        if not self.transparent and self.rgb8 is not None:
            return self.rgb8
        rgb = self.rgb
        if self.transparent:
            a = self.alpha[..., None]
            rgb = rgb * a + np.asarray(background, np.float32) * (1 - a)
        return (rgb * 255 + 0.5).clip(0, 255).astype(np.uint8)


def _orientation(path: Path) -> int:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except Exception:  # Pillow cannot parse every file OpenCV reads (float TIFF): no tag to apply
        return 1


def upright(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1–8) to ``[H, W, …]`` pixels, as viewers show them."""
    ops = {  # the EXIF 2.3 table: mirror, rotate 180, flip, transpose, 90° clockwise, transverse, 90° ccw
        2: lambda a: a[:, ::-1],
        3: lambda a: np.rot90(a, 2),
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](array)) if orientation in ops else array


def _jpeg_truncated(data: bytes) -> bool:
    """Whether a JPEG ends before its end-of-image marker. Segments are skipped by their length (an
    EXIF thumbnail's own FF D9 is inside APP1), entropy-coded data up to the next marker (inside it
    FF is followed only by 00 or a restart marker D0–D7, ITU T.81 B.1.1.5)."""
    raw = np.frombuffer(data, np.uint8)
    ff = np.flatnonzero(raw[:-1] == 0xFF)
    after = raw[ff + 1]
    markers = ff[(after != 0) & (after != 0xFF) & ((after < 0xD0) | (after > 0xD7))]
    i = 2
    while i + 2 <= len(data):
        if data[i] != 0xFF:
            return False  # not where a marker should be: damaged, not cut short; the decoder judges it
        marker = data[i + 1]
        if marker == 0xD9:
            return False
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # fill byte, markers without length
            i += 1 if marker == 0xFF else 2
            continue
        if i + 4 > len(data):
            return True
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:  # start of scan: its entropy-coded data runs to the next marker
            later = markers[np.searchsorted(markers, i) :]
            if not len(later):
                return True
            i = int(later[0])
    return True


def _png_truncated(data: bytes) -> bool:
    """Whether a PNG ends before its IEND chunk (chunks are length, type, data, CRC)."""
    i = 8
    while i + 8 <= len(data):
        length, kind = int.from_bytes(data[i : i + 4], "big"), data[i + 4 : i + 8]
        if kind == b"IEND":
            return False
        i += 12 + length
    return True


def truncation(path: Path) -> str | None:
    """A one-phrase reason when ``path`` is a JPEG or PNG cut short, else None (complete, or another
    format: those the decoders refuse when cut short)."""
    data = Path(path).read_bytes()
    if data[:3] == b"\xff\xd8\xff" and _jpeg_truncated(data):
        return f"{TRUNCATED}: the JPEG ends before its end-of-image marker ({len(data)} bytes)"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and _png_truncated(data):
        return f"{TRUNCATED}: the PNG ends before its IEND chunk ({len(data)} bytes)"
    return None


def _decode(path: Path) -> tuple[np.ndarray | None, str | None]:
    """Pixels as stored (OpenCV's channel order BGR/BGRA, any depth), or None and why (when known)."""
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is not None:
        if data.ndim == 3 and data.shape[2] in (3, 4):
            data = cv2.cvtColor(data, cv2.COLOR_BGR2RGB if data.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
        return data, None
    from PIL import Image

    try:  # formats OpenCV lacks; Pillow gives 8-bit RGB(A)
        with Image.open(path) as image:
            image.load()
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            return np.asarray(image.convert("RGBA" if has_alpha else "RGB")), None
    except OSError as exc:  # Pillow refuses a cut-short file unless LOAD_TRUNCATED_IMAGES is set
        return None, TRUNCATED if "truncated" in str(exc) else None
    except Exception:
        return None, None


def _scale(data: np.ndarray) -> tuple[np.ndarray, str]:
    if data.dtype == np.uint8:
        return data, "8-bit"
    if data.dtype == np.uint16:
        return data.astype(np.float32) / 65535, "16-bit"
    if data.dtype.kind == "f":
        return np.nan_to_num(data.astype(np.float32)).clip(0, 1), "float"
    raise PhysadvError(f"unsupported pixel type {data.dtype}")


def read_image(path: str | Path, what: str = "image") -> Picture:
    """Read an image file upright, with its bit depth and alpha honoured (see the module docstring).

    Raises:
        PhysadvError: one line naming the file, when it is missing; :class:`UnreadableImage` (a
            PhysadvError) when it is truncated or not an image this machine reads.
    """
    path = Path(path)
    if not path.is_file():
        raise PhysadvError(f"{what} '{path}' not found")
    cut = truncation(path)
    if cut:
        raise UnreadableImage(f"cannot read {what} '{path}': {cut}", TRUNCATED)
    data, reason = _decode(path)
    if data is None or data.size == 0:
        why = "truncated (the file ends early)" if reason else "not an image this machine can read"
        raise UnreadableImage(f"cannot read {what} '{path}': {why}", reason)
    try:
        data, depth = _scale(data)
    except PhysadvError as exc:
        raise PhysadvError(f"cannot read {what} '{path}': {exc}") from None
    if data.ndim == 2:
        data = data[..., None]
    channels = data.shape[2]
    colour = data[..., :3] if channels >= 3 else np.repeat(data[..., :1], 3, axis=2)
    alpha = data[..., 3 if channels >= 4 else 1] if channels in (2, 4) else None
    orientation = _orientation(path)
    colour, alpha = upright(colour, orientation), None if alpha is None else upright(alpha, orientation)
    if alpha is not None and alpha.dtype == np.uint8:
        alpha = alpha.astype(np.float32) / 255
    if depth == "8-bit":
        return Picture(np.ascontiguousarray(colour), None, alpha, depth, orientation)
    return Picture(None, np.ascontiguousarray(colour, np.float32), alpha, depth, orientation)


def read_rgb8(
    path: str | Path, background: float | tuple[float, float, float] = PHOTO_BACKGROUND, what: str = "image"
) -> tuple[np.ndarray, Picture]:
    """A photo or frame as RGB uint8 ``[H, W, 3]``, upright, transparent pixels composited over
    ``background``; also the :class:`Picture` (to count what was composited or rotated)."""
    picture = read_image(path, what)
    return picture.over(background), picture


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, int, int]:
    """Resize HWC RGB so its long side is ``size`` and pad to a square; returns the canvas, the
    scale and the left/top padding in canvas pixels."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    fill = round(LETTERBOX_FILL * 255)
    canvas = np.full((size, size, 3), fill, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top : top + nh, left : left + nw] = resized
    return canvas, scale, left, top


def frame_files(folder: Path) -> list[Path]:
    """The image files of a folder of frames, in name order (``frame_000001.png`` …): the replay order."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
