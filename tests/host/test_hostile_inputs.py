"""Every built-in method over a corpus of odd and malformed inputs, built here from Pillow, raw bytes
and os.mkfifo: each case gives a result, or exit 2 with a short message naming the file; never a
traceback, exit 3 or a hang; no output or temp file left behind; an existing output untouched.

Valid odd images (modes, bit depths, sizes from 1x1) run through one warm runner Session (the code
the CLI and the server call); bad files, special files and bad paths run through the CLI in-process.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from plugin_host.cli import main
from plugin_host.imaging import resize_max_side, save_image
from plugin_host.plugins import load_registry
from plugin_host.runner import Session

METHODS = ("adain", "gatys", "perceptual", "perceptual-sr")
STYLED = ("adain", "gatys")
FAST_PARAMS = {"gatys": {"iterations": 1, "max_size": 32}}  # gatys shrinks larger pictures to max_size
FAST_FLAGS = {"gatys": ["--iterations", "1", "--max-size", "32"]}
SENTINEL = b"an earlier result that must survive"
HANG_SECONDS = 60

# -- the corpus ------------------------------------------------------------------------------

TINY_SIZES = [(1, 1), (2, 2), (3, 1), (1, 256), (7, 5), (8, 8), (17, 9)]  # (width, height)


def _pixels(width: int, height: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def _write_valid(folder: Path) -> list[Path]:
    """Images Pillow opens: every one must give a result."""
    paths = []

    def keep(name: str, image: Image.Image, **options) -> None:
        image.save(folder / name, **options)
        paths.append(folder / name)

    for width, height in TINY_SIZES:
        keep(f"rgb-{width}x{height}.png", Image.fromarray(_pixels(width, height)))
    keep("rgba-1x1.png", Image.fromarray(_pixels(1, 1, 4)))
    keep("tiny-1x1.jpg", Image.fromarray(_pixels(1, 1)))
    rgb = Image.fromarray(_pixels(9, 7))
    grey = rgb.convert("L")
    keep("grey-2bit.png", grey.point(lambda v: v // 64 * 85), bits=2)
    keep("grey-4bit.png", grey.point(lambda v: v // 16 * 17), bits=4)
    palette = rgb.quantize(16)
    keep("palette-4bit.png", palette, bits=4)
    keep("palette-transparent.png", palette, transparency=3)
    keep("bilevel.png", rgb.convert("1"))
    keep("bilevel.xbm", rgb.convert("1"))
    (folder / "xbm-named.png").write_bytes((folder / "bilevel.xbm").read_bytes())  # an XBM called .png
    paths.append(folder / "xbm-named.png")
    keep("grey-alpha.png", rgb.convert("LA"))
    keep("grey16.png", Image.fromarray(np.random.default_rng(1).integers(0, 65535, (7, 9), dtype=np.uint16)))
    save_image(folder / "rgb16.png", torch.rand(1, 3, 7, 9), torch.rand(1, 1, 7, 9), bit_depth=16)
    paths.append(folder / "rgb16.png")
    keep("float.tif", Image.fromarray(np.random.default_rng(2).random((7, 9), dtype=np.float32)))
    keep("cmyk.jpg", rgb.convert("CMYK"))
    keep("lzw.tif", rgb, compression="tiff_lzw")
    keep("two-frames.gif", rgb, save_all=True, append_images=[rgb.rotate(90)])
    keep("bitmap.bmp", rgb)
    keep("lossless.webp", rgb, lossless=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the 3x1 file is a 1x3 picture
    keep("rotated-3x1.jpg", Image.fromarray(_pixels(3, 1)), exif=exif)
    return paths


def _png_chunks(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Chunk type -> (offset of its length field, data length), first of each type."""
    chunks, pos = {}, 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.setdefault(kind, (pos, length))
        pos += 12 + length
    return chunks


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _write_broken(folder: Path) -> list[Path]:
    """Damaged files and things that are not image files: every one must be refused."""
    buffer = io.BytesIO()
    Image.fromarray(_pixels(24, 20)).save(buffer, format="PNG")
    png = buffer.getvalue()
    idat_at, idat_length = _png_chunks(png)[b"IDAT"]
    idat = png[idat_at + 8:idat_at + 8 + idat_length]
    after_idat = idat_at + 12 + idat_length
    files = {f"cut-{cut}.png": png[:-cut] for cut in (12, 20, 100, len(png) // 2)}
    files["idat-shortened.png"] = png[:idat_at] + _chunk(b"IDAT", idat[:len(idat) // 2]) + png[after_idat:]
    bad_crc = bytearray(png)
    bad_crc[after_idat - 1] ^= 0xFF
    files["idat-bad-crc.png"] = bytes(bad_crc)
    bad_data = bytearray(png)
    bad_data[idat_at + 8 + idat_length // 2] ^= 0xFF
    files["idat-bad-data.png"] = bytes(bad_data)
    files["header-only.png"] = png[:idat_at]
    for fmt, suffix in (("JPEG", "jpg"), ("TIFF", "tif"), ("WEBP", "webp")):
        buffer = io.BytesIO()
        Image.fromarray(_pixels(24, 20)).save(buffer, format=fmt)
        files[f"half.{suffix}"] = buffer.getvalue()[:len(buffer.getvalue()) // 2]
    files["empty.png"] = b""
    files["random.png"] = np.random.default_rng(3).integers(0, 256, 500, dtype=np.uint8).tobytes()
    files["text.png"] = b"not a picture\n"
    for name, data in files.items():
        (folder / name).write_bytes(data)
    nan = np.full((6, 8), 0.5, np.float32)
    nan[2, 3] = np.nan
    Image.fromarray(nan).save(folder / "nan.tif")
    os.mkfifo(folder / "fifo.png")
    return [folder / name for name in files] + [folder / "nan.tif", folder / "fifo.png", Path("/dev/zero")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    (root / "valid").mkdir()
    (root / "broken").mkdir()
    style = root / "style.png"
    Image.fromarray(_pixels(32, 24, seed=9)).save(style)
    return {"valid": _write_valid(root / "valid"), "broken": _write_broken(root / "broken"), "style": style,
            "root": root}


@pytest.fixture(scope="module")
def registry():
    return load_registry()


# -- running the CLI in-process, with a watchdog ----------------------------------------------

class Hung(BaseException):
    """Raised by the watchdog; a BaseException so that the CLI's error handling cannot swallow it."""


class MethodRan(BaseException):
    """Raised where a method would run although an output check should have failed first."""


def cli(registry, *args) -> tuple[int, str]:
    def hang(signum, frame):
        raise Hung(f"no answer after {HANG_SECONDS} s: {args}")

    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args], registry=registry)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return code, err.getvalue()


def method_args(method: str, style: Path) -> list:
    return (["--style", style] if method in STYLED else []) + FAST_FLAGS.get(method, []) + ["-q"]


def assert_refused(code: int, stderr: str, names: str) -> None:
    """Exit 2; the message, one line and an optional hint, names ``names``."""
    lines = stderr.splitlines()
    assert code == 2, f"exit {code}: {stderr}"
    assert lines and lines[0].startswith("error:") and names in lines[0], stderr
    assert len(lines) <= 2 and all(line.startswith("  hint:") for line in lines[1:]), stderr
    assert "Traceback" not in stderr


def assert_no_leftovers(folder: Path, expected: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} == expected, "files left behind"


@pytest.fixture
def out_dir(tmp_path) -> Path:
    """An output folder holding an earlier result, which a refused run must leave as it was."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "out.png").write_bytes(SENTINEL)
    return folder


# -- valid odd images: a result from every method -----------------------------------------------

@pytest.fixture(scope="module")
def session(registry, default_encoder):
    return Session(registry, device="cpu", seed=0)


@pytest.mark.parametrize("method", METHODS)
def test_every_odd_valid_image_gives_a_result_the_content_size(session, corpus, method):
    style = corpus["style"]
    for path in corpus["valid"]:
        images = {"content": path, **({"style": [style]} if method in STYLED else {})}
        result = session.run(method, images, FAST_PARAMS.get(method))
        loaded = session.load(path)
        height, width = resize_max_side(loaded.rgb, 32 if method == "gatys" else None).shape[-2:]
        scale = result.rgb.shape[-1] // width if method == "perceptual-sr" else 1
        assert tuple(result.rgb.shape) == (1, 3, height * scale, width * scale), path.name
        assert torch.isfinite(result.rgb).all() and 0 <= result.rgb.min() and result.rgb.max() <= 1, path.name
        assert (result.alpha is None) == (loaded.alpha is None), path.name


@pytest.mark.parametrize("method", STYLED)
def test_every_odd_valid_image_works_as_the_style(session, corpus, method):
    content = corpus["style"]
    for path in corpus["valid"]:
        result = session.run(method, {"content": content, "style": [path]}, FAST_PARAMS.get(method))
        assert tuple(result.rgb.shape) == (1, 3, 24, 32) and torch.isfinite(result.rgb).all(), path.name


@pytest.mark.parametrize("method", METHODS)
def test_tiny_and_odd_images_through_the_cli(registry, corpus, out_dir, method, default_encoder):
    for name, mode in (("rgba-1x1.png", "RGBA"), ("tiny-1x1.jpg", "RGB"), ("xbm-named.png", "RGB")):
        content, out = corpus["root"] / "valid" / name, out_dir / f"{Path(name).stem}.png"
        code, stderr = cli(registry, "run", method, content, "-o", out, *method_args(method, corpus["style"]))
        assert code == 0, stderr
        width, height = Image.open(content).size
        result = Image.open(out)
        scale = result.width // width if method == "perceptual-sr" else 1
        assert result.size == (width * scale, height * scale) and result.mode == mode, name
    assert_no_leftovers(out_dir, {"out.png", "rgba-1x1.png", "tiny-1x1.png", "xbm-named.png"})


# -- bad files and special files: exit 2, naming the file ----------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_every_broken_or_special_file_is_refused_naming_it(registry, corpus, out_dir, method):
    for path in corpus["broken"]:
        code, stderr = cli(registry, "run", method, path, "-o", out_dir / "out.png",
                           *method_args(method, corpus["style"]))
        assert_refused(code, stderr, path.name)
        assert (out_dir / "out.png").read_bytes() == SENTINEL
        assert_no_leftovers(out_dir, {"out.png"})


@pytest.mark.parametrize("method", STYLED)
def test_broken_or_special_style_is_refused_naming_it(registry, corpus, out_dir, method):
    for path in corpus["broken"]:
        code, stderr = cli(registry, "run", method, corpus["style"], "--style", path, "-o", out_dir / "out.png",
                           *FAST_FLAGS.get(method, []))
        assert_refused(code, stderr, path.name)
        assert (out_dir / "out.png").read_bytes() == SENTINEL
        assert_no_leftovers(out_dir, {"out.png"})


def test_nan_pixels_are_named_with_their_file(registry, corpus, out_dir):
    code, stderr = cli(registry, "run", "perceptual", corpus["root"] / "broken" / "nan.tif", "-o",
                       out_dir / "out.png")
    assert_refused(code, stderr, "nan.tif")
    assert "1 NaN pixel" in stderr and "x=3, y=2" in stderr and "weights" not in stderr


# -- paths: inputs ---------------------------------------------------------------------------

def _input_path_cases(root: Path) -> list[tuple[Path, str]]:
    """(input, what the message must name)."""
    (root / "empty").mkdir(exist_ok=True)
    (root / "no-images").mkdir(exist_ok=True)
    (root / "no-images" / "notes.txt").write_text("hello")
    too_long = Path(*["deep"] * 1100, "a.png")  # over PATH_MAX
    long_name = root / ("n" * 256 + ".png")  # over NAME_MAX
    return [(root / "missing.png", "missing.png"), (too_long, "deep/deep"), (long_name, "nnnnnnnn"),
            (root / "empty", "is empty"), (root / "no-images", "no image files"),
            (root / "valid" / "rgb-1x1.png" / "inside.png", "inside.png")]


@pytest.mark.parametrize("method", METHODS)
def test_bad_input_paths_are_refused_naming_the_problem(registry, corpus, out_dir, method):
    for path, named in _input_path_cases(corpus["root"]):
        code, stderr = cli(registry, "run", method, path, "-o", out_dir / "out.png",
                           *method_args(method, corpus["style"]))
        assert_refused(code, stderr, named)
        assert (out_dir / "out.png").read_bytes() == SENTINEL
        assert_no_leftovers(out_dir, {"out.png"})


def test_a_name_at_the_file_system_limit_works(registry, corpus, tmp_path, default_encoder):
    content = tmp_path / ("c" * 251 + ".png")  # 255 bytes
    content.write_bytes((corpus["root"] / "valid" / "rgb-7x5.png").read_bytes())
    out = tmp_path / ("o" * 251 + ".png")  # its temp file's name must be shortened to fit
    code, stderr = cli(registry, "run", "perceptual", content, "-o", out, "-q")
    assert code == 0, stderr
    assert Image.open(out).size == (7, 5)
    # in a folder, the output would be NAME-perceptual.png, 266 bytes: refused before the run
    (tmp_path / "results").mkdir()
    code, stderr = cli(registry, "run", "perceptual", content, "-o", tmp_path / "results")
    assert_refused(code, stderr, "longer than the file system's limit of")
    assert_no_leftovers(tmp_path, {content.name, out.name, "results"})
    assert_no_leftovers(tmp_path / "results", set())


@pytest.fixture
def unreadable(tmp_path, monkeypatch) -> Path:
    """A folder holding an image that this process may not list or enter. Root ignores permissions,
    so for root the refusals a user meets are simulated (os.stat and os.scandir raise EACCES)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    Image.new("RGB", (4, 4)).save(locked / "a.png")
    if os.geteuid() != 0:
        locked.chmod(0)
        yield locked
        locked.chmod(0o755)
        return
    real_stat, real_scandir = os.stat, os.scandir

    def denied(path) -> OSError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    def stat(path, *args, **kwargs):
        if isinstance(path, (str, bytes, os.PathLike)) and Path(os.fsdecode(path)).parent == locked:
            raise denied(path)
        return real_stat(path, *args, **kwargs)

    def scandir(path="."):
        if Path(os.fsdecode(path)) == locked:
            raise denied(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "scandir", scandir)
    yield locked


def test_unreadable_folder_and_file_in_it_are_refused(registry, corpus, out_dir, unreadable):
    for path in (unreadable, unreadable / "a.png"):
        code, stderr = cli(registry, "run", "perceptual", path, "-o", out_dir / "out.png")
        assert_refused(code, stderr, path.name)
        assert "permission denied" in stderr
    code, stderr = cli(registry, "run", "adain", corpus["style"], "--style", unreadable / "a.png",
                       "-o", out_dir / "out.png")
    assert_refused(code, stderr, "a.png")
    assert (out_dir / "out.png").read_bytes() == SENTINEL
    assert_no_leftovers(out_dir, {"out.png"})


# -- paths: outputs, all checked before any work ------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_bad_outputs_are_refused_before_the_method_runs(registry, corpus, tmp_path, monkeypatch, method):
    def never(*args, **kwargs):
        raise MethodRan("the method ran before its output was checked")

    monkeypatch.setattr(Session, "run", never)
    (tmp_path / "out.xyz").write_bytes(SENTINEL)
    os.mkfifo(tmp_path / "pipe.png")
    cases = [(tmp_path / "out.xyz", "out.xyz"), (tmp_path / "missing" / "out.png", "does not exist"),
             (tmp_path / ("o" * 252 + ".png"), "o" * 40),
             (Path(*["deep"] * 1100, "out.png"), "deep/deep"), (tmp_path / "pipe.png", "pipe.png")]
    content = corpus["root"] / "valid" / "rgb-8x8.png"
    for out, named in cases:
        code, stderr = cli(registry, "run", method, content, "-o", out, *method_args(method, corpus["style"]))
        assert_refused(code, stderr, named)
    assert (tmp_path / "out.xyz").read_bytes() == SENTINEL
    assert_no_leftovers(tmp_path, {"out.xyz", "pipe.png"})


def test_unwritable_output_folder_is_refused_before_the_run(registry, corpus, tmp_path, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):  # root may write anywhere: the folder's refusal is simulated
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    def never(*args, **kwargs):
        raise MethodRan("the method ran before its output was checked")

    monkeypatch.setattr(Session, "run", never)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    code, stderr = cli(registry, "run", "perceptual", corpus["root"] / "valid" / "rgb-8x8.png",
                       "-o", tmp_path / "out.png")
    assert_refused(code, stderr, str(tmp_path))
    assert "Permission denied" in stderr
    assert_no_leftovers(tmp_path, set())


# -- interrupts -----------------------------------------------------------------------------

def test_signals_during_cleanup_keep_exit_status_130(corpus, tmp_path, default_encoder):
    """A Ctrl-C, then SIGTERMs every few milliseconds until the process ends: still 130, no file."""
    out = tmp_path / "never.png"
    proc = subprocess.Popen([sys.executable, "-m", "plugin_host", "run", "gatys", str(corpus["style"]),
                             "--style", str(corpus["style"]), "-o", str(out), "--progress", "json",
                             "--iterations", "5000", "--max-size", "32"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stderr:  # wait until the optimisation runs
        if '"event": "progress"' in line:
            break
    proc.send_signal(signal.SIGINT)
    while proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        time.sleep(0.003)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest
    assert_no_leftovers(tmp_path, set())
