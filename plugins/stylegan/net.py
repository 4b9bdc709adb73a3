"""StyleGAN's networks: a mapping network z → w, a style-based synthesis network, a residual discriminator.

Written from Karras, Laine & Aila, "A Style-Based Generator Architecture for GANs" (CVPR 2019) and
Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020).

* **Mapping** (:class:`MappingNetwork`): PixelNorm of z (joined to an embedded class when there are
  classes), then fully connected layers with leaky ReLU 0.2, equalised learning rate and a learning-rate
  multiplier (0.01 in the papers).
* **Synthesis** (:class:`SynthesisNetwork`): a learned 4×4 constant, then per resolution an up-sampling
  3×3 convolution and a plain one. Every layer (:class:`StyledLayer`) takes its own row of W+ through a
  learned affine map, adds one single-channel noise map times learned per-channel strengths, then a bias
  and the activation. The style is applied by ONE of two operators, a switch of the same module:
  ``adain`` (the 2019 paper: instance-normalise the layer's output, then scale and shift it per channel)
  or ``modulated`` (2020: scale the convolution's input channels, then divide each output channel by the
  norm of its effective weights — "demodulation"). With AdaIN the constant itself is styled first; a
  modulated layer needs a convolution to modulate, so there the 4×4 level has one convolution.
* **Up-sampling** (``upsample``): ``bilinear`` (this project's models: cheap on a CPU), ``stylegan1``
  (nearest, convolution, [1,2,1] blur; from 128 px a transposed convolution of the 3×3 kernel spread over
  4×4, then the blur: the layout of rosinality/style-based-gan-pytorch checkpoints) or ``stylegan2``
  (transposed convolution, then a [1,3,3,1] FIR filter: rosinality/stylegan2-pytorch checkpoints).
* **RGB** (``rgb``): ``skip`` sums a 1×1 "to RGB" output of every resolution, each up-sampled; ``last``
  converts only the last resolution's features (the progressive-growing generator, with its fade-in).

Images are in −1..1. Equalised learning rate: weights are stored at unit variance and scaled at run time
by lr_mul/√fan_in, so Adam's step is the same size for every layer, and lr_mul slows a layer down.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STYLE_OPS = ("modulated", "adain")
UPSAMPLES = ("bilinear", "stylegan1", "stylegan2")
RGB_MODES = ("skip", "last")
NOISE_MODES = ("random", "const", "none")
LRELU_SLOPE = 0.2
SQRT2 = math.sqrt(2.0)
#: From this resolution up, a stylegan1 generator up-samples with a "fused" transposed convolution.
FUSED_FROM = 128
CONFIG_FORMAT = "plugin_host-stylegan/1"


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Each row of ``x`` (B, C, …) divided by its root mean square over C: every vector gets norm √C."""
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + eps)


class PixelNorm(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return pixel_norm(x)


def lrelu(x: Tensor, gain: float = SQRT2) -> Tensor:
    """Leaky ReLU 0.2 times ``gain`` (√2 keeps the signal's magnitude; StyleGAN1 files carry it in their weights: 1)."""
    x = F.leaky_relu(x, LRELU_SLOPE)
    return x * gain if gain != 1.0 else x


class EqualLinear(nn.Module):
    """A fully connected layer with equalised learning rate: ``x @ (W·c)ᵀ + b·lr_mul``, c = lr_mul/√in.

    W is stored N(0, 1/lr_mul²), so the effective weight starts N(0, 1/in) whatever lr_mul is, while an
    optimiser step on W moves it lr_mul times as far as on a layer with lr_mul 1.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.lr_mul = lr_mul
        self.scale = lr_mul / math.sqrt(in_features)

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2d(nn.Module):
    """A convolution with equalised learning rate (run-time scale 1/√(in·k²)), same padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1 / math.sqrt(in_channels * kernel * kernel)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)


# -- fixed filters ----------------------------------------------------------------------------------

