import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from plugin_host.errors import InputImageError
from plugin_host.imaging import (DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, LoadedImage, ensure_not_overwriting,
                                 from_pil, load_image, max_pixels_from_env, save_image, to_pil)
from plugin_host import _atomic
from plugin_host.imaging import _codec16


def _grey_pattern(width: int = 6, height: int = 4) -> np.ndarray:
    return (np.arange(width * height, dtype=np.uint8).reshape(height, width) * 10)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG claiming ``width`` x ``height`` whose pixel data is missing."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b""))
    return path


class TestLoadModes:
    def test_mode_1(self, tmp_path):
        img = Image.new("1", (5, 3))
        img.putpixel((1, 2), 1)
        img.save(tmp_path / "a.png")
        out = load_image(tmp_path / "a.png")
        assert out.rgb.shape == (1, 3, 3, 5) and out.alpha is None and out.bit_depth == 8
        assert out.rgb[0, :, 2, 1].tolist() == [1.0, 1.0, 1.0]
        assert out.rgb.sum().item() == 3.0

    def test_mode_L(self, tmp_path, assert_close):
        grey = _grey_pattern()
        Image.fromarray(grey).save(tmp_path / "a.png")
        out = load_image(tmp_path / "a.png")
        expected = torch.from_numpy(grey.astype(np.float32) / 255)
        for c in range(3):
            assert_close(out.rgb[0, c], expected)
        assert out.rgb.dtype == torch.float32 and out.alpha is None

    def test_mode_LA(self, tmp_path, assert_close):
        grey = _grey_pattern()
        alpha = 255 - grey
        Image.fromarray(np.stack([grey, alpha], -1), "LA").save(tmp_path / "a.png")
        out = load_image(tmp_path / "a.png")
        assert_close(out.rgb[0, 1], torch.from_numpy(grey / 255.0).float())
        assert_close(out.alpha[0, 0], torch.from_numpy(alpha / 255.0).float())
        assert out.alpha.shape == (1, 1, 4, 6)

    def test_mode_P_with_transparency(self, tmp_path):
        img = Image.new("P", (4, 2))
        img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
        img.putpixel((3, 1), 1)
        img.info["transparency"] = 0
        img.save(tmp_path / "a.png", transparency=0)
        out = load_image(tmp_path / "a.png")
        assert out.alpha is not None
        assert out.alpha[0, 0, 1, 3].item() == 1.0 and out.alpha.sum().item() == 1.0
        assert out.rgb[0, :, 1, 3].tolist() == [0.0, 0.0, 1.0]
        assert out.rgb[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]

    def test_mode_P_opaque(self, tmp_path, assert_close):
        img = Image.new("P", (3, 3))
        img.putpalette([10, 20, 30] * 256)
        img.save(tmp_path / "a.png")
        out = load_image(tmp_path / "a.png")
        assert out.alpha is None
        assert_close(out.rgb[0, :, 0, 0], torch.tensor([10, 20, 30]) / 255.0)

    def test_mode_RGB_and_RGBA(self, tmp_path, assert_close):
        rgba = np.random.default_rng(0).integers(0, 256, (5, 7, 4), dtype=np.uint8)
        Image.fromarray(rgba[..., :3]).save(tmp_path / "rgb.png")
        Image.fromarray(rgba).save(tmp_path / "rgba.png")
        rgb, with_alpha = load_image(tmp_path / "rgb.png"), load_image(tmp_path / "rgba.png")
        expected = torch.from_numpy(rgba / 255.0).float().permute(2, 0, 1)[None]
        assert_close(rgb.rgb, expected[:, :3])
        assert rgb.alpha is None
        assert_close(with_alpha.rgb, expected[:, :3])
        assert_close(with_alpha.alpha, expected[:, 3:])

    def test_mode_CMYK(self, tmp_path):
        img = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
        img.putpixel((1, 0), (255, 0, 0, 0))  # pure cyan
        img.save(tmp_path / "a.tif")
        out = load_image(tmp_path / "a.tif")
        assert out.rgb[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]
        assert out.rgb[0, :, 0, 1].tolist() == [0.0, 1.0, 1.0]

    def test_mode_I16_png_keeps_16_bits(self, tmp_path, assert_close):
        values = np.array([[0, 1, 257, 12345], [12346, 40000, 65534, 65535]], dtype=np.uint16)
        Image.fromarray(values).save(tmp_path / "a.png")
        assert Image.open(tmp_path / "a.png").mode.startswith("I")
        out = load_image(tmp_path / "a.png")
        assert out.bit_depth == 16 and out.alpha is None
        expected = torch.from_numpy(values.astype(np.float64) / 65535).float()
        for c in range(3):
            assert_close(out.rgb[0, c], expected, atol=1e-7, rtol=0)
        assert out.rgb[0, 0, 1, 0] > out.rgb[0, 0, 0, 3]  # 12346 vs 12345: distinct in 16 bits

    @pytest.mark.parametrize(("mode", "scale"), [("I;16B", 65535), ("I;16L", 65535), ("I", 65535), ("F", 1)])
    def test_high_depth_grey_modes(self, mode, scale):
        values = np.array([[0, 1, 300], [40000, 65534, 65535]], dtype=np.float64) / 65535 * scale
        img = Image.new(mode, (3, 2))
        for (y, x), v in np.ndenumerate(values):
            img.putpixel((x, y), float(v) if mode == "F" else round(v))
        out = from_pil(img)
        assert out.bit_depth == 16 and out.rgb.shape == (1, 3, 2, 3)
        expected = torch.from_numpy(values / scale).float()
        for c in range(3):
            assert (out.rgb[0, c] - expected).abs().max() < 1e-7

    def test_corrupt_16_bit_png(self, tmp_path):
        path = save_image(tmp_path / "a.png", torch.rand(1, 3, 8, 8), bit_depth=16)
        data = path.read_bytes()
        idat = data.index(b"IDAT") + 4
        path.write_bytes(data[:idat] + b"\xff" * 10 + data[idat + 10:])
        with pytest.raises(InputImageError, match="cannot read image"):
            load_image(path)

    @pytest.mark.parametrize("suffix", [".png", ".tif"])
    def test_16_bit_colour_fallback_to_pillow(self, tmp_path, monkeypatch, suffix):
        # Where Pillow cannot decode the low bytes, its 8-bit decode is kept and the file's depth
        # is still reported.
        rgb = torch.rand(1, 3, 5, 6)
        path = save_image(tmp_path / f"a{suffix}", rgb, bit_depth=16)

        def unsupported(tile):
            raise ValueError("no such rawmode")

        monkeypatch.setattr(_codec16, "_swap_byte_order", unsupported)
        out = load_image(path)
        assert out.bit_depth == 16
        assert 0.5 / 65535 < (out.rgb - rgb).abs().max() < 1 / 255

    def test_16_bit_png_colour_key_transparency(self, tmp_path):
        rgb = torch.rand(1, 3, 4, 5)
        rgb[..., 1, 2] = torch.tensor([1000, 2000, 3000]) / 65535
        path = save_image(tmp_path / "a.png", rgb, bit_depth=16)
        data = path.read_bytes()
        path.write_bytes(data[:33] + _png_chunk(b"tRNS", struct.pack(">HHH", 1000, 2000, 3000)) + data[33:])
        out = load_image(path)
        assert out.bit_depth == 16 and out.alpha is not None
        assert out.alpha[0, 0, 1, 2] == 0 and out.alpha.sum() == 4 * 5 - 1

    def test_from_pil_object(self, assert_close):
        img = Image.new("RGB", (3, 2), (255, 0, 51))
        out = load_image(img)
        assert out.source is None and out.size == (3, 2)
        assert_close(out.rgb[0, :, 1, 2], torch.tensor([1.0, 0.0, 0.2]))

    def test_source_and_size(self, tmp_path):
        Image.new("RGB", (9, 4)).save(tmp_path / "a.png")
        out = load_image(str(tmp_path / "a.png"))
        assert isinstance(out, LoadedImage) and out.size == (9, 4) and out.source == tmp_path / "a.png"


