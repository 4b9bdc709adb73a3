"""Tiny StyleGAN generators for the tests, and synthetic state dicts in the layouts of rosinality's checkpoints.

The rosinality layouts follow the key and shape tables of ../shared/research/stylegan-gatedgan-notes.md
(§1.5 for style-based-gan-pytorch, §2.1 for stylegan2-pytorch); the tensors are random.
"""
from __future__ import annotations

import math
import types
from pathlib import Path

import torch

from plugin_host import UrlSource, WeightsEntry, hookimpl
from plugin_host.plugins import load_registry
from plugin_host_stylegan.net import Generator, GeneratorConfig, widths_for
from plugin_host_stylegan.rosinality import estimate_w_avg
from plugin_host_stylegan.schema import MODEL_KIND

TEST_GENERATOR = "stylegan-test"


def tiny_generator(style_op: str = "modulated", rgb: str | None = None, resolution: int = 32, seed: int = 0,
                   identity: float = 0.0, noise: float = 0.0, classes: tuple[str, ...] = ()) -> Generator:
    """A random narrow generator whose outputs stay near 0..1 (its RGB weights shrunk, as training does).

    ``identity`` adds that much of a centre-tap identity to every 3×3 kernel, so that layers pass their
    input's layout on (as a trained generator's fine layers mostly do); ``noise`` sets every layer's
    noise strengths (a fresh network has them at 0).
    """
    torch.manual_seed(seed)
    config = GeneratorConfig(resolution=resolution, widths=widths_for(resolution, 512, 32), z_dim=32, w_dim=32,
                             mapping_layers=4, style_op=style_op, rgb=rgb or ("last" if style_op == "adain" else "skip"),
                             classes=classes)
    generator = Generator(config).eval().requires_grad_(False)
    with torch.no_grad():
        for layer in generator.synthesis.layers:
            layer.noise_strength.fill_(noise)
            if layer.weight is not None and identity:
                channels = min(layer.weight.shape[:2])
                layer.weight[torch.arange(channels), torch.arange(channels), 1, 1] += 3 * identity
        for rgb_layer in generator.synthesis.to_rgb:
            rgb_layer.weight.mul_(0.25)
        generator.w_avg.copy_(estimate_w_avg(generator, samples=1024))
    return generator


def export_generator(generator: Generator, path: Path) -> Path:
    from plugin_host.training import export_model

    export_model(path, generator, {"generator": generator.config.to_json()}, dtype=torch.float32)
    return path


def registry_with(path: Path, name: str = TEST_GENERATOR):
    """The installed plugins plus one that registers the generator file ``path`` as ``name``."""
    entry = WeightsEntry(name, path.name, MODEL_KIND, "stylegan", "raw", UrlSource(path.resolve().as_uri()), None)
    plugin = types.ModuleType("stylegan_test_generator")
    plugin.register_weights = hookimpl(lambda register: register(entry))
    return load_registry(extra_plugins=[("stylegan_test_generator", plugin)])


# -- rosinality layouts --------------------------------------------------------------------------------

def _blur() -> torch.Tensor:
    k = torch.tensor([1.0, 2.0, 1.0])
    return (torch.outer(k, k) / 16)[None, None]