def _kernel(taps: Sequence[float], gain: float = 1.0) -> Tensor:
    k = torch.tensor(taps, dtype=torch.float32)
    k2 = torch.outer(k, k)
    return k2 / k2.sum() * gain


def depthwise(x: Tensor, kernel: Tensor, pad: tuple[int, int]) -> Tensor:
    """Convolve every channel of ``x`` with the 2-D ``kernel`` after zero-padding (before, after) each side."""
    channels = x.shape[1]
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = kernel.to(x.dtype)[None, None].expand(channels, 1, *kernel.shape)
    return F.conv2d(x, weight, groups=channels)


def upsample_fir(x: Tensor, kernel: Tensor) -> Tensor:
    """2× up-sampling by zero insertion and a FIR filter (``kernel`` sums to 4): (B, C, H, W) → (B, C, 2H, 2W)."""
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = x
    return depthwise(up, kernel, (2, 1))


# -- synthesis ------------------------------------------------------------------------------------------

class StyledLayer(nn.Module):
    """One styled layer: [up-sampling] convolution, noise, bias, activation, with a style from ``w``.

    ``conv=False`` is the styled constant of an AdaIN generator (no convolution). With ``style_op``
    ``modulated`` the affine map gives one scale per input channel; with ``adain`` a scale and a shift
    per output channel, applied after instance normalisation of the activated output.
    """

    def __init__(self, in_channels: int, out_channels: int, resolution: int, w_dim: int, *, style_op: str,
                 conv: bool = True, up: bool = False, upsample: str = "bilinear", activation_gain: float = SQRT2,
                 index: int = 0) -> None:
        super().__init__()
        if style_op not in STYLE_OPS or upsample not in UPSAMPLES:
            raise ValueError(f"style_op must be one of {STYLE_OPS}, upsample one of {UPSAMPLES}")
        if style_op == "modulated" and not conv:
            raise ValueError("a modulated layer needs a convolution")
        self.style_op, self.up, self.upsample, self.activation_gain = style_op, up, upsample, activation_gain
        self.resolution = resolution
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3)) if conv else None
        self.scale = 1 / math.sqrt(in_channels * 9)
        if style_op == "modulated":
            self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        else:  # scale (starts at 1) and shift (starts at 0) per output channel
            self.affine = EqualLinear(w_dim, 2 * out_channels)
            with torch.no_grad():
                self.affine.bias[:out_channels] = 1.0
        self.noise_strength = nn.Parameter(torch.zeros(out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        # The "const" noise: a fixed map per layer, saved with the model; seeded by the layer's index so that
        # building a network never draws from torch's global generator for it.
        fixed = torch.Generator().manual_seed(8191 + index)
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution, generator=fixed))
        # StyleGAN1 adds the bias inside its up-sampling convolution, before the blur.
        self.bias_in_conv = up and upsample == "stylegan1"
        if up and upsample == "stylegan1":
            self.register_buffer("fir", _kernel((1, 2, 1)), persistent=False)
        elif up and upsample == "stylegan2":
            self.register_buffer("fir", _kernel((1, 3, 3, 1), gain=4.0), persistent=False)

    @property
    def out_channels(self) -> int:
        return self.bias.shape[0]

    def convolve(self, x: Tensor) -> Tensor:
        """The (up-sampling) convolution with the shared weights, no style."""
        weight = self.weight * self.scale
        if not self.up:
            return F.conv2d(x, weight, padding=1)
        if self.upsample == "bilinear":
            return F.conv2d(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False), weight, padding=1)
        if self.upsample == "stylegan2":  # transposed convolution (2H+1), then the FIR filter (2H)
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
            return depthwise(x, self.fir, (1, 1))
        bias = self.bias
        if self.resolution >= FUSED_FROM:  # 3×3 kernel spread over 4×4 (four shifted copies, averaged)
            spread = F.pad(weight.transpose(0, 1), (1, 1, 1, 1))
            spread = (spread[..., 1:, 1:] + spread[..., :-1, 1:] + spread[..., 1:, :-1] + spread[..., :-1, :-1]) / 4
            x = F.conv_transpose2d(x, spread, bias, stride=2, padding=1)
        else:
            x = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1)
        return depthwise(x, self.fir, (1, 1))

    def forward(self, x: Tensor, w: Tensor, noise: Tensor | None = None) -> Tensor:
        if self.style_op == "modulated":
            style = self.affine(w)  # (B, in)
            x = self.convolve(x * style[:, :, None, None])
            squares = (self.weight * self.scale).square().sum((2, 3))  # (out, in)
            demod = torch.rsqrt(style.square() @ squares.t() + 1e-8)  # (B, out): unit-norm effective weights
            x = x * demod[:, :, None, None]
        elif self.weight is not None:
            x = self.convolve(x)
        if noise is not None:
            x = x + noise * self.noise_strength[None, :, None, None]
        if not self.bias_in_conv:
            x = x + self.bias[None, :, None, None]
        x = lrelu(x, self.activation_gain)
        if self.style_op == "adain":
            scale, shift = self.affine(w).chunk(2, dim=1)
            normed = F.instance_norm(x.float(), eps=1e-5).to(x.dtype)
            x = normed * scale[:, :, None, None] + shift[:, :, None, None]
        return x