class TestExifOrientation:
    def test_jpeg_orientation_6_rotates(self, tmp_path):
        img = Image.new("RGB", (20, 10), (255, 0, 0))
        img.paste((0, 0, 255), (10, 0, 20, 10))  # left half red, right half blue
        exif = Image.Exif()
        exif[0x0112] = 6
        img.save(tmp_path / "a.jpg", exif=exif, quality=95)
        out = load_image(tmp_path / "a.jpg")
        assert out.size == (10, 20)
        # Orientation 6 = rotate 90 degrees clockwise for display: the left column ends on top.
        top, bottom = out.rgb[0, :, 4, 5], out.rgb[0, :, 15, 5]
        assert top[0] > 0.9 and top[2] < 0.1
        assert bottom[2] > 0.9 and bottom[0] < 0.1

    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_tensor_orientation_matches_pillow(self, orientation):
        array = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3) * 5
        img = Image.fromarray(array)
        exif = img.getexif()
        exif[0x0112] = orientation
        expected = np.asarray(ImageOps.exif_transpose(img))
        got = _codec16.ORIENT.get(orientation, lambda a: a)(array)
        assert np.array_equal(got, expected)

    def test_16_bit_png_orientation(self, tmp_path, assert_close):
        rgb = torch.rand(1, 3, 4, 6)
        path = save_image(tmp_path / "a.png", rgb, bit_depth=16)
        exif = Image.Exif()
        exif[0x0112] = 6
        data = path.read_bytes()
        path.write_bytes(data[:33] + _png_chunk(b"eXIf", exif.tobytes()[6:]) + data[33:])
        out = load_image(path)
        assert out.bit_depth == 16 and out.size == (4, 6)
        assert_close(out.rgb, torch.rot90(rgb, -1, (-2, -1)), atol=1e-5, rtol=0)


