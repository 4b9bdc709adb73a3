"""Networks of Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
Super-Resolution" (ECCV 2016): the image transformation network and the super-resolution network.

Both map images in the 0..255 range to 0..255 (the convention of the published
pytorch/examples ``fast_neural_style`` checkpoints, which load here key for key; see
:func:`load_transformer`). Use :func:`apply_net` to run one on 0..1 images.

Style network (:class:`TransformerNet`): 9×9 conv, two stride-2 convs, five residual blocks, two ×2
upsampling stages, 9×9 conv; reflection padding; instance or batch normalisation; upsampling by
nearest neighbour + conv (no checkerboard artefacts) or transposed conv; full or half width.

Super-resolution network (:class:`SuperResolutionNet`): 9×9 conv, four residual blocks,
log2(scale) ×2 upsampling stages, 9×9 conv, added to the bicubic upsampling of the input
(``residual=True``: the net learns the missing detail, which trains much faster than the
paper's direct output; ``residual=False`` is the paper's form).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plugin_host.sdk import WeightsError, load_strict, nhwc

from kornia.filters import filter2d
from kornia.filters.kernels import get_pascal_kernel_2d

from .schema import DOWNSAMPLES, NORMS, UPSAMPLES, WIDTHS

__all__ = ["DOWNSAMPLES", "NORMS", "UPSAMPLES", "WIDTHS", "TransformerNet", "SuperResolutionNet", "apply_net",
           "build_net", "load_transformer", "blur_subsample", "LEGACY_KEYS"]

#: Old PyTorch wrote running statistics for InstanceNorm; the published files still hold them.
LEGACY_KEYS = r"in\d+\.running_(mean|var)$"


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"norm: expected one of {NORMS}, got {kind!r}")


class ConvLayer(nn.Module):
    """Reflection-padded convolution (keeps the image size at stride 1; no zero borders)."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(channels_in, channels_out, kernel, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2d(self.pad(x))


