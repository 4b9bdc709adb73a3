"""Reading a user's own StyleGAN checkpoints as they are: rosinality/style-based-gan-pytorch (StyleGAN1) and
rosinality/stylegan2-pytorch (StyleGAN2), converted into :class:`~.net.Generator` weights.

Both repositories save plain state dicts; the layouts below are those of their ``model.py`` files, read
from the key names and shapes (see docs/stylegan.md). Nothing of their code is used: the conversion only
renames tensors and folds each layer's run-time weight scale into the stored weight, so that our layer
computes the same numbers.

* **StyleGAN1** (``StyledGenerator``): mapping ``style.{1,3,…}.linear.weight_orig`` (equalised by
  √(2/fan_in) at run time, leaky ReLU without gain); synthesis ``generator.progression.{i}`` blocks
  (constant, AdaIN, per-channel noise, nearest up-sampling + blur below 128 px, a fused transposed
  convolution from 128 px) and ``generator.to_rgb.{i}``. All nine blocks are always there whatever was
  trained, so the trained resolution is the checkpoint's ``step`` (``checkpoint_size``), or else the
  highest block whose noise weights are not zero (untrained blocks never get a gradient).
* **StyleGAN2** (``Generator``): mapping ``style.{1..}`` (learning-rate multiplier 0.01, the repository's
  default, which the file does not record), ``input.input``, ``conv1``, ``to_rgb1``, ``convs.{j}``,
  ``to_rgbs.{j}`` (modulated convolutions, transposed-convolution up-sampling with a [1,3,3,1] filter,
  scalar noise weights) and the fixed noise maps ``noises.noise_{j}``.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch
from torch import Tensor

from plugin_host.sdk import WeightsError

from .net import SQRT2, FUSED_FROM, Generator, GeneratorConfig

_SHOW = 4


def _mismatch(what: str, problems: list[str]) -> WeightsError:
    shown = "; ".join(problems[:_SHOW]) + (f"; and {len(problems) - _SHOW} more" if len(problems) > _SHOW else "")
    return WeightsError(f"{what}: {shown}")


class _Reader:
    """Takes tensors out of a state dict by key and shape, collecting every problem before failing."""

    def __init__(self, state: Mapping[str, Tensor], layout: str) -> None:
        self.state, self.layout = state, layout
        self.used: set[str] = set()
        self.problems: list[str] = []

    def get(self, key: str, shape: tuple[int, ...] | None = None) -> Tensor:
        value = self.state.get(key)
        if not isinstance(value, Tensor):
            self.problems.append(f"missing {key}")
            return torch.zeros(shape or (1,))
        self.used.add(key)
        if shape is not None and tuple(value.shape) != tuple(shape):
            self.problems.append(f"{key} has shape {tuple(value.shape)}, expected {tuple(shape)}")
            return torch.zeros(shape)
        return value.float()

    def check(self, ignored: re.Pattern[str] | None = None) -> None:
        extra = sorted(k for k in self.state if k not in self.used and not (ignored and ignored.search(k)))
        problems = self.problems + [f"unexpected {k}" for k in extra]
        if problems:
            raise _mismatch(f"not a {self.layout} generator", problems)


# -- StyleGAN1 -----------------------------------------------------------------------------------------

V1_MARKER = "generator.progression.0.conv1.input"
_V1_BLOCK = re.compile(r"^generator\.(?:progression|to_rgb)\.(\d+)\.")
#: Blur filters are fixed buffers; blocks above the trained resolution are ignored.
_V1_IGNORED = re.compile(r"\.weight_flip$|progression\.\d+\.conv1\.[12]\.weight$")


def is_stylegan1(state: Mapping[str, object]) -> bool:
    return V1_MARKER in state


def stylegan1_trained_resolution(state: Mapping[str, Tensor]) -> int:
    """The resolution of the highest block whose noise weights are not all zero (4·2^block)."""
    trained = [int(m.group(1)) for key, value in state.items()
               if (m := re.match(r"^generator\.progression\.(\d+)\.noise[12]\.weight_orig$", key))
               and isinstance(value, Tensor) and bool(value.abs().sum() > 0)]
    if not trained:
        raise WeightsError("this StyleGAN1 checkpoint's noise weights are all zero, so its trained resolution "
                           "cannot be told", hint="give it with --checkpoint-size (the resolution it was trained to)")
    return 4 * 2 ** max(trained)


def convert_stylegan1(state: Mapping[str, Tensor], resolution: int | None = None,
                      fade: float = 1.0) -> tuple[GeneratorConfig, dict[str, Tensor]]:
    """A rosinality StyleGAN1 ``g_running``/``generator`` state dict as our config and state dict."""
    resolution = resolution or stylegan1_trained_resolution(state)
    blocks = int(math.log2(resolution)) - 1
    if 2 ** (blocks + 1) != resolution or resolution < 8:
        raise WeightsError(f"checkpoint size {resolution} is not a power of two of at least 8")
    present = {int(m.group(1)) for key in state if (m := _V1_BLOCK.match(key))}
    if blocks - 1 not in present:
        raise WeightsError(f"the StyleGAN1 checkpoint has no block for {resolution} px "
                           f"(it has {4 * 2 ** max(present, default=0)} px at most)",
                           hint="give a smaller --checkpoint-size")
    mapping = sorted(int(m.group(1)) for key in state if (m := re.match(r"^style\.(\d+)\.linear\.weight_orig$", key)))
    if not mapping:
        raise WeightsError("not a StyleGAN1 generator: missing its mapping network (style.N.linear.weight_orig)")
    w_dim, z_dim = state[f"style.{mapping[0]}.linear.weight_orig"].shape
    widths = [int(state[f"generator.progression.{i}.conv2.conv.weight_orig"].shape[0])
              if isinstance(state.get(f"generator.progression.{i}.conv2.conv.weight_orig"), Tensor) else 1
              for i in range(blocks)]
    config = GeneratorConfig(resolution=resolution, widths=tuple(widths), z_dim=int(z_dim), w_dim=int(w_dim),
                             mapping_layers=len(mapping), style_op="adain", upsample="stylegan1", rgb="last",
                             activation_gain=1.0, fade=fade)
    reader = _Reader(state, "rosinality StyleGAN1")
    out: dict[str, Tensor] = {}

    def linear(target: str, source: str, shape: tuple[int, int], lr_mul: float = 1.0) -> None:
        """An equalised linear layer: their run-time scale √(2/fan_in), ours lr_mul/√fan_in (and bias·lr_mul)."""
        out[target + ".weight"] = reader.get(source + ".weight_orig", shape) * SQRT2 / lr_mul
        out[target + ".bias"] = reader.get(source + ".bias", shape[:1]) / lr_mul

    for k, index in enumerate(mapping):
        linear(f"mapping.layers.{k}", f"style.{index}.linear", (w_dim, z_dim if k == 0 else w_dim),
               config.mapping_lr_mul)
    out["synthesis.const"] = reader.get(V1_MARKER, (1, widths[0], 4, 4))
    for i in range(blocks):
        prefix, c_out = f"generator.progression.{i}", widths[i]
        c_in = widths[max(i - 1, 0)]
        first, second = f"synthesis.layers.{2 * i}", f"synthesis.layers.{2 * i + 1}"
        if i == 0:
            out[first + ".bias"] = torch.zeros(c_out)
        elif 4 * 2 ** i >= FUSED_FROM:  # FusedUpsample: weight (in, out, 3, 3), scaled at run time
            weight = reader.get(prefix + ".conv1.0.weight", (c_in, c_out, 3, 3))
            out[first + ".weight"] = weight.transpose(0, 1) * SQRT2  # √(2/fan_in) over our 1/√fan_in
            out[first + ".bias"] = reader.get(prefix + ".conv1.0.bias", (c_out,))
        else:
            out[first + ".weight"] = reader.get(prefix + ".conv1.1.conv.weight_orig", (c_out, c_in, 3, 3)) * SQRT2
            out[first + ".bias"] = reader.get(prefix + ".conv1.1.conv.bias", (c_out,))
        out[second + ".weight"] = reader.get(prefix + ".conv2.conv.weight_orig", (c_out, c_out, 3, 3)) * SQRT2
        out[second + ".bias"] = reader.get(prefix + ".conv2.conv.bias", (c_out,))
        for number, target in ((1, first), (2, second)):
            noise = reader.get(f"{prefix}.noise{number}.weight_orig", (1, c_out, 1, 1))
            out[target + ".noise_strength"] = noise.flatten() * math.sqrt(2 / c_out)
            linear(target + ".affine", f"{prefix}.adain{number}.style.linear", (2 * c_out, w_dim))
        rgb = reader.get(f"generator.to_rgb.{i}.conv.weight_orig", (3, c_out, 1, 1))
        out[f"synthesis.to_rgb.{i}.weight"] = rgb * SQRT2
        out[f"synthesis.to_rgb.{i}.bias"] = reader.get(f"generator.to_rgb.{i}.conv.bias", (3,))
    above = re.compile(r"^generator\.(?:progression|to_rgb)\.(\d+)\.")
    reader.used |= {k for k in state if (m := above.match(k)) and int(m.group(1)) >= blocks}
    reader.check(_V1_IGNORED)
    return config, out


# -- StyleGAN2 -----------------------------------------------------------------------------------------

V2_MARKERS = ("input.input", "conv1.conv.weight")
#: rosinality/stylegan2-pytorch's default learning-rate multiplier of the mapping network (not in its files).
V2_MAPPING_LR_MUL = 0.01
_V2_IGNORED = re.compile(r"\.blur\.kernel$|\.upsample\.kernel$")


def is_stylegan2(state: Mapping[str, object]) -> bool:
    return all(key in state for key in V2_MARKERS)


def convert_stylegan2(state: Mapping[str, Tensor]) -> tuple[GeneratorConfig, dict[str, Tensor]]:
    """A rosinality StyleGAN2 ``g_ema`` state dict as our config and state dict."""
    mapping = sorted(int(m.group(1)) for key in state if (m := re.match(r"^style\.(\d+)\.weight$", key)))
    rgbs = sorted(int(m.group(1)) for key in state if (m := re.match(r"^to_rgbs\.(\d+)\.bias$", key)))
    if not mapping:
        raise WeightsError("not a StyleGAN2 generator: missing its mapping network (style.N.weight)")
    if rgbs != list(range(len(rgbs))):
        raise WeightsError(f"not a StyleGAN2 generator: its to_rgbs are numbered {rgbs}")
    w_dim, z_dim = state[f"style.{mapping[0]}.weight"].shape
    widths = [int(state["conv1.conv.weight"].shape[1])]
    for j in range(len(rgbs)):
        key = f"convs.{2 * j + 1}.conv.weight"
        widths.append(int(state[key].shape[1]) if isinstance(state.get(key), Tensor) else 1)
    resolution = 4 * 2 ** len(rgbs)
    config = GeneratorConfig(resolution=resolution, widths=tuple(widths), z_dim=int(z_dim), w_dim=int(w_dim),
                             mapping_layers=len(mapping), mapping_lr_mul=V2_MAPPING_LR_MUL, style_op="modulated",
                             upsample="stylegan2", rgb="skip")
    reader = _Reader(state, "rosinality StyleGAN2")
    out: dict[str, Tensor] = {}
    for k, index in enumerate(mapping):  # the same parametrisation as ours: copied as they are
        out[f"mapping.layers.{k}.weight"] = reader.get(f"style.{index}.weight", (w_dim, z_dim if k == 0 else w_dim))
        out[f"mapping.layers.{k}.bias"] = reader.get(f"style.{index}.bias", (w_dim,))
    out["synthesis.const"] = reader.get("input.input", (1, widths[0], 4, 4))

    def styled(target: str, source: str, c_in: int, c_out: int, res: int, index: int) -> None:
        out[target + ".weight"] = reader.get(source + ".conv.weight", (1, c_out, c_in, 3, 3))[0]
        out[target + ".affine.weight"] = reader.get(source + ".conv.modulation.weight", (c_in, w_dim))
        out[target + ".affine.bias"] = reader.get(source + ".conv.modulation.bias", (c_in,))
        out[target + ".noise_strength"] = reader.get(source + ".noise.weight", (1,)).expand(c_out).clone()
        out[target + ".bias"] = reader.get(source + ".activate.bias", (c_out,))
        out[target + ".noise_const"] = reader.get(f"noises.noise_{index}", (1, 1, res, res))

    def to_rgb(target: str, source: str, c_in: int) -> None:
        out[target + ".weight"] = reader.get(source + ".conv.weight", (1, 3, c_in, 1, 1))[0]
        out[target + ".affine.weight"] = reader.get(source + ".conv.modulation.weight", (c_in, w_dim))
        out[target + ".affine.bias"] = reader.get(source + ".conv.modulation.bias", (c_in,))
        out[target + ".bias"] = reader.get(source + ".bias", (1, 3, 1, 1)).flatten()

    styled("synthesis.layers.0", "conv1", widths[0], widths[0], 4, 0)
    to_rgb("synthesis.to_rgb.0", "to_rgb1", widths[0])
    for j in range(len(rgbs)):
        res, c_in, c_out = 8 * 2 ** j, widths[j], widths[j + 1]
        styled(f"synthesis.layers.{2 * j + 1}", f"convs.{2 * j}", c_in, c_out, res, 2 * j + 1)
        styled(f"synthesis.layers.{2 * j + 2}", f"convs.{2 * j + 1}", c_out, c_out, res, 2 * j + 2)
        to_rgb(f"synthesis.to_rgb.{j + 1}", f"to_rgbs.{j}", c_out)
    reader.check(_V2_IGNORED)
    return config, out


# -- loading ----------------------------------------------------------------------------------------

@torch.no_grad()
def estimate_w_avg(generator: Generator, samples: int = 4096, seed: int = 0) -> Tensor:
    """The mean of ``samples`` mapped z (per class), for files that do not store an average style."""
    z = torch.randn(samples, generator.config.z_dim, generator=torch.Generator().manual_seed(seed))
    classes = max(1, len(generator.config.classes))
    rows = []
    for label in range(classes):
        labels = torch.full((samples,), label, dtype=torch.long) if generator.config.classes else None
        rows.append(generator.mapping(z, labels).float().mean(0))
    return torch.stack(rows)


def build(config: GeneratorConfig, state: Mapping[str, Tensor], w_avg: Tensor | None = None) -> Generator:
    """A generator of ``config`` holding ``state``; ``w_avg`` estimated when the file had none."""
    generator = Generator(config)
    own = generator.state_dict()
    for key, value in state.items():
        if key in own:
            own[key] = value.to(own[key].dtype)
    missing = sorted(set(generator.state_dict()) - set(state) - {"w_avg"}
                     - {k for k in own if k.endswith(".noise_const")})
    if missing:
        raise _mismatch("the converted generator lacks tensors", missing)
    generator.load_state_dict(own)
    if w_avg is not None:
        generator.w_avg.copy_(w_avg.reshape(generator.w_avg.shape).float())
    else:
        generator.w_avg.copy_(estimate_w_avg(generator))
    return generator.eval().requires_grad_(False)
