"""Videos as people record them, written in the tests: an MJPEG AVI written box by box (odd frame
sizes, a header frame count of our choosing, frames of different sizes), and MP4 files from
OpenCV's writer with the boxes phones and editors write patched in (a rotation matrix, per-frame
durations). No file ships with the tests; each fault is one field of a real container format.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np


def numbered_frame(i: int, width: int, height: int) -> np.ndarray:
    """A BGR frame that shows its number: a grey level of ``(i * 7) % 250`` and a white bar whose
    x position is ``i`` (so frames can be told apart after lossy coding)."""
    image = np.full((height, width, 3), (i * 7) % 250, np.uint8)
    image[: height // 4, min(i, width - 1)] = 255
    return image


def _chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, body: bytes) -> bytes:
    return _chunk(b"LIST", kind + body)


def write_mjpeg_avi(path: Path, frames: list[np.ndarray], fps: float = 30.0, header_frames=None) -> Path:
    """An MJPEG AVI of BGR ``frames`` (any size, even odd or changing), with ``header_frames`` as the
    frame count its headers announce (default: the true count)."""
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for f in frames]
    h, w = frames[0].shape[:2]
    count = len(frames) if header_frames is None else header_frames
    avih = struct.pack("<10I4I", round(1e6 / fps), 0, 0, 0x10, count, 0, 1, 0, w, h, 0, 0, 0, 0)
    strh = b"vidsMJPG" + struct.pack(
        "<IHHIIIIIIII4h", 0, 0, 0, 0, 1000, round(fps * 1000), 0, count, 0, 0, 0, 0, 0, w, h
    )
    strf = struct.pack("<IiiHH4sIiiII", 40, w, h, 1, 24, b"MJPG", w * h * 3, 0, 0, 0, 0)
    header = _list(
        b"hdrl", _chunk(b"avih", avih) + _list(b"strl", _chunk(b"strh", strh) + _chunk(b"strf", strf))
    )
    movi, index, offset = b"", b"", 4  # idx1 offsets count from the 'movi' tag
    for jpeg in jpegs:
        chunk = _chunk(b"00dc", jpeg)
        index += b"00dc" + struct.pack("<III", 0x10, offset, len(jpeg))
        movi, offset = movi + chunk, offset + len(chunk)
    body = b"AVI " + header + _list(b"movi", movi) + _chunk(b"idx1", index)
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return Path(path)


# --- MP4 (ISO base media) boxes -------------------------------------------------------------------

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}


def _parse(data: bytes) -> list[list]:
    boxes, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        payload = data[at + 8 : at + size]
        boxes.append([kind, _parse(payload) if kind in CONTAINERS else payload])
        at += size
    return boxes


def _serialise(boxes: list[list]) -> bytes:
    out = b""
    for kind, payload in boxes:
        body = _serialise(payload) if isinstance(payload, list) else payload
        out += struct.pack(">I4s", len(body) + 8, kind) + body
    return out


def _find(boxes, *path: bytes):
    for kind, payload in boxes:
        if kind == path[0]:
            return payload if len(path) == 1 else _find(payload, *path[1:])
    raise KeyError(path)


def _replace(boxes, path: tuple[bytes, ...], payload) -> None:
    for box in boxes:
        if box[0] == path[0]:
            if len(path) == 1:
                box[1] = payload
            else:
                _replace(box[1], path[1:], payload)
            return
    raise KeyError(path)


def write_mp4(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frames[0].shape[1::-1])
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return Path(path)


def rotate_mp4(path: Path, degrees: int) -> Path:
    """Give the MP4's video track the display matrix a phone writes for a clockwise rotation."""
    boxes = _parse(Path(path).read_bytes())
    trak = ("moov", "trak")
    tkhd = bytearray(_find(boxes, *(k.encode() for k in (*trak, "tkhd"))))
    one, minus = 0x00010000, 0xFFFF0000
    width, height = struct.unpack(">II", tkhd[-8:])
    a, b, c, d = {90: (0, one, minus, 0), 180: (minus, 0, 0, minus), 270: (0, minus, one, 0)}[degrees]
    tx = {90: height, 180: width, 270: 0}[degrees]
    ty = {90: 0, 180: height, 270: width}[degrees]
    matrix = struct.pack(">9I", a, b, 0, c, d, 0, tx & 0xFFFFFFFF, ty & 0xFFFFFFFF, 0x40000000)
    offset = 40 if tkhd[0] == 0 else 52  # tkhd version 0 / 1
    tkhd[offset : offset + 36] = matrix
    _replace(boxes, tuple(k.encode() for k in (*trak, "tkhd")), bytes(tkhd))
    Path(path).write_bytes(_serialise(boxes))
    return Path(path)


def retime_mp4(path: Path, durations: list[int]) -> Path:
    """Give every frame its own duration (in the track's timescale): a variable frame rate."""
    boxes = _parse(Path(path).read_bytes())
    stbl = tuple(k.encode() for k in ("moov", "trak", "mdia", "minf", "stbl"))
    stts = _find(boxes, *stbl, b"stts")
    frames = sum(
        struct.unpack(">I", stts[8 + 8 * i : 12 + 8 * i])[0] for i in range(struct.unpack(">I", stts[4:8])[0])
    )
    assert frames == len(durations), (frames, len(durations))
    entries = b"".join(struct.pack(">II", 1, d) for d in durations)
    _replace(boxes, (*stbl, b"stts"), stts[:4] + struct.pack(">I", len(durations)) + entries)
    # the new length in every header that states it (version-0 boxes, as FFmpeg writes them), and no
    # edit list: its segment still has the old length and would cut the track short
    mdia = tuple(k.encode() for k in ("moov", "trak", "mdia"))
    mdhd = bytearray(_find(boxes, *mdia, b"mdhd"))
    mvhd = bytearray(_find(boxes, b"moov", b"mvhd"))
    assert mdhd[0] == 0 and mvhd[0] == 0
    media_scale, movie_scale = struct.unpack(">I", mdhd[12:16])[0], struct.unpack(">I", mvhd[12:16])[0]
    movie_length = struct.pack(">I", round(sum(durations) * movie_scale / media_scale))
    mdhd[16:20], mvhd[16:20] = struct.pack(">I", sum(durations)), movie_length
    tkhd = bytearray(_find(boxes, b"moov", b"trak", b"tkhd"))
    tkhd[20:24] = movie_length
    _replace(boxes, (*mdia, b"mdhd"), bytes(mdhd))
    _replace(boxes, (b"moov", b"mvhd"), bytes(mvhd))
    _replace(boxes, (b"moov", b"trak", b"tkhd"), bytes(tkhd))
    trak = _find(boxes, b"moov", b"trak")
    trak[:] = [box for box in trak if box[0] != b"edts"]
    Path(path).write_bytes(_serialise(boxes))
    return Path(path)


def timescale_mp4(path: Path) -> int:
    boxes = _parse(Path(path).read_bytes())
    mdhd = _find(boxes, b"moov", b"trak", b"mdia", b"mdhd")
    return struct.unpack(">I", mdhd[12:16] if mdhd[0] == 0 else mdhd[20:24])[0]
