"""Reading and writing images: files in, ``(1, 3, H, W)`` float tensors in 0..1 out, atomic writes.

Pillow reads and writes everything except 16-bit colour, which :mod:`._codec16` handles (Pillow
has no 16-bit RGB mode). Every problem with the input raises :class:`InputImageError`.
"""
from __future__ import annotations

import os
import stat
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError, features

from ..errors import InputImageError
from ..image_files import check_input_file, path_error, shown_path
from . import _codec16
from .._atomic import atomic_write, check_writable, name_max
from ._checks import check_image, check_positive_int

DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "PLUGIN_HOST_MAX_PIXELS"
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                ".webp": "WEBP"}
_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_GREY16_MODES = {"I;16", "I;16B", "I;16L", "I", "F"}  # I: 32-bit ints read as 0..65535; F: 0..1
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error)
_PILLOW_LIMIT_LOCK = threading.Lock()


@dataclass
class LoadedImage:
    """A decoded image: ``rgb`` (1, 3, H, W) and ``alpha`` (1, 1, H, W) or None, float32 in 0..1.

    ``bit_depth`` (8 or 16) is the file's depth, also where only 8 bits of it could be decoded
    (16-bit LZW TIFF); use it to choose the output depth.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor | None = None
    bit_depth: int = 8
    source: Path | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(W, H)``, Pillow's order."""
        return int(self.rgb.shape[-1]), int(self.rgb.shape[-2])


def max_pixels_from_env() -> int:
    """The pixel cap: ``$PLUGIN_HOST_MAX_PIXELS`` if set, else :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise InputImageError(f"{MAX_PIXELS_ENV}={raw!r} is not a positive whole number",
                              hint=f"set {MAX_PIXELS_ENV} to a pixel count such as 200000000, or unset it")
    return value


def load_image(path_or_pil: str | os.PathLike | Image.Image, max_pixels: int | None = None) -> LoadedImage:
    """Read an image file (anything Pillow reads) or a PIL image, upright per its EXIF orientation.

    Grey becomes 3 equal channels; transparency becomes ``alpha``; 16-bit files keep 16 bits.
    Images above ``max_pixels`` (default :func:`max_pixels_from_env`) are refused from the header,
    before decoding.
    """
    cap = check_positive_int(max_pixels, "max_pixels") if max_pixels is not None else max_pixels_from_env()
    if isinstance(path_or_pil, Image.Image):
        _check_pixels(path_or_pil.size, cap, "image")
        try:
            loaded = from_pil(ImageOps.exif_transpose(path_or_pil))
        except _DECODE_ERRORS as exc:
            raise InputImageError(f"cannot convert image: {exc}", hint="convert it to RGB or RGBA first") from exc
        _check_finite(loaded, "image")
        return loaded
    path = Path(path_or_pil)
    check_input_file(path)
    try:
        with warnings.catch_warnings():  # Pillow warns about damaged metadata; the error below says it once
            warnings.simplefilter("ignore", UserWarning)
            with _open(path, cap) as im:
                _check_pixels(im.size, cap, shown_path(path))
                loaded = _load_opened(im, lambda: _open(path, cap))
    except UnidentifiedImageError as exc:
        raise InputImageError(f"cannot read image '{shown_path(path)}': not an image format Pillow knows, "
                              "or a damaged file", hint="use a PNG, JPEG, TIFF or WebP file") from exc
    except Image.DecompressionBombError as exc:  # only above 2 * Pillow's limit, hence above `cap`
        raise InputImageError(f"image '{shown_path(path)}' has more pixels than the limit of {cap:,}: {exc}",
                              hint=f"downscale it first, or raise {MAX_PIXELS_ENV}") from exc
    except PermissionError as exc:
        raise InputImageError(f"cannot read image '{shown_path(path)}': permission denied",
                              hint="check the file's permissions") from exc
    except _DECODE_ERRORS as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputImageError(f"cannot read image '{shown_path(path)}': {reason}",
                              hint="the file may be truncated or damaged; export it again") from exc
    _check_finite(loaded, f"image '{shown_path(path)}'")
    loaded.source = path
    return loaded


def _check_finite(loaded: LoadedImage, name: str) -> None:
    """Float TIFFs can hold NaN: refuse them here, naming the pixels, not after a run as the method's fault."""
    for kind, plane in (("pixel", loaded.rgb), ("alpha value", loaded.alpha)):
        if plane is None:
            continue
        bad = ~torch.isfinite(plane).all(1)[0]
        if bad.any():
            y, x = (int(v) for v in bad.nonzero()[0])
            raise InputImageError(f"{name} has {int(bad.sum()):,} NaN {kind}(s), the first at x={x}, y={y}",
                                  hint="replace them (e.g. with 0) in the program that wrote the file")


