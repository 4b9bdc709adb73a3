"""The plain-PyTorch baselines of benchmarks/plain.py compute what our methods compute (tiny random networks)."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import plain  # noqa: E402

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def test_plain_gatys_loss_is_ours() -> None:
    from plugin_host.encoders.vgg import VGGEncoder
    from plugin_host_gatys.run import compute_targets, total_loss

    torch.manual_seed(0)
    encoder = VGGEncoder("vgg16", ("relu4_2", *STYLE_LAYERS), convention="caffe")
    content, style, image = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    params = SimpleNamespace(content_layers=("relu4_2",), style_layers=STYLE_LAYERS, content_layer_weights=None,
                             style_layer_weights=None, content_weight=1.0, style_weight=20.0, tv_weight=10.0,
                             style_scale=1.0)
    ours, _ = total_loss(image, encoder, compute_targets(encoder, content, [style], (1.0,), params), params)
    baseline = plain.PlainGatys(encoder.features.state_dict(), content, style)
    torch.testing.assert_close(baseline.loss(image), ours, rtol=1e-5, atol=0)


def test_plain_adain_and_johnson_match_ours() -> None:
    from plugin_host.encoders.vgg import VGGEncoder
    from plugin_host_adain.net import Decoder, adain
    from plugin_host_perceptual.net import TransformerNet, apply_net

    torch.manual_seed(0)
    encoder = VGGEncoder("vgg16", ["relu4_1"], convention="caffe")
    decoder = Decoder("vgg16").eval()
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 48, 40)
    with torch.no_grad():
        c, s = encoder(content)["relu4_1"], encoder(style)["relu4_1"]
        ours = decoder(adain(c, *_mean_std(s))).clamp(0, 1)
    baseline = plain.plain_adain(plain.plain_vgg(encoder.features.state_dict(), 19),
                                 plain.plain_decoder(decoder.state_dict()), content, style)
    torch.testing.assert_close(baseline, ours)

    net = TransformerNet().eval()
    with torch.no_grad():
        torch.testing.assert_close(plain.plain_johnson(plain.PlainTransformerNet().load_ours(net.state_dict()), content),
                                   apply_net(net, content))


def _mean_std(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from plugin_host.losses import mean_std

    return mean_std(features)
