"""Networks of AdaIN (Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive
Instance Normalization", ICCV 2017): the AdaIN operation, the decoder and the published encoder.

An encoder maps an RGB image in 0..1 to VGG activations at :data:`ENCODER_LAYERS`; AdaIN gives
the content's ``relu4_1`` features the channel statistics of the style's; the :class:`Decoder`
maps the result back to an image. Two encoders fit: our :class:`~plugin_host.encoders.VGGEncoder`
and :class:`AdainVGGEncoder`, the normalised VGG19 of the published ``vgg_normalised.pth``.
The module layouts reproduce the published files (naoto0804/pytorch-AdaIN) key for key, so
``vgg_normalised.pth`` and ``decoder.pth`` load as they are.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plugin_host.sdk import VGGEncoder, VGG_CONFIGS, WeightsError, load_strict, mean_std, nhwc

__all__ = [
    "DECODER_ARCHITECTURES",
    "ENCODER_LAYERS",
    "AdainVGGEncoder",
    "Decoder",
    "adain",
    "blend_stats",
    "decoder_config",
    "decoder_input",
    "encode",
    "load_adain_encoder",
    "load_decoder",
]

#: Encoder layers AdaIN uses: all four for the style loss, ``relu4_1`` for AdaIN itself.
ENCODER_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")

#: Encoders a decoder can be built for (``"adain-vgg19"`` is the published normalised VGG19).
DECODER_ARCHITECTURES: tuple[str, ...] = ("vgg19", "vgg16", "adain-vgg19")

_CFG_KEY = {"vgg16": "vgg16", "vgg19": "vgg19", "adain-vgg19": "vgg19"}
#: Channels of relu4_1, the decoder's input (besides the colour path's), for every architecture.
FEATURE_CHANNELS = 512
#: Output channels of the decoder's first conv at ``width=1`` (all architectures).
_FIRST_WIDTH = 256
#: The colour path (``Decoder(colour_path=True)``): the picture's 8×8 block means, as three more channels
#: beside relu4_1 (AdaIN gives them the style's colour statistics like any other channel) ...
COLOUR_CHANNELS = 3
#: ... times this, about the root mean square of the default encoder's relu4_1 (10 on photos), so that
#: both kinds of channel start on one footing in the first convolution.
COLOUR_SCALE = 10.0
#: The detail path (``Decoder(detail_path=True)``): the picture's relu3_1 (256 channels at 1/4 of its size),
#: packed 2×2 pixels to channels (so 1024 channels on relu4_1's grid) after the other channels, so that AdaIN,
#: masks, blending and tiling treat it like relu4_1. The decoder unpacks it and joins it to its own channels
#: after its first upsampling: relu4_1's grid is too coarse for the decoder to redraw the picture's detail in
#: the training a CPU allows (docs/training-probes.md).
DETAIL_LAYER = "relu3_1"
DETAIL_CHANNELS = 256
#: relu3_1's root mean square on photos and paintings is about twice relu4_1's (22 against 10).
DETAIL_SCALE = 0.5

#: Slices of the published normalised VGG19 ``nn.Sequential`` ending at each layer.
_ADAIN_SLICES: dict[str, slice] = {
    "relu1_1": slice(0, 4),
    "relu2_1": slice(4, 11),
    "relu3_1": slice(11, 18),
    "relu4_1": slice(18, 31),
}

Stats = tuple[Tensor, Tensor]


# --------------------------------------------------------------------------- AdaIN operation

def _as_channel_stat(stat: Tensor, channels: int, name: str) -> Tensor:
    """``(C,)``, ``(1, C)`` or ``(B, C)`` statistics as ``(B|1, C, 1, 1)`` for broadcasting."""
    if stat.ndim == 1:
        stat = stat.unsqueeze(0)
    if stat.ndim != 2 or stat.shape[1] != channels:
        raise ValueError(f"{name} has shape {tuple(stat.shape)}; expected (B, {channels}), "
                         f"(1, {channels}) or ({channels},)")
    return stat[:, :, None, None]


def adain(content_feat: Tensor, style_mean: Tensor, style_std: Tensor, eps: float = 1e-5,
          content_stats: Stats | None = None) -> Tensor:
    r"""Adaptive instance normalisation.

    .. math:: \operatorname{AdaIN}(x, y) = \sigma(y) \frac{x - \mu(x)}{\sigma(x)} + \mu(y)

    with per-sample, per-channel :math:`\mu, \sigma` over the spatial axes (:func:`mean_std`).

    Args:
        content_feat: content features, :math:`(B, C, H, W)`.
        style_mean: style channel means :math:`\mu(y)`, :math:`(B, C)`, :math:`(1, C)` or :math:`(C,)`.
        style_std: style channel standard deviations :math:`\sigma(y)`, same shapes.
        eps: added to the content variance (see :func:`plugin_host.losses.mean_std`).
        content_stats: the content's ``(mean, std)`` to normalise with instead of the tensor's own,
            e.g. statistics of the whole image when ``content_feat`` is one tile of it.

    Returns:
        :math:`(B, C, H, W)`: features whose channel means/stds are the style's.

    Raises:
        ValueError: shapes do not fit together.
    """
    mean, std = content_stats if content_stats is not None else mean_std(content_feat, eps)
    channels = content_feat.shape[1]
    target_mean = _as_channel_stat(style_mean, channels, "style_mean")
    target_std = _as_channel_stat(style_std, channels, "style_std")
    normalised = (content_feat - mean[:, :, None, None]) / std[:, :, None, None]
    return normalised * target_std + target_mean


def blend_stats(stats: Sequence[Stats], weights: Sequence[float]) -> Stats:
    """Weighted average of style statistics, for style interpolation.

    Weights are normalised to sum to 1. Because AdaIN is affine in ``(mean, std)``, AdaIN with
    the blended statistics equals the same weighted sum of the per-style AdaIN outputs
    (the interpolation of Huang & Belongie, Sec. 7).

    Args:
        stats: ``[(mean, std), …]`` with equal shapes, each :math:`(B, C)` or :math:`(1, C)`.
        weights: one non-negative weight per entry, not all zero.

    Returns:
        ``(mean, std)`` of the shape of the inputs.

    Raises:
        ValueError: no statistics, a length mismatch, or invalid weights.
    """
    if not stats:
        raise ValueError("blend_stats needs at least one (mean, std) pair")
    if len(weights) != len(stats):
        raise ValueError(f"got {len(weights)} weights for {len(stats)} styles")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be non-negative and not all zero, got {list(weights)}")
    total = float(sum(weights))
    mean = sum(m * (w / total) for (m, _), w in zip(stats, weights))
    std = sum(s * (w / total) for (_, s), w in zip(stats, weights))
    return mean, std  # type: ignore[return-value]


# --------------------------------------------------------------------------- decoder

def decoder_config(architecture: str) -> list[int | str]:
    """The decoder's plan: the encoder's convs up to ``relu4_1``, reversed.

    Each conv of the encoder prefix ``in → out`` becomes a decoder conv ``out → in`` and each
    pool becomes ``"U"`` (nearest upsampling x2). The decoder input has 512 channels.

    Args:
        architecture: ``"vgg19"``, ``"adain-vgg19"`` (same plan) or ``"vgg16"``.

    Returns:
        Output channels of each decoder conv, with ``"U"`` where it upsamples, e.g. for vgg19
        ``[256, "U", 256, 256, 256, 128, "U", 128, 64, "U", 64, 3]``.

    Raises:
        ValueError: unknown architecture.
    """
    if architecture not in _CFG_KEY:
        raise ValueError(f"unknown decoder architecture {architecture!r}; "
                         f"expected one of {DECODER_ARCHITECTURES}")
    cfg = list(VGG_CONFIGS[_CFG_KEY[architecture]])
    prefix = cfg[: cfg.index(512) + 1]  # up to the first conv of block 4: relu4_1
    inputs: list[int | str] = []
    channels = 3
    for entry in prefix:
        if entry == "M":
            inputs.append("U")
        else:
            inputs.append(channels)
            channels = int(entry)
    return inputs[::-1]


class Decoder(nn.Sequential):
    """Maps AdaIN-ed ``relu4_1`` features back to an RGB image.

    A plain ``nn.Sequential`` (so its state-dict keys are ``1.weight``, ``5.weight``, … exactly
    as in the published ``decoder.pth``): per conv of :func:`decoder_config` a
    ``ReflectionPad2d(1)``, a 3x3 ``Conv2d`` and a ``ReLU`` (none after the last conv), with
    ``Upsample(scale_factor=2, mode="nearest")`` for each ``"U"``. For vgg19 that is 29 modules.

    Args:
        architecture: encoder the decoder inverts: ``"vgg19"``, ``"adain-vgg19"`` or ``"vgg16"``.
        width: multiplier of every inner channel count (0.25 gives a tiny decoder for tests);
            the input stays 512 channels and the output 3.
        colour_path: also take the picture's 8×8 block colours (:data:`COLOUR_CHANNELS`) and add them,
            enlarged, to the output.
        detail_path: also take the picture's relu3_1, packed onto relu4_1's grid (:data:`DETAIL_LAYER`), and
            join it after the first upsampling; the convolution there takes 256 more input channels.

    Raises:
        ValueError: unknown architecture or non-positive width.
    """

    def __init__(self, architecture: str = "vgg19", width: float = 1.0, colour_path: bool = False,
                 detail_path: bool = False) -> None:
        plan = decoder_config(architecture)
        if not width > 0:
            raise ValueError(f"width must be positive, got {width}")
        modules: list[nn.Module] = []
        channels = FEATURE_CHANNELS + (COLOUR_CHANNELS if colour_path else 0)
        last = max(i for i, entry in enumerate(plan) if entry != "U")
        detail_after = None  # index of the module after which the detail path joins
        for i, entry in enumerate(plan):
            if entry == "U":
                modules.append(nn.Upsample(scale_factor=2, mode="nearest"))
                if detail_path and detail_after is None:
                    detail_after, channels = len(modules) - 1, channels + DETAIL_CHANNELS
                continue
            out = int(entry) if i == last else max(1, round(int(entry) * width))
            modules += [nn.ReflectionPad2d(1), nn.Conv2d(channels, out, 3)]
            if i != last:
                modules.append(nn.ReLU())
            channels = out
        super().__init__(*modules)
        self.architecture: str = architecture
        self.width: float = float(width)
        self.colour_path: bool = bool(colour_path)
        self.detail_path: bool = bool(detail_path)
        self._detail_after: int | None = detail_after

    def index_after_first_upsampling(self) -> int:
        """Index of the module after which the detail path joins (the first upsampling)."""
        return next(i for i, module in enumerate(self) if isinstance(module, nn.Upsample))

    @property
    def input_channels(self) -> int:
        """Channels of the decoder's input: relu4_1, then the colour path's, then the packed detail path's."""
        return (FEATURE_CHANNELS + (COLOUR_CHANNELS if self.colour_path else 0)
                + (4 * DETAIL_CHANNELS if self.detail_path else 0))

    def forward(self, features: Tensor) -> Tensor:
        """Decode features.

        Args:
            features: :math:`(B, C, h, w)`, the AdaIN output of :func:`decoder_input`: relu4_1 (C = 512); with
                the colour path its 3 colour channels after it; with the detail path the packed relu3_1 last
                (C = :attr:`input_channels`).

        Returns:
            :math:`(B, 3, 8h, 8w)`, roughly RGB in 0..1 (not clamped). With the colour path the
            convolutions add detail to the colour channels' picture, enlarged bilinearly.
        """
        if features.shape[1] != self.input_channels:
            raise ValueError(f"the decoder takes {self.input_channels} channels, got {features.shape[1]}")
        main_channels = self.input_channels - (4 * DETAIL_CHANNELS if self.detail_path else 0)
        main = features[:, :main_channels]
        detail = F.pixel_shuffle(features[:, main_channels:], 2) if self.detail_path else None
        fast = self.runs_channels_last(features)
        out = self.forward_channels_last(main, detail) if fast else self._forward_layers(main, detail)
        if self.colour_path:
            colours = features[:, FEATURE_CHANNELS:FEATURE_CHANNELS + COLOUR_CHANNELS] / COLOUR_SCALE
            out = out + F.interpolate(colours, size=out.shape[-2:], mode="bilinear", align_corners=False)
        return out

    def _forward_layers(self, x: Tensor, detail: Tensor | None) -> Tensor:
        for index, module in enumerate(self):
            x = module(x)
            if index == self._detail_after:
                x = torch.cat([x, detail.to(x.dtype)], 1)
        return x

    def runs_channels_last(self, features: Tensor) -> bool:
        """Whether the layers run in channels-last buffers (:mod:`plugin_host.nhwc`): inference in float32 on
        the CPU, no hooks on any layer (bf16 casting uses them), a feature map of at least 2×2."""
        return nhwc.applies(self, features, min_side=2) and all(_plain_layer(m) for m in self)

    def forward_channels_last(self, features: Tensor, detail: Tensor | None = None) -> Tensor:
        """The layers of this ``Sequential`` for inference in channels-last buffers, each upsampling and the
        convolution after it computed as one resize convolution on the smaller grid (:func:`nhwc.upsample_conv`);
        equal to them up to float rounding, faster in float32 on the CPU. ``detail``: the unpacked detail path
        (NCHW), joined to the first upsampled channels."""
        y, upsample, relu, joins = features.permute(0, 2, 3, 1), False, False, None
        for index, module in enumerate(self):
            if isinstance(module, nn.Upsample):
                upsample = True
                if index == self._detail_after:
                    joins = detail.permute(0, 2, 3, 1).to(y.dtype)
            elif isinstance(module, nn.ReLU):
                relu = True
            elif isinstance(module, nn.Conv2d):
                if upsample:
                    y = nhwc.upsample_conv(y.clamp_min_(0) if relu else y, module, joined=joins)
                else:
                    y = nhwc.conv(nhwc.pad_reflect(y, 1, relu=relu), module)
                upsample, relu, joins = False, False, None
        return y.permute(0, 3, 1, 2)

    def metadata(self) -> dict[str, Any]:
        """``{"architecture", "width"}`` (and ``"colour_path"``, ``"detail_path"`` when set): what
        :func:`load_decoder` needs."""
        extra = {name: True for name in ("colour_path", "detail_path") if getattr(self, name)}
        return {"architecture": self.architecture, "width": self.width, **extra}

    def extra_repr(self) -> str:
        return (f"architecture={self.architecture!r}, width={self.width}, colour_path={self.colour_path}, "
                f"detail_path={self.detail_path}")