def stylegan1_state(widths=(8, 8, 8, 8, 8, 8, 4, 4, 4), trained_blocks: int = 3, z_dim: int = 16,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """A StyledGenerator state dict (all nine blocks; noise weights zero above ``trained_blocks``)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    state: dict[str, torch.Tensor] = {}
    for k in range(8):
        state[f"style.{2 * k + 1}.linear.weight_orig"] = rand(z_dim, z_dim)
        state[f"style.{2 * k + 1}.linear.bias"] = rand(z_dim, scale=0.1)
    state["generator.progression.0.conv1.input"] = rand(1, widths[0], 4, 4)
    for i, c in enumerate(widths):
        p, c_in = f"generator.progression.{i}", widths[max(i - 1, 0)]
        if 1 <= i <= 4:
            state[p + ".conv1.1.conv.weight_orig"] = rand(c, c_in, 3, 3)
            state[p + ".conv1.1.conv.bias"] = rand(c, scale=0.1)
            state[p + ".conv1.2.weight"] = _blur().expand(c, 1, 3, 3).clone()
            state[p + ".conv1.2.weight_flip"] = _blur().expand(c, 1, 3, 3).clone()
        elif i >= 5:
            state[p + ".conv1.0.weight"] = rand(c_in, c, 3, 3)
            state[p + ".conv1.0.bias"] = rand(c, scale=0.1)
            state[p + ".conv1.1.weight"] = _blur().expand(c, 1, 3, 3).clone()
            state[p + ".conv1.1.weight_flip"] = _blur().expand(c, 1, 3, 3).clone()
        state[p + ".conv2.conv.weight_orig"] = rand(c, c, 3, 3)
        state[p + ".conv2.conv.bias"] = rand(c, scale=0.1)
        for n in (1, 2):
            state[f"{p}.noise{n}.weight_orig"] = rand(1, c, 1, 1, scale=0.1) if i < trained_blocks else torch.zeros(1, c, 1, 1)
            state[f"{p}.adain{n}.style.linear.weight_orig"] = rand(2 * c, z_dim)
            state[f"{p}.adain{n}.style.linear.bias"] = torch.cat([torch.ones(c), torch.zeros(c)])
        state[f"generator.to_rgb.{i}.conv.weight_orig"] = rand(3, c, 1, 1)
        state[f"generator.to_rgb.{i}.conv.bias"] = rand(3, scale=0.1)
    return state


def stylegan2_state(widths=(8, 8, 4), z_dim: int = 16, mapping: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """A stylegan2-pytorch Generator state dict for 4·2^(len(widths)-1) px."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    kernel = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1]))
    state: dict[str, torch.Tensor] = {}
    for k in range(1, mapping + 1):
        state[f"style.{k}.weight"] = rand(z_dim, z_dim, scale=100.0)  # stored N(0, 1/lr_mul²)
        state[f"style.{k}.bias"] = rand(z_dim, scale=0.1)
    state["input.input"] = rand(1, widths[0], 4, 4)

    def styled(prefix: str, c_in: int, c_out: int, up: bool) -> None:
        state[prefix + ".conv.weight"] = rand(1, c_out, c_in, 3, 3)
        state[prefix + ".conv.modulation.weight"] = rand(c_in, z_dim)
        state[prefix + ".conv.modulation.bias"] = torch.ones(c_in)
        state[prefix + ".noise.weight"] = rand(1, scale=0.1)
        state[prefix + ".activate.bias"] = rand(c_out, scale=0.1)
        if up:
            state[prefix + ".conv.blur.kernel"] = kernel / kernel.sum() * 4

    def to_rgb(prefix: str, c_in: int, up: bool) -> None:
        state[prefix + ".conv.weight"] = rand(1, 3, c_in, 1, 1)
        state[prefix + ".conv.modulation.weight"] = rand(c_in, z_dim)
        state[prefix + ".conv.modulation.bias"] = torch.ones(c_in)
        state[prefix + ".bias"] = rand(1, 3, 1, 1, scale=0.1)
        if up:
            state[prefix + ".upsample.kernel"] = kernel / kernel.sum() * 4

    styled("conv1", widths[0], widths[0], False)
    to_rgb("to_rgb1", widths[0], False)
    for j in range(len(widths) - 1):
        styled(f"convs.{2 * j}", widths[j], widths[j + 1], True)
        styled(f"convs.{2 * j + 1}", widths[j + 1], widths[j + 1], False)
        to_rgb(f"to_rgbs.{j}", widths[j + 1], True)
    for j in range(2 * len(widths) - 1):
        res = 4 * 2 ** ((j + 1) // 2)
        state[f"noises.noise_{j}"] = rand(1, 1, res, res)
    return state


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.leaky_relu(x, 0.2)


def stylegan1_reference(state, z, blocks: int, noise: list[torch.Tensor]) -> torch.Tensor:
    """The StyleGAN1 generator of ``state`` computed straight from its tensors (one noise map per block)."""
    F = torch.nn.functional
    x = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
    for k in range(8):
        weight = state[f"style.{2 * k + 1}.linear.weight_orig"]
        x = lrelu(F.linear(x, weight * math.sqrt(2 / weight.shape[1]), state[f"style.{2 * k + 1}.linear.bias"]))
    w = x
    blur = _blur()

    def adain(out, prefix):
        weight = state[prefix + ".style.linear.weight_orig"]
        style = F.linear(w, weight * math.sqrt(2 / weight.shape[1]), state[prefix + ".style.linear.bias"])
        gamma, beta = style.chunk(2, 1)
        return gamma[..., None, None] * F.instance_norm(out) + beta[..., None, None]

    def blurred(out):
        return F.conv2d(out, blur.expand(out.shape[1], 1, 3, 3), padding=1, groups=out.shape[1])

    out = state["generator.progression.0.conv1.input"]
    for i in range(blocks):
        p = f"generator.progression.{i}"
        if 1 <= i <= 4:
            weight = state[p + ".conv1.1.conv.weight_orig"]
            scale = math.sqrt(2 / (weight.shape[1] * 9))
            out = blurred(F.conv2d(F.interpolate(out, scale_factor=2, mode="nearest"), weight * scale,
                                   state[p + ".conv1.1.conv.bias"], padding=1))
        elif i >= 5:
            weight = state[p + ".conv1.0.weight"]
            weight = F.pad(weight * math.sqrt(2 / (weight.shape[0] * 9)), [1, 1, 1, 1])
            weight = (weight[:, :, 1:, 1:] + weight[:, :, :-1, 1:] + weight[:, :, 1:, :-1] + weight[:, :, :-1, :-1]) / 4
            out = blurred(F.conv_transpose2d(out, weight, state[p + ".conv1.0.bias"], stride=2, padding=1))
        c = out.shape[1]
        out = out + state[p + ".noise1.weight_orig"] * math.sqrt(2 / c) * noise[i]
        out = adain(lrelu(out), p + ".adain1")
        weight = state[p + ".conv2.conv.weight_orig"]
        out = F.conv2d(out, weight * math.sqrt(2 / (c * 9)), state[p + ".conv2.conv.bias"], padding=1)
        out = out + state[p + ".noise2.weight_orig"] * math.sqrt(2 / c) * noise[i]
        out = adain(lrelu(out), p + ".adain2")
    weight = state[f"generator.to_rgb.{blocks - 1}.conv.weight_orig"]
    return F.conv2d(out, weight * math.sqrt(2 / weight.shape[1]), state[f"generator.to_rgb.{blocks - 1}.conv.bias"])


def stylegan2_reference(state, z, blocks: int) -> torch.Tensor:
    """The StyleGAN2 generator of ``state`` (batch 1, its const noise maps), with per-sample grouped
    convolutions of the modulated, demodulated weights: the fused form, not the one plugin_host uses."""
    F = torch.nn.functional
    sqrt2 = math.sqrt(2)
    x = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
    for k in range(1, 9):
        weight = state[f"style.{k}.weight"]
        x = sqrt2 * lrelu(F.linear(x, weight * 0.01 / math.sqrt(weight.shape[1])) + state[f"style.{k}.bias"] * 0.01)
    w = x
    kernel = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1]))
    kernel = kernel / kernel.sum() * 4

    def fir(out, pad):
        c = out.shape[1]
        return F.conv2d(F.pad(out, [pad[0], pad[1], pad[0], pad[1]]), kernel.expand(c, 1, 4, 4), groups=c)

    def modulated(out, prefix, demodulate=True, up=False):
        weight = state[prefix + ".conv.weight"][0]  # (out, in, k, k)
        style = F.linear(w, state[prefix + ".conv.modulation.weight"] / math.sqrt(w.shape[1]),
                         state[prefix + ".conv.modulation.bias"])[0]
        weight = weight / math.sqrt(weight.shape[1] * weight.shape[2] ** 2) * style[None, :, None, None]
        if demodulate:
            weight = weight * torch.rsqrt(weight.square().sum((1, 2, 3)) + 1e-8)[:, None, None, None]
        if up:
            return fir(F.conv_transpose2d(out, weight.transpose(0, 1), stride=2), (1, 1))
        return F.conv2d(out, weight, padding=weight.shape[-1] // 2)

    def styled(out, prefix, index, up=False):
        out = modulated(out, prefix, up=up)
        out = out + state[prefix + ".noise.weight"] * state[f"noises.noise_{index}"]
        return sqrt2 * lrelu(out + state[prefix + ".activate.bias"][None, :, None, None])

    def rgb(out, prefix):
        return modulated(out, prefix, demodulate=False) + state[prefix + ".bias"]

    def up2(image):
        b, c, h, w_ = image.shape
        spread = image.new_zeros(b, c, 2 * h, 2 * w_)
        spread[..., ::2, ::2] = image
        return fir(spread, (2, 1))

    out = styled(state["input.input"], "conv1", 0)
    skip = rgb(out, "to_rgb1")
    for j in range(blocks - 1):
        out = styled(out, f"convs.{2 * j}", 2 * j + 1, up=True)
        out = styled(out, f"convs.{2 * j + 1}", 2 * j + 2)
        skip = up2(skip) + rgb(out, f"to_rgbs.{j}")
    return skip