class TestPixelCap:
    def test_cap_names_size_cap_and_env(self, tmp_path):
        Image.new("RGB", (8, 4)).save(tmp_path / "a.png")
        with pytest.raises(InputImageError) as err:
            load_image(tmp_path / "a.png", max_pixels=31)
        text = str(err.value)
        assert "8x4" in text and "32" in text and "31" in text and MAX_PIXELS_ENV in text
        assert load_image(tmp_path / "a.png", max_pixels=32).size == (8, 4)

    def test_cap_from_env(self, tmp_path, monkeypatch):
        Image.new("RGB", (8, 4)).save(tmp_path / "a.png")
        monkeypatch.setenv(MAX_PIXELS_ENV, "10")
        assert max_pixels_from_env() == 10
        with pytest.raises(InputImageError, match="limit of 10"):
            load_image(tmp_path / "a.png")
        monkeypatch.delenv(MAX_PIXELS_ENV)
        assert max_pixels_from_env() == DEFAULT_MAX_PIXELS == 100_000_000

    @pytest.mark.parametrize("value", ["lots", "0", "-5", "_1", "1.5e8"])
    def test_bad_env_value(self, monkeypatch, value):
        monkeypatch.setenv(MAX_PIXELS_ENV, value)
        with pytest.raises(InputImageError, match=MAX_PIXELS_ENV):
            max_pixels_from_env()

    def test_bad_argument(self, tmp_path):
        with pytest.raises(ValueError, match="max_pixels"):
            load_image(tmp_path / "a.png", max_pixels=0)

    def test_checked_from_header_before_decoding(self, tmp_path):
        path = _png_header_only(tmp_path / "big.png", 10_000, 10_000)
        with pytest.raises(InputImageError, match="10000x10000"):
            load_image(path, max_pixels=1000)

    def test_pillow_bomb_guard_becomes_input_error(self, tmp_path):
        path = _png_header_only(tmp_path / "huge.png", 20_000, 20_000)  # above Pillow's hard limit
        with pytest.raises(InputImageError, match="limit"):
            load_image(path)

    def test_raised_cap_lifts_pillow_limit_temporarily(self, tmp_path):
        path = _png_header_only(tmp_path / "huge.png", 20_000, 20_000)
        before = Image.MAX_IMAGE_PIXELS
        with pytest.raises(InputImageError, match="cannot read image") as err:
            load_image(path, max_pixels=500_000_000)  # passes both guards, then has no pixel data
        assert "limit" not in str(err.value)
        assert Image.MAX_IMAGE_PIXELS == before


