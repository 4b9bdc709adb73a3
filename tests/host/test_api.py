"""The Python API: load a method by name, call it on PIL images or tensors."""
import pytest
import torch
from PIL import Image

import plugin_host
from plugin_host.errors import MethodNotFound, ParameterError

FAST = {"iterations": 2, "max_size": 32, "content_layers": "relu2_1", "style_layers": "relu1_1"}


@pytest.fixture(scope="module")
def gatys():
    return plugin_host.load_method("gatys", device="cpu", seed=0)


def test_pil_in_pil_out_with_alpha(gatys, default_encoder):
    content = Image.new("RGBA", (40, 20), (10, 200, 30, 77))
    style = Image.effect_noise((24, 24), 50).convert("RGB")
    out = gatys(content, style=style, **FAST)
    assert isinstance(out, Image.Image) and out.mode == "RGBA" and out.size == (32, 16)
    assert out.getchannel("A").getextrema() == (77, 77)


def test_tensors_in_tensor_out_and_blend_weights(gatys, tiny_image, default_encoder):
    out = gatys(tiny_image, style=[tiny_image, tiny_image.flip(-1)], style_blend=[0.2, 0.8], **FAST)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 3, 21, 32)


def test_unknown_method_and_parameter(gatys, tiny_image):
    with pytest.raises(MethodNotFound, match="did you mean 'gatys'"):
        plugin_host.load_method("gatsy", device="cpu")
    with pytest.raises(ParameterError, match="did you mean 'iterations'"):
        gatys(tiny_image, style=tiny_image, iteration=3)