class ToRGB(nn.Module):
    """1×1 convolution to RGB; modulated (never demodulated) by its own style in a modulated generator."""

    def __init__(self, in_channels: int, w_dim: int, modulated: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, in_channels, 1, 1))
        self.scale = 1 / math.sqrt(in_channels)
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0) if modulated else None
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: Tensor, w: Tensor | None = None) -> Tensor:
        if self.affine is not None:
            x = x * self.affine(w)[:, :, None, None]
        return F.conv2d(x, self.weight * self.scale, self.bias)


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that fixes a generator's shape; stored in its file's metadata.

    ``widths``: channels at 4, 8, …, ``resolution`` px (:func:`widths_for` gives the usual ones).
    ``classes``: names of the classes (empty: unconditional). ``activation_gain``: √2, or 1 for the
    StyleGAN1 layout whose weights carry the gain. ``fade``: progressive growing's fade-in of the last
    resolution (1 = none; only with ``rgb="last"``).
    """

    resolution: int = 128
    widths: tuple[int, ...] = ()
    z_dim: int = 256
    w_dim: int = 256
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    style_op: str = "modulated"
    upsample: str = "bilinear"
    rgb: str = "skip"
    classes: tuple[str, ...] = ()
    activation_gain: float = SQRT2
    fade: float = 1.0
    format: str = field(default=CONFIG_FORMAT)

    def __post_init__(self) -> None:
        levels = int(round(math.log2(self.resolution))) - 1 if self.resolution > 0 else 0
        problems = []
        if self.resolution < 4 or 2 ** (levels + 1) != self.resolution:
            problems.append(f"resolution {self.resolution} is not a power of two of at least 4")
        elif len(self.widths) != levels or any(int(c) < 1 for c in self.widths):
            problems.append(f"widths must give {levels} channel counts (4 … {self.resolution} px), got {self.widths}")
        if self.style_op not in STYLE_OPS:
            problems.append(f"style_op {self.style_op!r} is not one of {STYLE_OPS}")
        if self.upsample not in UPSAMPLES:
            problems.append(f"upsample {self.upsample!r} is not one of {UPSAMPLES}")
        if self.rgb not in RGB_MODES:
            problems.append(f"rgb {self.rgb!r} is not one of {RGB_MODES}")
        if min(self.z_dim, self.w_dim, self.mapping_layers) < 1:
            problems.append("z_dim, w_dim and mapping_layers must be positive")
        if not 0.0 <= self.fade <= 1.0 or (self.fade < 1.0 and self.rgb != "last"):
            problems.append(f"fade {self.fade} must be in 0..1, and below 1 only with rgb 'last'")
        if self.format != CONFIG_FORMAT:
            problems.append(f"format {self.format!r} is not {CONFIG_FORMAT!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def resolutions(self) -> list[int]:
        return [2 ** i for i in range(2, int(math.log2(self.resolution)) + 1)]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["widths"], data["classes"] = list(self.widths), list(self.classes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GeneratorConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown generator settings {unknown}")
        values = dict(data)
        values["widths"] = tuple(int(c) for c in values.get("widths", ()))
        values["classes"] = tuple(str(c) for c in values.get("classes", ()))
        return cls(**values)


def widths_for(resolution: int, channel_base: int, channel_max: int) -> tuple[int, ...]:
    """Channels at each resolution: ``min(channel_max, channel_base // res)`` (at least 1)."""
    return tuple(max(1, min(channel_max, channel_base // res))
                 for res in (2 ** i for i in range(2, int(math.log2(resolution)) + 1)))


class SynthesisNetwork(nn.Module):
    """W+ (B, n_latent, w_dim) → image (B, 3, R, R) in −1..1; see the module docstring."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        widths = dict(zip(config.resolutions, config.widths))
        layer = dict(w_dim=config.w_dim, style_op=config.style_op, upsample=config.upsample,
                     activation_gain=config.activation_gain)
        self.const = nn.Parameter(torch.randn(1, widths[4], 4, 4))
        layers: list[StyledLayer] = []
        if config.style_op == "adain":  # the constant is styled as it is, then convolved once
            layers.append(StyledLayer(widths[4], widths[4], 4, conv=False, index=0, **layer))
        layers.append(StyledLayer(widths[4], widths[4], 4, index=len(layers), **layer))
        self.block_ends = [len(layers) - 1]
        for res in config.resolutions[1:]:
            layers.append(StyledLayer(widths[res // 2], widths[res], res, up=True, index=len(layers), **layer))
            layers.append(StyledLayer(widths[res], widths[res], res, index=len(layers), **layer))
            self.block_ends.append(len(layers) - 1)
        self.layers = nn.ModuleList(layers)
        modulated = config.style_op == "modulated"
        self.to_rgb = nn.ModuleList(ToRGB(widths[res], config.w_dim, modulated) for res in config.resolutions)
        if config.upsample == "stylegan2":
            self.register_buffer("rgb_fir", _kernel((1, 3, 3, 1), gain=4.0), persistent=False)

    @property
    def n_latent(self) -> int:
        """Rows of W+: one per layer, and one more for the last ToRGB of a modulated generator."""
        return len(self.layers) + (self.config.style_op == "modulated")

    def _up_rgb(self, rgb: Tensor) -> Tensor:
        if self.config.upsample == "stylegan2":
            return upsample_fir(rgb, self.rgb_fir)
        mode = "nearest" if self.config.upsample == "stylegan1" else "bilinear"
        return F.interpolate(rgb, scale_factor=2, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))

    def _rgb(self, block: int, x: Tensor, ws: Tensor, layer_index: int) -> Tensor:
        modulated = self.config.style_op == "modulated"
        return self.to_rgb[block](x, ws[:, layer_index + 1] if modulated else None)

    def forward(self, ws: Tensor, noise: Sequence[Tensor | None] | None = None) -> Tensor:
        """``ws``: (B, n_latent, w_dim); ``noise``: one (B|1, 1, r, r) map or None per layer (None: no noise)."""
        if ws.dim() != 3 or ws.shape[1] != self.n_latent:
            raise ValueError(f"expected W+ of shape (B, {self.n_latent}, w_dim), got {tuple(ws.shape)}")
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        rgb: Tensor | None = None
        before_last: Tensor | None = None
        for index, layer in enumerate(self.layers):
            x = layer(x, ws[:, index], None if noise is None else noise[index])
            if index not in self.block_ends:
                continue
            block = self.block_ends.index(index)
            if self.config.rgb == "skip":
                out = self._rgb(block, x, ws, index)
                rgb = out if rgb is None else self._up_rgb(rgb) + out
            elif block == len(self.block_ends) - 2:
                before_last = x
        if self.config.rgb == "last":
            rgb = self._rgb(len(self.block_ends) - 1, x, ws, len(self.layers) - 1)
            if self.config.fade < 1.0 and before_last is not None:  # progressive growing's fade-in
                skip = self._up_rgb(self._rgb(len(self.block_ends) - 2, before_last, ws, self.block_ends[-2]))
                rgb = torch.lerp(skip, rgb, self.config.fade)
        assert rgb is not None
        return rgb

    def layer_resolutions(self) -> list[int]:
        """The resolution each row of W+ styles (a ToRGB's row: its resolution)."""
        rows = [layer.resolution for layer in self.layers]
        return rows + [self.config.resolution] * (self.n_latent - len(rows))


class MappingNetwork(nn.Module):
    """z (B, z_dim) [and class indices (B,)] → w (B, w_dim): PixelNorm, then FC + leaky ReLU layers."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.gain = config.activation_gain
        classes = len(config.classes)
        self.embed = EqualLinear(classes, config.z_dim) if classes else None
        width = config.z_dim * (2 if classes else 1)
        self.layers = nn.ModuleList(
            EqualLinear(width if i == 0 else config.w_dim, config.w_dim, lr_mul=config.mapping_lr_mul)
            for i in range(config.mapping_layers))

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        x = pixel_norm(z)
        if self.embed is not None:
            if labels is None:
                raise ValueError("this generator has classes: give one class index per z")
            onehot = F.one_hot(labels.long(), self.embed.weight.shape[1]).to(x.dtype)
            x = torch.cat([x, pixel_norm(self.embed(onehot))], dim=1)
        for layer in self.layers:
            x = lrelu(layer(x), self.gain)
        return x


class Generator(nn.Module):
    """Mapping and synthesis networks, and ``w_avg`` (B?, w_dim): the average w, one row per class.

    The average is an exponential moving average of the training batches' w (kept by the trainer), saved
    with the model; truncation pulls styles toward it.
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.mapping = MappingNetwork(config)
        self.synthesis = SynthesisNetwork(config)
        self.register_buffer("w_avg", torch.zeros(max(1, len(config.classes)), config.w_dim))

    @property
    def n_latent(self) -> int:
        return self.synthesis.n_latent

    @property
    def n_layers(self) -> int:
        return len(self.synthesis.layers)

    def average(self, labels: Tensor | None, batch: int) -> Tensor:
        """``w_avg`` rows for ``labels`` (or the only row), (batch, w_dim)."""
        if labels is None or self.w_avg.shape[0] == 1:
            return self.w_avg[:1].expand(batch, -1)
        return self.w_avg[labels.long()]

    def truncate(self, ws: Tensor, psi: float, cutoff: int | None = None, labels: Tensor | None = None) -> Tensor:
        """``w_avg + ψ·(w − w_avg)`` on the first ``cutoff`` rows of W+ (all with None)."""
        if psi == 1.0:
            return ws
        cutoff = ws.shape[1] if cutoff is None else min(cutoff, ws.shape[1])
        average = self.average(labels, ws.shape[0]).to(ws.dtype)[:, None]
        out = ws.clone()
        out[:, :cutoff] = torch.lerp(average, ws[:, :cutoff], psi)
        return out

    def styles(self, z: Tensor, labels: Tensor | None = None, psi: float = 1.0,
               cutoff: int | None = None) -> Tensor:
        """W+ (B, n_latent, w_dim) for ``z``: one w repeated on every row, then truncated."""
        w = self.mapping(z, labels)
        return self.truncate(w[:, None].float().repeat(1, self.n_latent, 1), psi, cutoff, labels)

    def make_noise(self, batch: int, mode: str, *, seed: int | None = None, strength: float = 1.0,
                   layers: Iterable[int] | None = None, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> list[Tensor | None] | None:
        """Noise maps for :meth:`SynthesisNetwork.forward`.

        ``random``: fresh N(0, 1) maps, drawn on the CPU from ``seed`` (torch's generator when None), the
        same for a seed whatever ``layers`` is; ``const``: the model's fixed maps; ``none``: no noise.
        ``strength`` multiplies the maps; layers not in ``layers`` (indices) get none.
        """
        if mode not in NOISE_MODES:
            raise ValueError(f"noise mode must be one of {NOISE_MODES}, got {mode!r}")
        if mode == "none" or strength == 0:
            return None
        chosen = None if layers is None else set(layers)
        generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        maps: list[Tensor | None] = []
        for index, layer in enumerate(self.synthesis.layers):
            res = layer.resolution
            if mode == "const":
                noise = layer.noise_const.to(device=device, dtype=dtype).expand(batch, -1, -1, -1)
            elif generator is not None:
                noise = torch.randn(batch, 1, res, res, generator=generator).to(device=device, dtype=dtype)
            else:
                noise = torch.randn(batch, 1, res, res, device=device, dtype=dtype)
            maps.append(noise * strength if chosen is None or index in chosen else None)
        return maps


def mix_styles(first: Tensor, second: Tensor, start: int, end: int | None = None) -> Tensor:
    """W+ rows ``start:end`` from ``second``, the rest from ``first`` (style mixing at a crossover)."""
    out = first.clone()
    out[:, start:end] = second[:, start:end]
    return out


# -- discriminator ------------------------------------------------------------------------------------

def minibatch_stddev(x: Tensor, group: int = 4) -> Tensor:
    """Append one channel: the mean standard deviation of the features over groups of ``group`` samples."""
    b, c, h, w = x.shape
    size = min(group, b)
    while b % size:
        size -= 1
    y = x.float().reshape(size, -1, c, h, w)
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean((1, 2, 3))  # (B / size,)
    y = y.reshape(-1, 1, 1, 1).repeat(size, 1, h, w).to(x.dtype)
    return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """Two 3×3 convolutions and a 2× average pool, with a pooled 1×1 shortcut; the sum over √2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(in_channels, in_channels, 3)
        self.conv2 = EqualConv2d(in_channels, out_channels, 3)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skip(F.avg_pool2d(x, 2))
        x = F.avg_pool2d(lrelu(self.conv2(lrelu(self.conv1(x)))), 2)
        return (x + skip) / SQRT2


class Discriminator(nn.Module):
    """Image (B, 3, R, R) in −1..1 [and class indices] → one logit per image.

    Residual blocks down to 4×4, minibatch standard deviation, a 3×3 convolution, two dense layers;
    with classes, a projection term (the class embedding's dot product with the last features).
    """

    def __init__(self, resolution: int, widths: Sequence[int], classes: int = 0, mbstd_group: int = 4) -> None:
        super().__init__()
        res = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
        width = dict(zip(res, widths))
        self.mbstd_group = mbstd_group
        self.from_rgb = EqualConv2d(3, width[resolution], 1)
        self.blocks = nn.ModuleList(DiscriminatorBlock(width[r], width[r // 2]) for r in reversed(res[1:]))
        self.conv = EqualConv2d(width[4] + 1, width[4], 3)
        self.fc = EqualLinear(width[4] * 16, width[4])
        self.out = EqualLinear(width[4], 1)
        self.embed = EqualLinear(classes, width[4]) if classes else None

    def forward(self, image: Tensor, labels: Tensor | None = None) -> Tensor:
        x = lrelu(self.from_rgb(image))
        for block in self.blocks:
            x = block(x)
        x = lrelu(self.conv(minibatch_stddev(x, self.mbstd_group)))
        x = lrelu(self.fc(x.flatten(1)))
        out = self.out(x)
        if self.embed is not None:
            onehot = F.one_hot(labels.long(), self.embed.weight.shape[1]).to(x.dtype)
            out = out + (self.embed(onehot) * x).sum(1, keepdim=True) / math.sqrt(x.shape[1])
        return out.squeeze(1)