class TestReadErrors:
    def test_not_an_image(self, tmp_path):
        (tmp_path / "x.txt").write_text("hello")
        with pytest.raises(InputImageError, match="not an image format Pillow knows") as err:
            load_image(tmp_path / "x.txt")
        assert "x.txt" in str(err.value) and err.value.hint

    def test_missing_file(self, tmp_path):
        with pytest.raises(InputImageError, match="not found") as err:
            load_image(tmp_path / "nope.png")
        assert err.value.hint

    def test_folder(self, tmp_path):
        with pytest.raises(InputImageError, match="folder"):
            load_image(tmp_path)

    def test_truncated(self, tmp_path):
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            tmp_path / "a.png")
        data = (tmp_path / "a.png").read_bytes()
        (tmp_path / "a.png").write_bytes(data[: len(data) // 2])
        with pytest.raises(InputImageError, match="cannot read image") as err:
            load_image(tmp_path / "a.png")
        assert err.value.hint


class TestSaveImage:
    @pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
    def test_lossless_round_trip(self, tmp_path, suffix, assert_close):
        rgb, alpha = torch.rand(1, 3, 5, 7), torch.rand(1, 1, 5, 7)
        path = save_image(tmp_path / f"a{suffix}", rgb, alpha)
        assert path == tmp_path / f"a{suffix}"
        out = load_image(path)
        assert out.bit_depth == 8
        assert_close(out.rgb, (rgb * 255).round() / 255, atol=1e-6, rtol=0)
        assert_close(out.alpha, (alpha * 255).round() / 255, atol=1e-6, rtol=0)

    @pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".webp"])
    def test_lossy_formats(self, tmp_path, suffix):
        rgb = torch.full((1, 3, 16, 16), 0.5)
        rgb[:, 0] = 0.8
        out = load_image(save_image(tmp_path / f"a{suffix}", rgb, torch.ones(1, 1, 16, 16)))
        assert (out.rgb - rgb).abs().max() < 0.03
        assert Image.open(tmp_path / f"a{suffix}").format == {".webp": "WEBP"}.get(suffix, "JPEG")

    def test_jpeg_drops_alpha(self, tmp_path):
        out = load_image(save_image(tmp_path / "a.jpg", torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8)))
        assert out.alpha is None and out.rgb.max() < 0.02  # dropped, not composited over white

    def test_rounding_and_clamping(self, tmp_path):
        rgb = torch.tensor([0.2, 1.5, -0.1, 0.5 / 255, 1.49 / 255, float("nan")]).view(1, 1, 1, 6).repeat(1, 3, 1, 1)
        out = np.asarray(Image.open(save_image(tmp_path / "a.png", rgb)))
        assert out[0, :, 0].tolist() == [51, 255, 0, 0, 1, 0]  # round half to even, NaN -> 0

    @pytest.mark.parametrize("suffix", [".png", ".tif"])
    @pytest.mark.parametrize("with_alpha", [False, True])
    def test_16_bit_round_trip_beats_8_bit(self, tmp_path, suffix, with_alpha):
        rgb = torch.rand(1, 3, 6, 9, dtype=torch.float64).float()
        alpha = torch.rand(1, 1, 6, 9) if with_alpha else None
        out16 = load_image(save_image(tmp_path / f"a16{suffix}", rgb, alpha, bit_depth=16))
        out8 = load_image(save_image(tmp_path / f"a8{suffix}", rgb, alpha, bit_depth=8))
        assert out16.bit_depth == 16 and out8.bit_depth == 8
        err16, err8 = (out16.rgb - rgb).abs().max(), (out8.rgb - rgb).abs().max()
        assert err16 <= 0.5 / 65535 + 1e-7 and err8 > 10 * err16
        assert Image.open(tmp_path / f"a16{suffix}").mode == ("RGBA" if with_alpha else "RGB")
        if with_alpha:
            assert (out16.alpha - alpha).abs().max() <= 0.5 / 65535 + 1e-7
        else:
            assert out16.alpha is None

    def test_16_bit_png_in_several_idat_chunks(self, tmp_path, monkeypatch):
        monkeypatch.setattr(_codec16, "_IDAT_SIZE", 64)
        rgb = torch.rand(1, 3, 16, 16)
        path = save_image(tmp_path / "a.png", rgb, bit_depth=16)
        assert path.read_bytes().count(b"IDAT") > 3
        assert (load_image(path).rgb - rgb).abs().max() <= 0.5 / 65535 + 1e-7

    def test_16_bit_files_decode_in_pillow(self, tmp_path):
        rgb = torch.rand(1, 3, 5, 4)
        for suffix in (".png", ".tif"):
            img = Image.open(save_image(tmp_path / f"a{suffix}", rgb, bit_depth=16))
            img.load()  # Pillow reads our 16-bit files (at 8 bits): they are well-formed
            expected = (rgb[0].permute(1, 2, 0).numpy() * 65535).round().astype(np.uint16) >> 8
            assert np.array_equal(np.asarray(img), expected.astype(np.uint8))

    def test_unknown_suffix(self, tmp_path):
        with pytest.raises(InputImageError, match="unknown image type") as err:
            save_image(tmp_path / "a.bmpx", torch.rand(1, 3, 2, 2))
        assert ".png" in err.value.hint and ".webp" in err.value.hint

    def test_16_bit_jpeg_refused(self, tmp_path):
        with pytest.raises(InputImageError, match="16 bits") as err:
            save_image(tmp_path / "a.jpg", torch.rand(1, 3, 2, 2), bit_depth=16)
        assert ".tif" in err.value.hint

    def test_missing_folder(self, tmp_path):
        with pytest.raises(InputImageError, match="does not exist"):
            save_image(tmp_path / "nope" / "a.png", torch.rand(1, 3, 2, 2))
        assert not (tmp_path / "nope").exists()

    def test_bad_arguments(self, tmp_path):
        with pytest.raises(ValueError, match="channels"):
            save_image(tmp_path / "a.png", torch.rand(1, 4, 2, 2))
        with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
            save_image(tmp_path / "a.png", torch.rand(3, 2, 2))
        with pytest.raises(ValueError, match="alpha"):
            save_image(tmp_path / "a.png", torch.rand(1, 3, 2, 2), torch.rand(1, 1, 3, 2))
        with pytest.raises(ValueError, match="bit_depth"):
            save_image(tmp_path / "a.png", torch.rand(1, 3, 2, 2), bit_depth=12)

    @pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
    def test_file_mode_follows_umask(self, tmp_path):
        path = save_image(tmp_path / "a.png", torch.rand(1, 3, 2, 2))
        assert path.stat().st_mode & 0o777 == 0o666 & ~_atomic._umask()


