"""bf16 networks give what fp32 networks give, for the shipped feed-forward models on a bundled sample photo.

Runs with ``--precision bf16`` explicitly, so the bf16 path is checked on every machine (on one
without bf16 units it is emulated: slower, same numbers). Gatys is left out on purpose: an
optimisation amplifies any difference into a different, equally good picture.
"""
import math

import pytest
import torch

import plugin_host
from plugin_host.imaging.io import load_image

pytestmark = pytest.mark.slow

MIN_PSNR_DB = 40.0  # about 2.5/255 RMS; measured 49-59 dB (also on the shared tubingen photo)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / float((a - b).square().mean()))


@pytest.mark.parametrize("method, params, side", [
    ("perceptual", {"model": "perceptual-starry-night"}, 128),
    ("perceptual-sr", {"model": "perceptual-sr-x4-pixel"}, 64),
    ("adain", {"max_size": 0, "style_size": 128}, 128),
])
def test_bf16_matches_fp32(samples_dir, method, params, side):
    photo = load_image(samples_dir / "parrots.jpg").rgb
    photo = torch.nn.functional.interpolate(photo, size=(side * 3 // 4, side), mode="area")
    style = samples_dir / "great_wave.jpg"
    extra = {"style": str(style)} if method == "adain" else {}
    outputs = [plugin_host.load_method(method, device="cpu", seed=0, precision=precision)(photo, **extra, **params)
               for precision in ("fp32", "bf16")]
    assert outputs[0].shape == outputs[1].shape
    assert not torch.equal(*outputs)  # the bf16 path really ran
    assert psnr(*outputs) >= MIN_PSNR_DB
