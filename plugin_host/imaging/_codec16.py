"""16-bit colour PNG/TIFF: what Pillow cannot do directly.

Pillow (checked with 13.0) has no 16-bit-per-channel RGB/RGBA image mode. It decodes 16-bit
colour PNG and TIFF to 8-bit ``RGB``/``RGBA`` (the high byte of each sample) and cannot write
them at all; 16-bit *grey* (mode ``I;16``) works both ways. So:

* reading decodes the file twice with Pillow, the second time for the low bytes
  (:func:`read_colour16`); any compression Pillow or libtiff reads, at C speed;
* writing is done here: PNG as IHDR/IDAT/IEND with the Sub filter, TIFF as one deflate strip
  with horizontal differencing (both formats are simple; zlib does the work).

Arrays are ``(H, W, C)`` ``uint16`` with C = 3 (RGB) or 4 (RGBA, straight alpha).
"""
from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Callable
from typing import BinaryIO

import numpy as np
from PIL import Image

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IDAT_SIZE = 1 << 20
# Raw-mode byte-order suffix -> the opposite one (N is native order).
_OTHER_ORDER = {"B": "L", "L": "B", "N": "B" if sys.byteorder == "little" else "L"}
# EXIF orientation -> the transform that makes (H, W, C) pixels upright, as ImageOps.exif_transpose.
ORIENT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1], 8: lambda a: np.rot90(a, 1),
}


def is_colour16(im: Image.Image) -> bool:
    """Whether a just-opened (not loaded) image is 16-bit colour, which Pillow decodes to 8 bits."""
    args = im.tile[0].args if im.tile else ""
    rawmode = args if isinstance(args, str) else str(args[0]) if args else ""
    return ";16" in rawmode and im.mode in ("RGB", "RGBA") and rawmode[-1] in _OTHER_ORDER


def _swap_byte_order(tile: tuple) -> tuple:
    codec, extents, offset, args = tile
    rawmode = args if isinstance(args, str) else args[0]
    swapped = rawmode[:-1] + _OTHER_ORDER[rawmode[-1]]
    args = swapped if isinstance(args, str) else (swapped, *args[1:])
    return tile._replace(args=args) if hasattr(tile, "_replace") else (codec, extents, offset, args)


def read_colour16(im: Image.Image, reopen: Callable[[], Image.Image]) -> np.ndarray | None:
    """Loads ``im`` (opened, not loaded, :func:`is_colour16`) and returns all 16 bits of it as
    (H, W, 3|4) uint16, upright per its EXIF orientation; ``None`` where the trick below fails
    (``im`` then holds Pillow's usual 8-bit decode). ``reopen()`` opens the same file again.

    Pillow's rawmode (e.g. ``RGB;16B``) makes it keep the high byte of each sample. Decoding a
    second time with the opposite byte order (``RGB;16L``) keeps the low byte instead; both
    rawmodes are 16 bits per sample, so decompression and PNG unfiltering are identical.
    """
    try:
        with reopen() as other:
            other.tile = [_swap_byte_order(t) for t in other.tile]
            other.load()
            low = np.asarray(other)
    except Exception:  # noqa: BLE001 - a rawmode this Pillow lacks: keep its 8-bit decode
        low = None
    im.load()  # errors here are the file's: the caller reports them
    high = np.asarray(im)
    if low is None or low.shape != high.shape:
        return None
    array = (high.astype(np.uint16) << 8) | low
    key = im.info.get("transparency")
    if isinstance(key, tuple) and len(key) == 3 and array.shape[-1] == 3:  # PNG colour-key transparency
        opaque = (array != np.array(key, dtype=np.uint16)).any(-1, keepdims=True)
        array = np.concatenate([array, np.where(opaque, 65535, 0).astype(np.uint16)], axis=-1)
    return np.ascontiguousarray(ORIENT.get(im.getexif().get(0x0112, 1), lambda a: a)(array))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png16(fp: BinaryIO, array: np.ndarray) -> None:
    """Write an ``(H, W, 3|4)`` uint16 array as a 16-bit RGB/RGBA PNG."""
    height, width, channels = array.shape
    color_type = {3: 2, 4: 6}[channels]
    rows = np.ascontiguousarray(array, dtype=">u2").view(np.uint8).reshape(height, -1)
    # Sub filter: each byte minus the same byte of the previous pixel (mod 256).
    bpp = 2 * channels
    filtered = rows.copy()
    filtered[:, bpp:] -= rows[:, :-bpp]
    raw = np.concatenate([np.ones((height, 1), np.uint8), filtered], axis=1)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    fp.write(_PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr))
    data = zlib.compress(raw.tobytes(), 6)
    for start in range(0, len(data), _IDAT_SIZE):  # chunk lengths are capped at 2**31 - 1
        fp.write(_png_chunk(b"IDAT", data[start:start + _IDAT_SIZE]))
    fp.write(_png_chunk(b"IEND", b""))


def write_tiff16(fp: BinaryIO, array: np.ndarray) -> None:
    """Write an ``(H, W, 3|4)`` uint16 array as a little-endian 16-bit RGB/RGBA TIFF."""
    height, width, channels = array.shape
    diffed = np.ascontiguousarray(array, dtype="<u2").copy()
    diffed[:, 1:] -= array[:, :-1].astype("<u2")  # predictor 2: horizontal differencing, mod 2**16
    strip = zlib.compress(diffed.tobytes(), 6)
    bits_at = 8
    strip_at = bits_at + 2 * channels
    ifd_at = strip_at + len(strip) + (len(strip) & 1)  # IFDs start on a word boundary

    def short(tag: int, value: int) -> bytes:
        return struct.pack("<HHIHH", tag, 3, 1, value, 0)

    def long(tag: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, 4, 1, value)

    entries = [long(256, width), long(257, height), struct.pack("<HHII", 258, 3, channels, bits_at),
               short(259, 8), short(262, 2), long(273, strip_at), short(277, channels),
               long(278, height), long(279, len(strip)), short(284, 1), short(317, 2)]
    if channels == 4:
        entries.append(short(338, 2))  # ExtraSamples: unassociated (straight) alpha
    fp.write(b"II" + struct.pack("<HI", 42, ifd_at) + struct.pack("<" + "H" * channels, *[16] * channels))
    fp.write(strip + b"\0" * (len(strip) & 1))
    fp.write(struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0))