class TestAtomicWrite:
    def _failing_save(self, error):
        def save(self, fp, *args, **kwargs):
            fp.write(b"partial data")
            raise error
        return save

    def test_failure_leaves_nothing(self, tmp_path, monkeypatch):
        monkeypatch.setattr(Image.Image, "save", self._failing_save(RuntimeError("encoder died")))
        with pytest.raises(RuntimeError, match="encoder died"):
            save_image(tmp_path / "a.png", torch.rand(1, 3, 4, 4))
        assert list(tmp_path.iterdir()) == []

    def test_failure_keeps_previous_file(self, tmp_path, monkeypatch):
        (tmp_path / "a.png").write_bytes(b"old")
        monkeypatch.setattr(Image.Image, "save", self._failing_save(OSError(28, "No space left on device")))
        with pytest.raises(InputImageError, match="No space left"):
            save_image(tmp_path / "a.png", torch.rand(1, 3, 4, 4))
        assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
        assert (tmp_path / "a.png").read_bytes() == b"old"

    def test_16_bit_failure_leaves_nothing(self, tmp_path, monkeypatch):
        def broken(fp, array):
            fp.write(b"\x89PNG")
            raise KeyboardInterrupt
        monkeypatch.setattr(_codec16, "write_png16", broken)
        with pytest.raises(KeyboardInterrupt):
            save_image(tmp_path / "a.png", torch.rand(1, 3, 4, 4), bit_depth=16)
        assert list(tmp_path.iterdir()) == []

    def test_replaces_existing(self, tmp_path):
        (tmp_path / "a.png").write_bytes(b"old")
        save_image(tmp_path / "a.png", torch.zeros(1, 3, 2, 2))
        assert load_image(tmp_path / "a.png").size == (2, 2)
        assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


