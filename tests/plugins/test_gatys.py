"""Gatys method: conformance, then behaviour on the bundled sample images with the real default encoder."""
from __future__ import annotations

import pytest
import torch

from plugin_host.errors import ParameterError
from plugin_host.runner import Session
from plugin_host.testing import MethodConformance

# Shallow layers keep the conformance checks fast; quality tests below use the defaults.
FAST = {"iterations": 2, "max_size": 48, "content_layers": "relu2_1", "style_layers": "relu1_1,relu2_1"}


class TestGatysConformance(MethodConformance):
    method_name = "gatys"
    params = FAST
    bounds = {"iterations": (1,)}  # the maximum, 10 000 L-BFGS steps, would take minutes


def load(samples_dir, name, size):
    from plugin_host.imaging.io import load_image
    from plugin_host.imaging.resize import resize_max_side

    return resize_max_side(load_image(samples_dir / name).rgb, size)


@pytest.fixture(scope="module")
def session():
    return Session(device="cpu", seed=0)


def measure(session, content, styles, blend, output, **raw):
    """Content and style losses of ``output`` against targets built like the method builds them."""
    from plugin_host_gatys.run import compute_targets, total_loss

    method = session.method("gatys")
    params = session.validate(method, raw)
    encoder = session.context.load_encoder(params.encoder, params.content_layers + params.style_layers)
    targets = compute_targets(encoder, content, styles, blend, params)
    with torch.no_grad():
        _, parts = total_loss(output, encoder, targets, params)
    return parts


@pytest.mark.slow
def test_style_loss_drops_90_percent_and_content_stays_bounded(samples_dir, session):
    content = load(samples_dir, "lighthouse.jpg", 128)
    style = load(samples_dir, "starry_night.jpg", 128)
    raw = {"iterations": 60, "max_size": 128}
    out = session.run("gatys", {"content": content, "style": [style]}, raw).rgb
    before = measure(session, content, [style], (1.0,), content, **raw)
    after = measure(session, content, [style], (1.0,), out, **raw)
    pure_style = measure(session, content, [style], (1.0,), torch.nn.functional.interpolate(
        style, size=content.shape[-2:], mode="bilinear", antialias=True), **raw)
    assert after["style"] <= 0.1 * before["style"], (before, after)
    # the result still shows the content: far closer to it than the style image itself is
    assert after["content"] < 0.5 * pure_style["content"], (after, pure_style)


def test_blend_weights_move_the_result_toward_each_style(samples_dir, session):
    content = load(samples_dir, "parrots.jpg", 48)
    wave = load(samples_dir, "great_wave.jpg", 48)
    starry = load(samples_dir, "starry_night.jpg", 48)
    raw = {"iterations": 15, "max_size": 48}
    distances = []
    for weights in ((1.0, 0.0), (0.5, 0.5), (0.0, 1.0)):
        out = session.run("gatys", {"content": content, "style": [wave, starry]}, raw,
                          blend_weights={"style": weights}).rgb
        distances.append(measure(session, content, [wave], (1.0,), out, **raw)["style"])
    assert distances[0] < distances[1] < distances[2], distances


def test_single_style_blend_equals_plain_run(samples_dir):
    content = load(samples_dir, "parrots.jpg", 32)
    wave = load(samples_dir, "great_wave.jpg", 32)
    starry = load(samples_dir, "starry_night.jpg", 32)
    runs = [Session(device="cpu", seed=0).run("gatys", {"content": content, "style": styles}, FAST,
                                              blend_weights=blend).rgb
            for styles, blend in (([wave], None), ([wave, starry], {"style": (1.0, 0.0)}))]
    assert torch.allclose(runs[0], runs[1], atol=1e-5)