# --------------------------------------------------------------------------- published encoder

def _plain_layer(module: nn.Module) -> bool:
    """One of the layers :meth:`Decoder.forward_channels_last` knows, with the settings it assumes."""
    if isinstance(module, nn.ReflectionPad2d):
        return tuple(module.padding) == (1, 1, 1, 1)
    if isinstance(module, nn.Conv2d):
        return module.kernel_size == (3, 3) and module.stride == (1, 1) and module.padding == (0, 0)
    if isinstance(module, nn.Upsample):
        return module.mode == "nearest" and module.scale_factor in (2, 2.0) and module.size is None
    return type(module) is nn.ReLU


class AdainVGGEncoder(nn.Module):
    """The published normalised VGG19 of AdaIN (``vgg_normalised.pth``) up to ``relu4_1``, frozen.

    ``self.net`` is modules ``[:31]`` of the published 53-module ``nn.Sequential``: a 1x1 conv
    (index 0, the colour/mean preprocessing inherited from Caffe), then per VGG19 conv a
    ``ReflectionPad2d(1)``, the 3x3 conv and a ``ReLU``, with ``MaxPool2d(2, ceil_mode=True)``
    between blocks. Load weights with :func:`load_adain_encoder`.

    Attributes:
        architecture: ``"adain-vgg19"``.
        layers: :data:`ENCODER_LAYERS`, the keys :meth:`forward` returns.
    """

    architecture = "adain-vgg19"
    layers: tuple[str, ...] = ENCODER_LAYERS

    def __init__(self) -> None:
        super().__init__()
        cfg = list(VGG_CONFIGS["vgg19"])
        modules: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
        channels = 3
        for entry in cfg[: cfg.index(512) + 1]:
            if entry == "M":
                modules.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                modules += [nn.ReflectionPad2d(1), nn.Conv2d(channels, int(entry), 3), nn.ReLU()]
                channels = int(entry)
        self.net = nn.Sequential(*modules)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> AdainVGGEncoder:
        """Kept for the ``nn.Module`` API; the encoder stays in eval mode."""
        return super().train(False)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        """Activations at :data:`ENCODER_LAYERS`.

        Args:
            image: RGB batch in 0..1, :math:`(B, 3, H, W)`, used as is (no ImageNet
                normalisation; the 1x1 conv does the preprocessing).

        Returns:
            ``{"relu1_1": (B, 64, H, W), "relu2_1": (B, 128, ⌈H/2⌉, ⌈W/2⌉),
            "relu3_1": (B, 256, ⌈H/4⌉, …), "relu4_1": (B, 512, ⌈H/8⌉, …)}``
            (ceil-mode pooling). Gradients flow to ``image``.

        Raises:
            ValueError: ``image`` is not a :math:`(B, 3, H, W)` tensor.
        """
        if not isinstance(image, Tensor) or image.ndim != 4 or image.shape[1] != 3:
            got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"expected an image of shape (B, 3, H, W), got {got}")
        found: dict[str, Tensor] = {}
        x = image
        for name, part in _ADAIN_SLICES.items():
            x = self.net[part](x)
            found[name] = x
        return found