def _open(path: Path, cap: int) -> Image.Image:
    # Our cap replaces Pillow's decompression-bomb guard: silence its warning and, where our cap is
    # above Pillow's hard limit (2 * MAX_IMAGE_PIXELS), lift that limit just for this header read.
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        limit = Image.MAX_IMAGE_PIXELS
        lift = limit is not None and cap > 2 * limit
        if lift:
            Image.MAX_IMAGE_PIXELS = cap
        try:
            return Image.open(path)
        finally:
            if lift:
                Image.MAX_IMAGE_PIXELS = limit


def _load_opened(im: Image.Image, reopen: Callable[[], Image.Image]) -> LoadedImage:
    sixteen = _codec16.is_colour16(im)  # Pillow itself would decode only 8 of its bits
    array = _codec16.read_colour16(im, reopen) if sixteen else None
    im.load()  # decode now, so a truncated file fails here (Pillow's LOAD_TRUNCATED_IMAGES stays off)
    if im.format == "PNG":
        _verify_png(reopen)
    if array is None:
        loaded = from_pil(ImageOps.exif_transpose(im))
        loaded.bit_depth = 16 if sixteen else loaded.bit_depth
        return loaded
    t = torch.from_numpy(array.astype(np.float32) / 65535.0).permute(2, 0, 1)[None].contiguous()
    alpha = t[:, 3:] if t.shape[1] == 4 else None
    return LoadedImage(t[:, :3].contiguous(), alpha, 16)


def _verify_png(reopen: Callable[[], Image.Image]) -> None:
    # Pillow decodes a PNG whose end (IEND, checksums) is cut off without complaint;
    # verify() reads every chunk to IEND and checks its CRC.
    with reopen() as im:
        try:
            im.verify()
        except (OSError, SyntaxError, struct.error) as exc:
            raise OSError(f"its end is missing or damaged ({exc})") from exc


def _check_pixels(size: tuple[int, int], cap: int, name: str) -> None:
    width, height = size
    if width * height > cap:
        raise InputImageError(
            f"image '{name}' is {width}x{height} = {width * height:,} pixels, more than the limit of {cap:,}",
            hint=f"downscale it first, or raise the limit: set {MAX_PIXELS_ENV}={width * height}")