class UpsampleConv(nn.Module):
    """×2 upsampling: nearest neighbour or bilinear resize then a padded conv, or a transposed conv."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int = 3, mode: str = "nearest") -> None:
        super().__init__()
        if mode not in UPSAMPLES:
            raise ValueError(f"upsample: expected one of {UPSAMPLES}, got {mode!r}")
        self.mode = mode
        if mode != "transposed":
            self.pad = nn.ReflectionPad2d(kernel // 2)
            self.conv2d: nn.Module = nn.Conv2d(channels_in, channels_out, kernel)
        else:
            self.conv2d = nn.ConvTranspose2d(channels_in, channels_out, kernel, stride=2, padding=kernel // 2,
                                             output_padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "nearest":
            return self.conv2d(self.pad(F.interpolate(x, scale_factor=2, mode="nearest")))
        if self.mode == "bilinear":
            return self.conv2d(self.pad(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)))
        return self.conv2d(x)


def blur_subsample(x: Tensor) -> Tensor:
    """Every second pixel of ``x`` after a 3×3 binomial blur with reflected borders (anti-aliased ×½)."""
    kernel = get_pascal_kernel_2d(3, norm=True, device=x.device, dtype=x.dtype)
    return filter2d(x, kernel[None], border_type="reflect")[..., ::2, ::2]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.in1 = _norm(norm, channels)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.in2 = _norm(norm, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.in2(self.conv2(torch.relu(self.in1(self.conv1(x)))))


class TransformerNet(nn.Module):
    """The style transformation network; module names follow the published checkpoints."""

    def __init__(self, norm: str = "instance", upsample: str = "nearest", width: str = "full",
                 downsample: str = "strided") -> None:
        super().__init__()
        if width not in WIDTHS:
            raise ValueError(f"width: expected one of {tuple(WIDTHS)}, got {width!r}")
        if downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample: expected one of {DOWNSAMPLES}, got {downsample!r}")
        self.config = {"norm": norm, "upsample": upsample, "width": width, "downsample": downsample}
        c1, c2, c3 = (round(c * WIDTHS[width]) for c in (32, 64, 128))
        # Same weights either way; "blur" convolves at full rate and subsamples after the activation.
        self.blur = downsample == "blur"
        stride = 1 if self.blur else 2
        self.conv1, self.in1 = ConvLayer(3, c1, 9), _norm(norm, c1)
        self.conv2, self.in2 = ConvLayer(c1, c2, 3, stride=stride), _norm(norm, c2)
        self.conv3, self.in3 = ConvLayer(c2, c3, 3, stride=stride), _norm(norm, c3)
        for i in range(1, 6):
            self.add_module(f"res{i}", ResidualBlock(c3, norm))
        self.deconv1, self.in4 = UpsampleConv(c3, c2, mode=upsample), _norm(norm, c2)
        self.deconv2, self.in5 = UpsampleConv(c2, c1, mode=upsample), _norm(norm, c1)
        self.deconv3 = ConvLayer(c1, 3, 9)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % 4, -width % 4  # two stride-2 stages: sizes must divide by 4
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(height, width) > 4 else "replicate")
        y = torch.relu(self.in1(self.conv1(x)))
        y = self._down(torch.relu(self.in2(self.conv2(y))))
        y = self._down(torch.relu(self.in3(self.conv3(y))))
        for i in range(1, 6):
            y = getattr(self, f"res{i}")(y)
        y = torch.relu(self.in4(self.deconv1(y)))
        y = torch.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)[..., :height, :width]

    def _down(self, y: Tensor) -> Tensor:
        return blur_subsample(y) if self.blur else y

    def runs_channels_last(self, x: Tensor) -> bool:
        """Whether :meth:`forward_channels_last` computes ``self(x)``: inference in float32 on the CPU, the
        shipped configuration, no hooks on any layer (bf16 casting uses them) but tiling's shared statistics,
        which it applies itself."""
        return (self.config["norm"] == "instance" and self.config["upsample"] == "nearest" and not self.blur
                and nhwc.applies(self, x, min_side=8))

    def forward_channels_last(self, x: Tensor) -> Tensor:
        """:meth:`forward` for inference, computed in channels-last buffers (:mod:`plugin_host.nhwc`);
        equal to it up to float rounding, 25-35 % faster in float32 on the CPU (benchmarks/README.md)."""
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % 4, -width % 4
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        y = nhwc.conv(nhwc.pad_reflect(x.permute(0, 2, 3, 1), 4), self.conv1.conv2d)
        buffer = nhwc.normed_padded(y, self.in1, 1)
        buffer = nhwc.normed_padded(nhwc.conv(buffer, self.conv2.conv2d), self.in2, 1)
        buffer = nhwc.normed_padded(nhwc.conv(buffer, self.conv3.conv2d), self.in3, 1)
        for i in range(1, 6):
            block = getattr(self, f"res{i}")
            buffer = nhwc.residual_block(buffer, block.conv1.conv2d, block.in1, block.conv2.conv2d, block.in2,
                                         last=i == 5)
        y = buffer
        for stage, norm, pad in ((self.deconv1, self.in4, 0), (self.deconv2, self.in5, 4)):
            y = nhwc.normed_padded(nhwc.upsample_conv(y, stage.conv2d), norm, pad)
        out = nhwc.conv(y, self.deconv3.conv2d).permute(0, 3, 1, 2)
        return out[..., :height, :width]


class SuperResolutionNet(nn.Module):
    """×``scale`` super-resolution (scale 2, 4 or 8): residual blocks at low resolution, then upsampling."""

    def __init__(self, scale: int = 4, channels: int = 64, blocks: int = 4, norm: str = "batch",
                 residual: bool = True) -> None:
        super().__init__()
        if scale not in (2, 4, 8):
            raise ValueError(f"scale: expected 2, 4 or 8, got {scale!r}")
        self.config = {"scale": scale, "channels": channels, "blocks": blocks, "norm": norm, "residual": residual}
        self.scale, self.residual = scale, residual
        self.conv_in = ConvLayer(3, channels, 9)
        self.blocks = nn.Sequential(*(ResidualBlock(channels, norm) for _ in range(blocks)))
        stages = int(math.log2(scale))
        self.upsample = nn.ModuleList(UpsampleConv(channels, channels) for _ in range(stages))
        # Normalised like every other conv (as in the paper): without it the ReLUs after upsampling
        # die early in training and the network collapses to plain bicubic.
        self.upsample_norms = nn.ModuleList(_norm(norm, channels) for _ in range(stages))
        self.conv_out = ConvLayer(channels, 3, 9)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.conv_in(x))
        y = self.blocks(y)
        for stage, norm in zip(self.upsample, self.upsample_norms):
            y = torch.relu(norm(stage(y)))
        y = self.conv_out(y)
        if self.residual:
            y = y + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return y


def apply_net(net: nn.Module, image: Tensor, clamp: bool = True) -> Tensor:
    """Run a 0..255 network on an RGB image in 0..1; the result is clamped to 0..1.

    Training passes ``clamp=False``: clamping would stop the gradient at the ends of the range.
    The 0..255 range also suits training with Adam at 1e-3: the last conv, which no normalisation
    follows, then moves the output by at most a few grey levels per step; in 0..1 units the same
    step overshoots and the first iterations blow up.
    """
    scaled = image * 255.0
    fast = isinstance(net, TransformerNet) and net.runs_channels_last(scaled)
    out = (net.forward_channels_last(scaled) if fast else net(scaled)) / 255.0
    return out.clamp(0, 1) if clamp else out


def build_net(config: Mapping[str, Any]) -> nn.Module:
    """A network from a model file's metadata (``kind`` style or sr plus the constructor options)."""
    options = {k: v for k, v in config.items() if k in ("norm", "upsample", "width", "downsample", "scale", "channels",
                                                         "blocks", "residual")}
    try:
        return SuperResolutionNet(**options) if config.get("kind") == "sr" else TransformerNet(**options)
    except (TypeError, ValueError) as err:
        raise WeightsError(f"model metadata describes no network this plugin can build: {err}",
                           hint="the file may come from a newer plugin_host; update it") from None