class TestEnsureNotOverwriting:
    def test_same_file_refused(self, tmp_path):
        Image.new("RGB", (2, 2)).save(tmp_path / "in.png")
        with pytest.raises(InputImageError, match="would be overwritten") as err:
            ensure_not_overwriting(tmp_path / "in.png", [tmp_path / "style.png", tmp_path / "in.png"], False)
        assert err.value.hint == "pass --overwrite or choose another output name"

    def test_other_spelling_and_link(self, tmp_path):
        Image.new("RGB", (2, 2)).save(tmp_path / "in.png")
        (tmp_path / "sub").mkdir()
        with pytest.raises(InputImageError):
            ensure_not_overwriting(tmp_path / "sub" / ".." / "in.png", [tmp_path / "in.png"], False)
        os.link(tmp_path / "in.png", tmp_path / "hard.png")
        with pytest.raises(InputImageError):
            ensure_not_overwriting(tmp_path / "hard.png", [tmp_path / "in.png"], False)

    def test_allowed(self, tmp_path):
        Image.new("RGB", (2, 2)).save(tmp_path / "in.png")
        ensure_not_overwriting(tmp_path / "in.png", [tmp_path / "in.png"], True)
        ensure_not_overwriting(tmp_path / "out.png", [tmp_path / "in.png"], False)
        Image.new("RGB", (2, 2)).save(tmp_path / "out.png")
        ensure_not_overwriting(tmp_path / "out.png", [tmp_path / "in.png"], False)


class TestPilHelpers:
    def test_round_trip(self, assert_close):
        rgb, alpha = torch.rand(1, 3, 3, 4), torch.rand(1, 1, 3, 4)
        img = to_pil(rgb, alpha)
        assert img.mode == "RGBA" and img.size == (4, 3)
        back = from_pil(img)
        assert_close(back.rgb, (rgb * 255).round() / 255, atol=1e-6, rtol=0)
        assert_close(back.alpha, (alpha * 255).round() / 255, atol=1e-6, rtol=0)
        assert to_pil(rgb).mode == "RGB"

    def test_from_pil_does_not_rotate(self):
        img = Image.new("RGB", (4, 2))
        img.getexif()[0x0112] = 6
        assert from_pil(img).size == (4, 2)
        assert load_image(img).size == (2, 4)

    def test_to_pil_validates(self):
        with pytest.raises(ValueError, match="batch size 1"):
            to_pil(torch.rand(2, 3, 2, 2))
