"""StyleGAN's networks: PixelNorm, equalised learning rate, truncation, style mixing, noise, and reading
rosinality's checkpoints (synthetic state dicts of their layouts, checked against direct computations)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from plugin_host.errors import WeightsError
from plugin_host_stylegan.models import read_generator_file
from plugin_host_stylegan.net import EqualConv2d, EqualLinear, mix_styles, pixel_norm
from plugin_host_stylegan.rosinality import convert_stylegan1, convert_stylegan2, build
from plugin_host_stylegan.run import noise_layers_of, rows_of
from stylegan_fixtures import (stylegan1_reference, stylegan1_state, stylegan2_reference, stylegan2_state,
                               tiny_generator)


def z_of(seed: int, dim: int = 32) -> torch.Tensor:
    return torch.randn(1, dim, generator=torch.Generator().manual_seed(seed))


def test_pixel_norm_gives_every_vector_the_root_mean_square_one():
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(0)) * torch.tensor([0.1, 1.0, 30.0, 1e3, 7.0])[:, None]
    normed = pixel_norm(x)
    assert torch.allclose(normed.square().mean(1), torch.ones(5), atol=1e-4)
    assert torch.allclose(normed.norm(dim=1), torch.full((5,), 8.0), atol=1e-3)  # √64
    assert torch.allclose(normed / normed.norm(dim=1, keepdim=True), x / x.norm(dim=1, keepdim=True), atol=1e-6)


def test_equalised_learning_rate_scales_at_run_time_and_slows_a_layer_by_its_multiplier():
    torch.manual_seed(0)
    for lr_mul in (1.0, 0.01):
        layer = EqualLinear(256, 128, bias_init=0.5, lr_mul=lr_mul)
        effective = layer.weight * layer.scale
        assert layer.scale == pytest.approx(lr_mul / 16)
        assert float(effective.detach().std()) == pytest.approx(1 / 16, rel=0.05)  # N(0, 1/fan_in) whatever lr_mul
        x = torch.randn(4, 256)
        assert torch.allclose(layer(x), x @ effective.t() + 0.5, atol=1e-5)
    # One Adam step moves a layer's effective weights lr_mul times as far (Adam's step is ~lr on W).
    moved = {}
    for lr_mul in (1.0, 0.01):
        torch.manual_seed(1)
        layer = EqualLinear(64, 64, lr_mul=lr_mul)
        before = (layer.weight * layer.scale).detach().clone()
        optimizer = torch.optim.Adam(layer.parameters(), lr=0.01)
        layer(torch.randn(8, 64)).square().mean().backward()
        optimizer.step()
        moved[lr_mul] = float(((layer.weight * layer.scale).detach() - before).abs().mean())
    assert moved[0.01] / moved[1.0] == pytest.approx(0.01, rel=0.05)
    conv = EqualConv2d(32, 32, 3, bias=False)
    x = torch.randn(2, 32, 24, 24)
    assert float(conv(x).detach()[..., 2:-2, 2:-2].std()) == pytest.approx(1.0, rel=0.15)  # variance kept


@pytest.mark.parametrize("style_op", ["modulated", "adain"])
def test_truncation_zero_is_the_average_for_every_seed_and_one_changes_nothing(style_op):
    generator = tiny_generator(style_op)
    with torch.no_grad():
        average = [generator.synthesis(generator.styles(z_of(s), psi=0.0), None) for s in (1, 2, 3)]
        assert torch.equal(average[0], average[1]) and torch.equal(average[0], average[2])
        w = generator.mapping(z_of(4))
        assert torch.equal(generator.styles(z_of(4), psi=1.0), w[:, None].repeat(1, generator.n_latent, 1))
        half = generator.styles(z_of(4), psi=0.5, cutoff=3)
        assert torch.allclose(half[:, :3], (w + generator.w_avg) / 2, atol=1e-6)
        assert torch.equal(half[:, 3:], w[:, None].repeat(1, generator.n_latent - 3, 1))


def _layout_and_colour(generator, pairs=6):
    """Per pair of seeds A, B: (layout distance of the mix to A / of B to A, average colour distance of the
    mix to B / of A to B); the mix has A's styles but B's on the fine rows."""

    def picture(w):
        return generator.synthesis(w, generator.make_noise(1, "const"))

    def layout(x, y):
        return float((F.avg_pool2d(x, 8) - F.avg_pool2d(y, 8)).square().mean())

    def colour(x, y):
        return float((x.mean((2, 3)) - y.mean((2, 3))).square().sum())

    found = []
    with torch.no_grad():
        for pair in range(pairs):
            a, b = generator.styles(z_of(2 * pair + 1)), generator.styles(z_of(2 * pair + 2))
            rows = rows_of(generator, "fine")
            mixed = a.clone()
            mixed[:, rows] = b[:, rows]
            pa, pb, pm = picture(a), picture(b), picture(mixed)
            found.append((layout(pm, pa) / layout(pb, pa), colour(pm, pb) / colour(pa, pb)))
    return found


def test_mixing_coarse_styles_keep_the_layout_and_fine_styles_bring_the_colours():
    """The paper's generator (AdaIN, RGB from the last layer), its layers passing their layout on: the last
    AdaIN sets every channel's mean, so the picture's average colour is B's exactly."""
    generator = tiny_generator("adain", resolution=64, identity=3.0)
    assert rows_of(generator, "fine") == [8, 9] and rows_of(generator, "coarse") == [0, 1, 2, 3]
    for layout, colour in _layout_and_colour(generator):
        assert layout < 0.6  # measured 0.18-0.45: far nearer A's downsampled picture than B is
        assert colour < 1e-6  # B's average colour


