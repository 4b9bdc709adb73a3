import pytest
import torch
import torch.nn.functional as F

from plugin_host.imaging import pad_to_min_side, resize_max_side, resize_to, scale


def _checkerboard(height: int, width: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return ((ys + xs) % 2).float().expand(1, 3, height, width).contiguous()


class TestResizeMaxSide:
    def test_smoke_and_shape(self):
        out = resize_max_side(torch.rand(2, 3, 50, 100), 20)
        assert out.shape == (2, 3, 10, 20) and out.dtype == torch.float32

    @pytest.mark.parametrize(("size", "expected"), [((64, 33), (20, 10)), ((33, 64), (10, 20)),
                                                    ((40, 40), (20, 20)), ((60, 1), (20, 1))])
    def test_keeps_aspect(self, size, expected):
        assert resize_max_side(torch.rand(1, 3, *size), 20).shape[-2:] == expected

    def test_no_op_returns_input(self):
        image = torch.rand(1, 3, 10, 20)
        assert resize_max_side(image, None) is image
        assert resize_max_side(image, 20) is image
        assert resize_max_side(image, 64) is image  # never upscales

    def test_antialiased(self):
        # A 1-pixel checkerboard shrunk 3x averages to near grey (4/9 or 5/9 with a triangle
        # filter 3 pixels wide); plain bilinear samples pixel centres and keeps the 0s and 1s.
        image = _checkerboard(30, 30)
        out = resize_max_side(image, 10)
        assert out.shape[-2:] == (10, 10)
        assert (out - 0.5).abs().max() <= 1 / 18 + 1e-6
        plain = F.interpolate(image, size=(10, 10), mode="bilinear", align_corners=False)
        assert (plain - 0.5).abs().max() == 0.5

    def test_range_preserved(self):
        out = resize_max_side(torch.rand(1, 3, 64, 48), 13)
        assert out.min() >= 0 and out.max() <= 1

    @pytest.mark.parametrize("max_side", [0, -3, 2.5, True, "64"])
    def test_bad_max_side(self, max_side):
        with pytest.raises(ValueError, match="max_side"):
            resize_max_side(torch.rand(1, 3, 8, 8), max_side)

    def test_bad_image(self):
        with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
            resize_max_side(torch.rand(3, 8, 8), 4)
        with pytest.raises(ValueError, match="floating"):
            resize_max_side(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 4)
        with pytest.raises(ValueError, match="torch.Tensor"):
            resize_max_side([[1.0]], 4)


class TestResizeTo:
    def test_shape_and_dtype(self):
        out = resize_to(torch.rand(1, 4, 9, 7, dtype=torch.float64), (5, 11))
        assert out.shape == (1, 4, 5, 11) and out.dtype == torch.float64

    def test_hand_computed_mean(self, assert_close):
        image = torch.tensor([[0.0, 1.0], [0.25, 0.75]]).view(1, 1, 2, 2)
        assert_close(resize_to(image, (1, 1)), torch.tensor(0.5).view(1, 1, 1, 1))

    def test_constant_stays_constant(self, assert_close):
        out = resize_to(torch.full((1, 3, 17, 23), 0.3), (40, 9))
        assert_close(out, torch.full_like(out, 0.3))

    def test_same_size_is_identity(self):
        image = torch.rand(1, 3, 6, 6)
        assert resize_to(image, (6, 6)) is image

    @pytest.mark.parametrize("size", [(0, 4), (4,), (4, 4, 4), (4.0, 4), 4])
    def test_bad_size(self, size):
        with pytest.raises(ValueError, match="size"):
            resize_to(torch.rand(1, 3, 8, 8), size)


class TestScale:
    @pytest.mark.parametrize(("factor", "expected"), [(0.5, (5, 8)), (2, (20, 30)), (1.0, (10, 15)),
                                                      (0.01, (1, 1))])
    def test_sizes(self, factor, expected):
        assert scale(torch.rand(1, 3, 10, 15), factor).shape[-2:] == expected

    def test_values(self, assert_close):
        out = scale(_checkerboard(30, 30), 1 / 3)
        assert out.shape[-2:] == (10, 10) and (out - 0.5).abs().max() <= 1 / 18 + 1e-6
        assert_close(scale(torch.full((1, 3, 8, 8), 0.7), 2.5), torch.full((1, 3, 20, 20), 0.7))

    @pytest.mark.parametrize("factor", [0, -1, float("inf"), float("nan"), "2", None])
    def test_bad_factor(self, factor):
        with pytest.raises(ValueError, match="factor"):
            scale(torch.rand(1, 3, 8, 8), factor)


class TestPadToMinSide:
    @pytest.mark.parametrize("size", [(1, 1), (3, 1), (1, 256), (5, 7), (16, 16)])
    def test_pads_centred_and_crops_back_exactly(self, size):
        image = torch.rand(1, 3, *size)
        padded, crop_back = pad_to_min_side(image, 16)
        assert min(padded.shape[-2:]) >= 16 and max(padded.shape[-2:]) == max(16, *size)
        assert torch.equal(crop_back(padded), image)
        if size == (1, 1):  # edge pixels repeated: a flat patch of the one colour
            assert torch.equal(padded, image.expand(1, 3, 16, 16))

    def test_crop_back_follows_the_result_scale(self):
        image = torch.rand(1, 3, 2, 5)
        padded, crop_back = pad_to_min_side(image, 8)
        upscaled = F.interpolate(padded, scale_factor=4, mode="nearest")
        assert torch.equal(crop_back(upscaled), F.interpolate(image, scale_factor=4, mode="nearest"))

    def test_large_enough_is_the_same_tensor(self):
        image = torch.rand(1, 3, 20, 30)
        padded, crop_back = pad_to_min_side(image, 16)
        assert padded is image and crop_back(image) is image