def from_pil(img: Image.Image) -> LoadedImage:
    """Convert a PIL image as it is (no EXIF rotation, no pixel cap) to a :class:`LoadedImage`."""
    if img.mode in _GREY16_MODES:
        scale = 1.0 if img.mode == "F" else 65535.0
        grey = torch.from_numpy(np.clip(np.asarray(img, dtype=np.float32) / scale, 0.0, 1.0))
        return LoadedImage(grey[None, None].repeat(1, 3, 1, 1), None, 16)
    has_alpha = img.mode in _ALPHA_MODES or "transparency" in img.info
    array = np.asarray(img.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    t = torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()
    return LoadedImage(t[:, :3].contiguous(), t[:, 3:].contiguous() if has_alpha else None, 8)


def to_pil(rgb: torch.Tensor, alpha: torch.Tensor | None = None) -> Image.Image:
    """8-bit RGB (or RGBA) PIL image from ``rgb`` (1, 3, H, W) and ``alpha`` (1, 1, H, W), 0..1."""
    return Image.fromarray(_quantize(_stack(rgb, alpha), 8))


def _stack(rgb: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    check_image(rgb, "rgb", channels=3, batch=1)
    if alpha is None:
        return rgb
    check_image(alpha, "alpha", channels=1, batch=1)
    if alpha.shape[-2:] != rgb.shape[-2:]:
        raise ValueError(f"alpha: expected size {tuple(rgb.shape[-2:])} like rgb, got {tuple(alpha.shape[-2:])}")
    return torch.cat([rgb, alpha.to(rgb.device, rgb.dtype)], dim=1)


def _quantize(pixels: torch.Tensor, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    values = torch.nan_to_num(pixels.detach()[0].float().cpu(), nan=0.0).clamp(0.0, 1.0)
    return (values * top).round().to(torch.int32).permute(1, 2, 0).numpy().astype(np.uint8 if bits == 8 else np.uint16)


def save_image(path: str | os.PathLike, rgb: torch.Tensor, alpha: torch.Tensor | None = None,
               bit_depth: int = 8, quality: int = 95) -> Path:
    """Write ``rgb`` (1, 3, H, W) and optional ``alpha`` (1, 1, H, W), 0..1, atomically to ``path``.

    The format follows the suffix (:data:`SAVE_FORMATS`). 16 bits per channel: PNG and TIFF only.
    JPEG has no alpha channel: alpha is dropped (not composited). Values are clamped to 0..1 and
    rounded (``round(x * 255)``). The parent folder must exist.
    """
    path = Path(path)
    pixels = _stack(rgb, alpha)
    fmt = check_output_path(path, bit_depth, probe=False)  # atomic_write's temp file is the probe
    if fmt == "JPEG":
        pixels = pixels[:, :3]
    array = _quantize(pixels, bit_depth)
    atomic_write(path, lambda fp: _encode(fp, array, fmt, bit_depth, quality))
    return path


def check_output_path(path: str | os.PathLike, bit_depth: int = 8, probe: bool = True) -> str:
    """Everything about an output path that can fail, checked before any work: its suffix names a
    format of :data:`SAVE_FORMATS` (returned) able to hold ``bit_depth``, its name fits the file
    system, it is not a folder or a device, and its folder exists. With ``probe``, a temp file is
    also created and removed there (the folder is writable, the disk not full). Raises
    :class:`InputImageError`.
    """
    path = Path(path)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth: expected 8 or 16, got {bit_depth!r}")
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputImageError(f"cannot save '{shown_path(path)}': unknown image type "
                              f"{path.suffix or '(no suffix)'!r}",
                              hint=f"end the name with one of {', '.join(SAVE_FORMATS)}")
    if bit_depth == 16 and fmt not in ("PNG", "TIFF"):
        raise InputImageError(f"cannot save '{shown_path(path)}' with 16 bits per channel: {fmt} stores 8",
                              hint="use a .png or .tif name for 16-bit output")
    try:
        folder = path.parent.stat()
    except (FileNotFoundError, NotADirectoryError):
        folder = None
    except OSError as exc:
        raise path_error(path.parent, exc, "output folder") from exc
    if folder is None or not stat.S_ISDIR(folder.st_mode):
        raise InputImageError(f"cannot save '{shown_path(path)}': "
                              f"folder '{shown_path(path.parent)}' does not exist",
                              hint="create the folder first or choose another output path")
    limit, size = name_max(path.parent), len(os.fsencode(path.name))
    if size > limit:
        raise InputImageError(f"cannot save '{shown_path(path)}': its name is {size} bytes, longer than the "
                              f"file system's limit of {limit}", hint="choose a shorter output name (-o)")
    try:
        existing = path.lstat()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise path_error(path, exc, "output") from exc
    if existing is not None and not (stat.S_ISREG(existing.st_mode) or stat.S_ISLNK(existing.st_mode)):
        raise InputImageError(f"cannot save '{shown_path(path)}': it exists and is not a regular file",
                              hint="choose another output name")
    if probe:
        check_writable(path)
    return fmt


def _encode(fp: BinaryIO, array: np.ndarray, fmt: str, bit_depth: int, quality: int) -> None:
    if bit_depth == 16:
        (_codec16.write_png16 if fmt == "PNG" else _codec16.write_tiff16)(fp, array)
        return
    options: dict[str, object] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "TIFF" and features.check_codec("libtiff"):
        options["compression"] = "tiff_adobe_deflate"
    Image.fromarray(array).save(fp, format=fmt, **options)


def ensure_not_overwriting(output: str | os.PathLike, inputs: Iterable[str | os.PathLike], overwrite: bool) -> None:
    """Raise InputImageError if ``output`` is the same file as one of ``inputs``, unless ``overwrite``."""
    if overwrite:
        return
    out = Path(output)
    for item in inputs:
        src = Path(item)
        try:
            same = os.path.samefile(out, src) if out.exists() and src.exists() else out.resolve() == src.resolve()
        except OSError as exc:  # a name too long, a folder on the way not searchable
            raise path_error(out, exc, "output") from exc
        if same:
            raise InputImageError(f"output '{out}' is the input image '{src}'; it would be overwritten",
                                  hint="pass --overwrite or choose another output name")
