import pytest
import torch

from plugin_host.imaging import CONVENTIONS, EncoderNormalize, from_encoder_input, to_encoder_input

PIXEL = (0.5, 0.25, 1.0)  # R, G, B


def _pixel_image(dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(PIXEL, dtype=dtype).view(1, 3, 1, 1).repeat(2, 1, 2, 3)


EXPECTED = {
    "torchvision": ((0.5 - 0.485) / 0.229, (0.25 - 0.456) / 0.224, (1.0 - 0.406) / 0.225),
    # BGR order, 0..255, minus the B, G, R means.
    "caffe": (1.0 * 255 - 103.939, 0.25 * 255 - 116.779, 0.5 * 255 - 123.68),
    "raw": PIXEL,
}


class TestToEncoderInput:
    def test_conventions_exported(self):
        assert CONVENTIONS == ("torchvision", "caffe", "raw")

    @pytest.mark.parametrize("convention", CONVENTIONS)
    def test_hand_computed(self, convention, assert_close):
        out = to_encoder_input(_pixel_image(torch.float64), convention)
        assert out.shape == (2, 3, 2, 3) and out.dtype == torch.float64
        expected = torch.tensor(EXPECTED[convention], dtype=torch.float64)
        assert_close(out[1, :, 1, 2], expected)
        assert_close(out[0, :, 0, 0], expected)

    @pytest.mark.parametrize("convention", CONVENTIONS)
    def test_round_trip(self, convention, assert_close):
        image = torch.rand(2, 3, 5, 4)
        back = from_encoder_input(to_encoder_input(image, convention), convention)
        assert_close(back, image, atol=1e-5, rtol=0)

    def test_dtype_follows_input(self):
        assert to_encoder_input(torch.rand(1, 3, 2, 2, dtype=torch.float16), "caffe").dtype == torch.float16

    def test_unknown_convention(self):
        with pytest.raises(ValueError, match="torchvision, caffe, raw") as err:
            to_encoder_input(torch.rand(1, 3, 2, 2), "keras")
        assert "'keras'" in str(err.value)
        with pytest.raises(ValueError, match="convention"):
            from_encoder_input(torch.rand(1, 3, 2, 2), "bgr")

    def test_bad_shape(self):
        with pytest.raises(ValueError, match="3 channels"):
            to_encoder_input(torch.rand(1, 1, 2, 2), "torchvision")
        with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
            from_encoder_input(torch.rand(3, 2, 2), "caffe")


class TestFromEncoderInput:
    def test_hand_computed_caffe(self, assert_close):
        x = torch.tensor([255 - 103.939, 0 - 116.779, 127.5 - 123.68]).view(1, 3, 1, 1)
        assert_close(from_encoder_input(x, "caffe").flatten(), torch.tensor([0.5, 0.0, 1.0]))

    def test_not_clamped(self):
        x = torch.full((1, 3, 1, 1), 10.0)
        assert from_encoder_input(x, "torchvision").min() > 1.0


class TestEncoderNormalize:
    @pytest.mark.parametrize("convention", CONVENTIONS)
    def test_module_equals_function(self, convention, assert_close):
        image = torch.rand(2, 3, 4, 5)
        module = EncoderNormalize(convention)
        assert_close(module(image), to_encoder_input(image, convention))
        x = torch.randn(2, 3, 4, 5)
        assert_close(module.inverse(x), from_encoder_input(x, convention))

    def test_buffers_not_persistent(self):
        module = EncoderNormalize("torchvision")
        assert dict(module.named_buffers()).keys() == {"mean", "std"}
        assert module.state_dict() == {}

    def test_dtype_conversion(self, assert_close):
        module = EncoderNormalize("caffe").double()
        assert module.mean.dtype == torch.float64
        out = module(_pixel_image(torch.float64))
        assert_close(out[0, :, 0, 0], torch.tensor(EXPECTED["caffe"], dtype=torch.float64))

    def test_unknown_convention(self):
        with pytest.raises(ValueError, match="convention"):
            EncoderNormalize("imagenet")