# --------------------------------------------------------------------------- loading

def load_adain_encoder(state_dict: Mapping[str, Any]) -> AdainVGGEncoder:
    """An :class:`AdainVGGEncoder` with the weights of the published ``vgg_normalised.pth``.

    Keys of modules past ``relu4_1`` (index > 30: ``32.*``, ``35.*``, … ``51.*``) are ignored.

    Args:
        state_dict: ``{"0.weight": (3, 3, 1, 1), "0.bias": (3,), "2.weight": (64, 3, 3, 3), …}``.

    Returns:
        The frozen encoder in eval mode, on the CPU.

    Raises:
        WeightsError: a key of modules ``[:31]`` is missing, has the wrong shape, or the dict
            holds keys that are not ``N.weight`` / ``N.bias``.
    """
    encoder = AdainVGGEncoder()
    hint = ("expected AdaIN's vgg_normalised.pth (naoto0804/pytorch-AdaIN): 34 tensors with keys "
            "'0.weight' (3, 3, 1, 1), '2.weight' (64, 3, 3, 3), … '51.bias'")
    if not isinstance(state_dict, Mapping):
        raise WeightsError(f"not an AdaIN VGG encoder: expected a state dict, got "
                           f"{type(state_dict).__name__}", hint)
    kept = {key: value for key, value in state_dict.items() if _module_index(key, default=-1) <= 30}
    load_strict(encoder.net, kept, "not an AdaIN normalised VGG19 encoder", hint)
    return encoder