_PUBLISHED_HINT = ("expected a perceptual-loss style network: a plugin_host export, or a pytorch/examples "
                   "fast_neural_style checkpoint (keys conv1.conv2d.weight, in1.weight, res1.conv1.conv2d.weight, "
                   "…, deconv3.conv2d.bias)")


def load_transformer(state_dict: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> nn.Module:
    """A network with ``state_dict`` loaded strictly; its shape comes from ``metadata``.

    Without metadata (a published checkpoint) the network is the paper's: instance norm, nearest
    upsampling, width from the first conv. Legacy InstanceNorm running-statistics keys are dropped.
    """
    if not isinstance(state_dict, Mapping):
        raise WeightsError(f"not a perceptual-loss network: expected a state dict, got {type(state_dict).__name__}",
                           _PUBLISHED_HINT)
    config = dict(metadata or {})
    if not config:
        first = state_dict.get("conv1.conv2d.weight")
        config = {"kind": "style", "norm": "instance", "upsample": "nearest",
                  "width": "half" if isinstance(first, Tensor) and first.shape[0] == 16 else "full"}
    net = build_net(config)
    state = dict(state_dict)
    if config.get("norm", "instance") == "instance":
        state = {k: v for k, v in state.items() if not re.search(LEGACY_KEYS, str(k))}
    load_strict(net, {k: v.float() if isinstance(v, Tensor) and v.is_floating_point() else v
                      for k, v in state.items()}, "not a perceptual-loss network of this shape", _PUBLISHED_HINT)
    return net.eval().requires_grad_(False)