def test_luminance_preservation_keeps_content_chroma(samples_dir, session):
    from plugin_host.imaging.color import rgb_to_ycbcr

    content = load(samples_dir, "parrots.jpg", 48)
    style = load(samples_dir, "starry_night.jpg", 48)
    chroma = {}
    for mode in ("none", "luminance"):
        out = session.run("gatys", {"content": content, "style": [style]},
                          {**FAST, "iterations": 10, "preserve_colors": mode}).rgb
        chroma[mode] = (rgb_to_ycbcr(out)[:, 1:] - rgb_to_ycbcr(content)[:, 1:]).abs().mean().item()
    assert chroma["luminance"] < 0.01 < chroma["none"], chroma


def test_histogram_preservation_moves_colours_toward_the_content(samples_dir, session):
    content = load(samples_dir, "parrots.jpg", 48)
    style = load(samples_dir, "starry_night.jpg", 48)
    gaps = {}
    # From the content (the default), not noise: 10 steps from noise leave the mean colour to chance (ratios
    # 0.64-0.88 over the four sample pairs; the shared golden_gate photo's 0.08 was luck). Measured here: 0.09;
    # 0.09-0.23 over the four pairs.
    for mode in ("none", "histogram"):
        out = session.run("gatys", {"content": content, "style": [style]},
                          {**FAST, "iterations": 20, "preserve_colors": mode}).rgb
        gaps[mode] = (out.mean((2, 3)) - content.mean((2, 3))).abs().sum().item()
    assert gaps["histogram"] < 0.5 * gaps["none"], gaps


def test_noise_init_is_seeded(samples_dir):
    content = load(samples_dir, "parrots.jpg", 32)
    style = load(samples_dir, "great_wave.jpg", 32)
    raw = {**FAST, "init": "noise"}
    a, b, c = (Session(device="cpu", seed=s).run("gatys", {"content": content, "style": [style]}, raw).rgb
               for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_multiscale_and_adam_produce_full_size(samples_dir, session):
    content = load(samples_dir, "parrots.jpg", 64)
    style = load(samples_dir, "great_wave.jpg", 64)
    out = session.run("gatys", {"content": content, "style": [style]},
                      {**FAST, "max_size": 64, "levels": 2, "level_iterations": 2, "optimizer": "adam"}).rgb
    assert out.shape[-2:] == content.shape[-2:]


def test_layer_weights_must_match_layers():
    from plugin_host_gatys.schema import SCHEMA

    with pytest.raises(ParameterError, match="style_layer_weights"):
        SCHEMA.validate({"style_layers": "relu1_1,relu2_1", "style_layer_weights": "1"})
    with pytest.raises(ParameterError, match="init_file"):
        SCHEMA.validate({"init": "file"})


def test_vgg19_encoders_stay_selectable(tmp_path, tiny_image):
    """Any registered VGG works: here a random-init VGG19 (quality does not matter) with average pooling."""
    import types

    from plugin_host import WeightsEntry, hookimpl
    from plugin_host.encoders import VGGEncoder
    from plugin_host.plugins import load_registry
    from plugin_host.weights.store import WeightsStore

    torch.manual_seed(0)
    encoder = VGGEncoder("vgg19", layers=["relu3_1"], convention="torchvision")
    torch.save(encoder.state_dict(), tmp_path / "vgg19-random.pth")
    entry = WeightsEntry("vgg19-random", "vgg19-random.pth", "encoder", "vgg19", "torchvision", None, None)
    extra = types.ModuleType("random_vgg19")
    extra.register_weights = hookimpl(lambda register: register(entry))
    registry = load_registry(extra_plugins=[("random_vgg19", extra)])
    session = Session(registry=registry, device="cpu", seed=0,
                      store=WeightsStore(registry.weights, search_path=[tmp_path]))
    out = session.run("gatys", {"content": tiny_image, "style": [tiny_image.flip(-1)]},
                      {"encoder": "vgg19-random", "pooling": "avg", "iterations": 2, "content_layers": "relu2_1",
                       "style_layers": "relu1_1,relu3_1"}).rgb
    assert out.shape == tiny_image.shape and not torch.equal(out, tiny_image)