def _module_index(key: object, default: int) -> int:
    """``N`` of a key ``"N.something"``, else ``default``."""
    head = str(key).split(".", 1)[0]
    return int(head) if head.isdigit() else default


def _infer_decoder(state: Mapping[str, Any]) -> tuple[str, float]:
    """Architecture and width of a decoder state dict without metadata.

    The architecture is the one whose key set differs least from the given keys (ties: vgg19),
    so a dict with one key missing is still recognised; a dict sharing no key with either (not
    a decoder at all) is reported against vgg19, the published layout. The width is the first
    conv's output channels / 256.
    """
    keys = set(map(str, state))
    layouts = {arch: set(_decoder_keys(arch)) for arch in ("vgg19", "vgg16")}
    if not any(keys & layout for layout in layouts.values()):
        return "vgg19", 1.0
    best = min(layouts, key=lambda arch: len(keys ^ layouts[arch]))
    first = state.get(next(iter(_decoder_keys(best))))
    width = first.shape[0] / _FIRST_WIDTH if isinstance(first, Tensor) and first.ndim == 4 else 1.0
    return best, width


def _decoder_keys(architecture: str) -> dict[str, tuple[int, ...]]:
    """Key → shape of a width-1 decoder (built on the meta device, nothing allocated)."""
    with torch.device("meta"):
        decoder = Decoder(architecture)
    return {key: tuple(value.shape) for key, value in decoder.state_dict().items()}