def test_mixing_in_a_modulated_generator_keeps_the_coarse_layout():
    generator = tiny_generator("modulated", resolution=64)
    layouts = sorted(layout for layout, _ in _layout_and_colour(generator))
    assert layouts[len(layouts) // 2] < 0.5 and layouts[-1] < 1  # measured median 0.2, at most 0.82
    first, second = torch.zeros(1, 5, 2), torch.ones(1, 5, 2)
    assert mix_styles(first, second, 3).sum((0, 2)).tolist() == [0, 0, 0, 2, 2]


@pytest.mark.parametrize("style_op", ["modulated", "adain"])
def test_new_noise_changes_fine_detail_far_more_than_the_layout(style_op):
    """With w fixed, new noise in the fine layers changes the picture's high frequencies, not its layout
    (the paper's figure: noise in the fine layers only, against the coarse ones only). A fresh network has
    equal noise strengths everywhere; a trained one learns weak ones in its coarse layers."""
    generator = tiny_generator(style_op, resolution=64, noise=0.3)
    for seed in (1, 2, 3):
        w = generator.styles(z_of(seed))

        def high_over_low(group):
            layers = noise_layers_of(generator, group)
            with torch.no_grad():
                change = (generator.synthesis(w, generator.make_noise(1, "random", seed=5, layers=layers))
                          - generator.synthesis(w, generator.make_noise(1, "random", seed=6, layers=layers)))
            low = F.interpolate(F.avg_pool2d(change, 8), scale_factor=8)  # the change below 1/8 of the size
            return float((change - low).square().mean() / low.square().mean())

        fine, coarse = high_over_low("fine"), high_over_low("coarse")
        assert fine > 40 and fine > 30 * coarse, (fine, coarse)  # measured 60-80 against 0.1-1.1


def test_noise_modes():
    generator = tiny_generator(resolution=16, noise=0.5)
    w = generator.styles(z_of(1))
    with torch.no_grad():
        def picture(mode, seed, **kw):
            return generator.synthesis(w, generator.make_noise(1, mode, seed=seed, **kw))

        assert generator.make_noise(1, "none") is None
        assert torch.equal(picture("none", 1), picture("none", 2))
        assert torch.equal(picture("const", 1), picture("const", 2))
        assert torch.equal(picture("random", 3), picture("random", 3))
        assert not torch.equal(picture("random", 3), picture("random", 4))
        assert torch.equal(picture("random", 3, strength=0.0), picture("none", 1))
        maps = generator.make_noise(1, "random", seed=3, layers=[1])
        assert [m is not None for m in maps] == [i == 1 for i in range(generator.n_layers)]
        assert torch.equal(maps[1], generator.make_noise(1, "random", seed=3)[1])  # same draws, fewer layers


# -- rosinality checkpoints ------------------------------------------------------------------------------

def test_a_stylegan1_checkpoint_computes_what_its_tensors_say(tmp_path):
    state = stylegan1_state(trained_blocks=6)  # up to 128 px: the fused up-sampling too
    config, converted = convert_stylegan1(state)
    assert config.resolution == 128 and config.style_op == "adain" and config.rgb == "last"
    generator = build(config, converted)
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(3))
    maps = [torch.randn(1, 1, 4 * 2 ** i, 4 * 2 ** i, generator=torch.Generator().manual_seed(i)) for i in range(6)]
    with torch.no_grad():
        ours = generator.synthesis(generator.styles(z), [maps[i // 2] for i in range(generator.n_layers)])
        assert torch.allclose(ours, stylegan1_reference(state, z, 6, maps), atol=1e-4)
        # a file: the dict train.py writes (g_running is used), and the bare state dict
        torch.save({"generator": {"x": torch.zeros(1)}, "discriminator": {}, "g_running": state}, tmp_path / "a.model")
        torch.save(state, tmp_path / "b.model")
        for name in ("a.model", "b.model"):
            loaded = read_generator_file(tmp_path / name, checkpoint_size=32)
            assert loaded.config.resolution == 32
            assert torch.allclose(loaded.synthesis(loaded.styles(z), None),
                                  stylegan1_reference(state, z, 4, [torch.zeros(1)] * 4), atol=1e-4)


def test_a_stylegan1_checkpoint_fades_in_its_last_level():
    state = stylegan1_state(trained_blocks=3)
    z = torch.randn(1, 16, generator=torch.Generator().manual_seed(1))
    half = build(*convert_stylegan1(state, fade=0.0))
    smaller = build(*convert_stylegan1(state, resolution=8))
    with torch.no_grad():
        faded = half.synthesis(half.styles(z), None)
        previous = F.interpolate(smaller.synthesis(smaller.styles(z), None), scale_factor=2, mode="nearest")
    assert faded.shape[-1] == 16 and torch.allclose(faded, previous, atol=1e-5)


def test_a_stylegan2_checkpoint_computes_what_its_tensors_say(tmp_path):
    state = stylegan2_state()
    z = torch.randn(1, 16, generator=torch.Generator().manual_seed(2))
    torch.save({"g_ema": state, "latent_avg": torch.full((16,), 0.25)}, tmp_path / "converted.pt")
    generator = read_generator_file(tmp_path / "converted.pt")
    assert generator.config.resolution == 16 and generator.n_latent == 6
    assert torch.equal(generator.w_avg, torch.full((1, 16), 0.25))
    with torch.no_grad():
        ours = generator.synthesis(generator.styles(z), generator.make_noise(1, "const"))
    assert torch.allclose(ours, stylegan2_reference(state, z, 3), atol=1e-4)


def test_wrong_layouts_get_one_clear_error_naming_the_mismatch(tmp_path):
    state = stylegan1_state()
    del state["generator.progression.1.conv2.conv.bias"]
    state["generator.progression.2.conv2.conv.weight_orig"] = torch.zeros(8, 8, 1, 1)
    torch.save(state, tmp_path / "broken.model")
    with pytest.raises(WeightsError) as caught:
        read_generator_file(tmp_path / "broken.model")
    message = str(caught.value)
    assert "broken.model" in message and "missing generator.progression.1.conv2.conv.bias" in message
    assert "generator.progression.2.conv2.conv.weight_orig has shape (8, 8, 1, 1), expected (8, 8, 3, 3)" in message
    v2 = stylegan2_state()
    v2["mystery.weight"] = torch.zeros(3)
    torch.save({"g_ema": v2}, tmp_path / "extra.pt")
    with pytest.raises(WeightsError, match="unexpected mystery.weight"):
        read_generator_file(tmp_path / "extra.pt")
    torch.save({"encoder": {"w": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="not a StyleGAN generator this plugin reads"):
        read_generator_file(tmp_path / "other.pth")
    silent = stylegan1_state(trained_blocks=0)
    torch.save(silent, tmp_path / "fresh.model")
    with pytest.raises(WeightsError, match="--checkpoint-size"):
        read_generator_file(tmp_path / "fresh.model")
    assert math.isfinite(float(read_generator_file(tmp_path / "fresh.model", checkpoint_size=8).w_avg.sum()))