def _joins_detail(state: Mapping[str, Any], architecture: str, width: float) -> bool:
    """Whether the convolution after the first upsampling takes the detail path's channels too."""
    with torch.device("meta"):
        plain = Decoder(architecture, width)
    index = plain.index_after_first_upsampling() + 2  # its padding, then the convolution
    weight = state.get(f"{index}.weight")
    expected = plain[index].in_channels
    return isinstance(weight, Tensor) and weight.ndim == 4 and weight.shape[1] == expected + DETAIL_CHANNELS


def load_decoder(state_dict: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> Decoder:
    """A :class:`Decoder` with the given weights.

    Args:
        state_dict: ``nn.Sequential`` keys ``1.weight`` (C, 512, 3, 3), ``1.bias``, ``5.weight``, …,
            as in the published ``decoder.pth`` or a decoder trained here.
        metadata: ``{"architecture", "width"}`` from :meth:`Decoder.metadata`; without it (the
            published file) both are inferred from the keys and shapes.

    Returns:
        The decoder in eval mode, on the CPU, with trainable parameters.

    Raises:
        WeightsError: bad metadata, or keys/shapes that do not match the decoder's layout.
    """
    hint = ("expected AdaIN's decoder.pth (naoto0804/pytorch-AdaIN: 18 tensors, keys '1.weight' "
            "(256, 512, 3, 3) … '28.bias' (3,)) or a decoder checkpoint trained by plugin_host")
    if not isinstance(state_dict, Mapping):
        raise WeightsError(f"not an AdaIN decoder: expected a state dict, got "
                           f"{type(state_dict).__name__}", hint)
    if metadata and ("architecture" in metadata or "width" in metadata):
        architecture = metadata.get("architecture", "vgg19")
        width = metadata.get("width", 1.0)
        if architecture not in _CFG_KEY or not isinstance(width, (int, float)) or not width > 0:
            raise WeightsError(f"AdaIN decoder metadata names architecture {architecture!r} and "
                               f"width {width!r}; expected one of {DECODER_ARCHITECTURES} and a "
                               "positive number", hint)
    else:
        architecture, width = _infer_decoder(state_dict)
    first = state_dict.get("1.weight")
    colour_path = bool(metadata.get("colour_path")) if metadata and "colour_path" in metadata else (
        isinstance(first, Tensor) and first.ndim == 4 and first.shape[1] == FEATURE_CHANNELS + COLOUR_CHANNELS)
    detail_path = bool(metadata.get("detail_path")) if metadata and "detail_path" in metadata else (
        _joins_detail(state_dict, architecture, width))
    decoder = Decoder(architecture, width, colour_path=colour_path, detail_path=detail_path)
    label = architecture if width == 1 else f"{architecture}, width {width:g}"
    load_strict(decoder, state_dict, f"not an AdaIN decoder for {label}", hint)
    return decoder.eval()


# --------------------------------------------------------------------------- encoding

def decoder_input(encoder: VGGEncoder | AdainVGGEncoder, decoder: Decoder, image: Tensor) -> Tensor:
    """What AdaIN normalises and ``decoder`` decodes: ``relu4_1`` of ``image``, with the decoder's colour path
    its 8×8 block means (times :data:`COLOUR_SCALE`) on the same grid, with its detail path its relu3_1 packed
    onto that grid (2×2 pixels to channels, times :data:`DETAIL_SCALE`).

    The default encoder's relu4_1 carries the picture's colours weakly (a linear read-out explains a third
    of the 8×8 block colours; docs/training-probes.md), so a decoder of relu4_1 alone must guess them.
    """
    encoded = encode(encoder, image)
    features = encoded["relu4_1"]
    paths = [features]
    if decoder.colour_path:
        paths.append(F.adaptive_avg_pool2d(image.to(features.dtype), features.shape[-2:]) * COLOUR_SCALE)  # 8×8 blocks
    if decoder.detail_path:
        height, width = features.shape[-2:]
        detail = _fit(encoded[DETAIL_LAYER], 2 * height, 2 * width)
        paths.append(F.pixel_unshuffle(detail, 2) * DETAIL_SCALE)
    return torch.cat(paths, 1) if len(paths) > 1 else features


def _fit(features: Tensor, height: int, width: int) -> Tensor:
    """``features`` cropped, or padded by repeating their edge, to ``height`` × ``width`` (relu3_1 is one row
    or column off twice relu4_1's size where a pooling rounded up or down an odd side)."""
    features = features[..., :height, :width]
    missing_rows, missing_columns = height - features.shape[-2], width - features.shape[-1]
    if missing_rows or missing_columns:
        features = F.pad(features, (0, missing_columns, 0, missing_rows), mode="replicate")
    return features


def encode(encoder: VGGEncoder | AdainVGGEncoder, image: Tensor) -> dict[str, Tensor]:
    """Features at :data:`ENCODER_LAYERS` from either kind of encoder.

    Args:
        encoder: a :class:`~plugin_host.encoders.VGGEncoder` built with (at least)
            :data:`ENCODER_LAYERS`, or an :class:`AdainVGGEncoder`.
        image: RGB batch in 0..1, :math:`(B, 3, H, W)`; each encoder normalises it as its
            weights expect.

    Returns:
        ``{layer: (B, C, h, w)}`` for ``relu1_1 … relu4_1`` in that order
        (C = 64, 128, 256, 512).

    Raises:
        ValueError: the encoder does not return one of :data:`ENCODER_LAYERS`.
    """
    features = encoder(image)
    missing = [name for name in ENCODER_LAYERS if name not in features]
    if missing:
        raise ValueError(f"encoder does not return {missing}; build it with layers={ENCODER_LAYERS}")
    return {name: features[name] for name in ENCODER_LAYERS}
