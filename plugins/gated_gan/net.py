"""Networks of Gated-GAN (Chen, Xu, Yang & Tao, "Gated-GAN: Adversarial Gated Networks for Multi-Collection
Style Transfer", IEEE TIP 2019): one generator for many styles, and a discriminator with two heads.

Generator (:class:`Generator`), images in -1..1 to -1..1:

* encoder: reflection-padded 7×7 conv, two stride-2 3×3 convs, each with instance norm and ReLU;
* gated transformer: one residual block per style plus a parameter-free identity (auto-encoder) branch;
  a gate of ``n_styles + 1`` weights per image mixes the branch outputs, Σ_k g_k · branch_k(features),
  so soft gates interpolate in feature space before the shared decoder;
* decoder: residual blocks, two ×2 upsampling stages (transposed convs as in the paper, or nearest
  resize + conv), reflection-padded 7×7 conv, tanh.

Module names follow the PyTorch port (colemiller94/gatedgan), so its generator checkpoints, which have
non-affine instance norms, load key for key (:func:`load_generator`); our own models add affine
instance norms, as the paper's Lua code has.

Discriminator (:class:`Discriminator`): a 70×70 PatchGAN body with two separate heads, real/fake per
patch (LSGAN) and a per-patch style classifier, kept apart as the paper argues (one merged head would
overlay the two losses' gradients).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from plugin_host.sdk import WeightsError, load_strict, nhwc

from .schema import PORT_STYLES, UPSAMPLES

__all__ = ["Generator", "Discriminator", "GatedTransformer", "ResidualBlock", "build_generator", "load_generator",
           "port_layout", "one_hot", "to_network", "from_network"]

#: Constructor options of :class:`Generator` that a model's metadata records.
GENERATOR_OPTIONS = ("n_styles", "ngf", "decoder_blocks", "upsample", "affine")


def _norm(channels: int, affine: bool) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=affine)


class ResidualBlock(nn.Module):
    """x + (pad, 3×3 conv, norm, ReLU, pad, 3×3 conv, norm)(x); ``conv_block`` indices as in the port."""

    def __init__(self, channels: int, affine: bool = True) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels, affine), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels, affine))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


def _residual(buffer: Tensor, block: "ResidualBlock", last: bool) -> Tensor:
    """``block`` on the features inside ``buffer`` (NHWC, reflected border 1), as :func:`nhwc.residual_block`."""
    layers = block.conv_block
    return nhwc.residual_block(buffer, layers[1], layers[2], layers[5], layers[6], last=last)


class Encoder(nn.Module):
    def __init__(self, ngf: int, affine: bool) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), _norm(ngf, affine), nn.ReLU(inplace=True),
            nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1), _norm(2 * ngf, affine), nn.ReLU(inplace=True),
            nn.Conv2d(2 * ngf, 4 * ngf, 3, stride=2, padding=1), _norm(4 * ngf, affine), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class ResizeConv(nn.Module):
    """×2 nearest-neighbour resize, then a reflection-padded 3×3 conv: no checkerboard artefacts."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(channels_in, channels_out, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pad(F.interpolate(x, scale_factor=2, mode="nearest")))


def _upsample(channels_in: int, channels_out: int, mode: str) -> nn.Module:
    if mode == "transposed":
        return nn.ConvTranspose2d(channels_in, channels_out, 3, stride=2, padding=1, output_padding=1)
    return ResizeConv(channels_in, channels_out)


class Decoder(nn.Module):
    def __init__(self, ngf: int, blocks: int, upsample: str, affine: bool) -> None:
        super().__init__()
        self.model = nn.Sequential(
            *(ResidualBlock(4 * ngf, affine) for _ in range(blocks)),
            _upsample(4 * ngf, 2 * ngf, upsample), _norm(2 * ngf, affine), nn.ReLU(inplace=True),
            _upsample(2 * ngf, ngf, upsample), _norm(ngf, affine), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class GatedTransformer(nn.Module):
    """One residual block per style (``t.0`` … ``t.{n-1}``) and the identity branch (``t.n``), mixed by a gate.

    ``forward(features, gate)`` with ``gate`` of shape ``(B, n_styles + 1)`` returns
    Σ_k gate[:, k] · branch_k(features). A branch whose weight is 0 for every image of the batch is not
    run at all: a one-hot gate costs one block, and gives exactly that branch's output.
    """

    def __init__(self, channels: int, n_styles: int, affine: bool = True) -> None:
        super().__init__()
        self.t = nn.ModuleList([*(ResidualBlock(channels, affine) for _ in range(n_styles)), nn.Identity()])

    def forward(self, features: Tensor, gate: Tensor) -> Tensor:
        mixed = None
        for index, branch in enumerate(self.t):
            weight = gate[:, index]
            if not bool((weight != 0).any()):
                continue
            term = branch(features) * weight.view(-1, 1, 1, 1).to(features.dtype)
            mixed = term if mixed is None else mixed + term
        return torch.zeros_like(features) if mixed is None else mixed


class Generator(nn.Module):
    """Encoder → gated transformer → decoder, from images in -1..1 to -1..1 (any size; padded to a multiple of 4).

    Args:
        n_styles: style branches; the gate has ``n_styles + 1`` entries, the last the identity branch.
        ngf: channels after the first conv (the paper: 64); the transformer works at ``4 · ngf``.
        decoder_blocks: residual blocks of the decoder (the paper: 5).
        upsample: ``"transposed"`` (the paper) or ``"resize"``.
        affine: affine instance norms (the paper's Lua code; the PyTorch port has none).
    """

    def __init__(self, n_styles: int = 4, ngf: int = 64, decoder_blocks: int = 5, upsample: str = "transposed",
                 affine: bool = True) -> None:
        super().__init__()
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample: expected one of {UPSAMPLES}, got {upsample!r}")
        if n_styles < 1 or ngf < 1 or decoder_blocks < 0:
            raise ValueError(f"expected n_styles ≥ 1, ngf ≥ 1, decoder_blocks ≥ 0; got {n_styles}, {ngf}, "
                             f"{decoder_blocks}")
        self.config = {"n_styles": n_styles, "ngf": ngf, "decoder_blocks": decoder_blocks, "upsample": upsample,
                       "affine": affine}
        self.n_styles = n_styles
        self.encoder = Encoder(ngf, affine)
        self.transformer = GatedTransformer(4 * ngf, n_styles, affine)
        self.decoder = Decoder(ngf, decoder_blocks, upsample, affine)

    @property
    def identity(self) -> int:
        """The gate index of the identity (auto-encoder) branch."""
        return self.n_styles

    def forward(self, image: Tensor, gate: Tensor) -> Tensor:
        """``image`` (B, 3, H, W) in -1..1, ``gate`` (B, n_styles + 1) or (n_styles + 1,) → (B, 3, H, W) in -1..1."""
        gate = self._check_gate(gate, image.shape[0]).to(image.device)
        height, width = image.shape[-2:]
        pad_h, pad_w = -height % 4, -width % 4  # two stride-2 stages: sizes must divide by 4
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), mode="reflect" if min(height, width) > 4 else "replicate")
        if self.runs_channels_last(image):
            return self.forward_channels_last(image, gate)[..., :height, :width]
        out = self.decoder(self.transformer(self.encoder(image), gate))
        return out[..., :height, :width]

    def runs_channels_last(self, image: Tensor) -> bool:
        """Whether :meth:`forward` computes in channels-last buffers (:mod:`plugin_host.nhwc`): inference in float32
        on the CPU with resize upsampling, no hooks on any layer (bf16 casting uses them) but tiling's shared
        statistics, which that path applies itself."""
        return self.config["upsample"] == "resize" and nhwc.applies(self, image, min_side=8)

    def forward_channels_last(self, image: Tensor, gate: Tensor) -> Tensor:
        """The generator on ``image`` (sides divisible by 4) with each layer writing straight into the next
        convolution's padded channels-last buffer; equal to the modules up to float rounding."""
        encoder, decoder, blocks = self.encoder.model, self.decoder.model, self.config["decoder_blocks"]
        y = nhwc.conv(nhwc.pad_reflect(image.permute(0, 2, 3, 1), 3), encoder[1])
        y = nhwc.conv(nhwc.normed_padded(y, encoder[2], 0), encoder[4])  # zero-padded strided convs
        y = nhwc.conv(nhwc.normed_padded(y, encoder[5], 0), encoder[7])
        buffer = nhwc.normed_padded(y, encoder[8], 1)
        buffer = self._mix_branches(buffer, gate, last=blocks == 0)
        for index in range(blocks):
            buffer = _residual(buffer, decoder[index], last=index == blocks - 1)
        y = buffer
        for stage, pad in ((blocks, 0), (blocks + 3, 3)):  # resize conv, norm, ReLU; then the 7×7 conv's padding
            y = nhwc.normed_padded(nhwc.upsample_conv(y, decoder[stage].conv), decoder[stage + 1], pad)
        return torch.tanh_(nhwc.conv(y, decoder[blocks + 7])).permute(0, 3, 1, 2)

    def _mix_branches(self, buffer: Tensor, gate: Tensor, last: bool) -> Tensor:
        """Σ_k gate[:, k] · branch_k of the features in ``buffer``, as :class:`GatedTransformer`; in a new buffer
        padded for the decoder's first residual block (unpadded when it has none)."""
        features = nhwc.interior(buffer, 1)
        mixed = None
        for index, branch in enumerate(self.transformer.t):
            weight = gate[:, index]
            if not bool((weight != 0).any()):
                continue
            term = features if isinstance(branch, nn.Identity) else _residual(buffer, branch, last=True)
            term = term * weight.view(-1, 1, 1, 1).to(features.dtype)
            mixed = term if mixed is None else mixed.add_(term)
        mixed = torch.zeros_like(features) if mixed is None else mixed
        return mixed if last else nhwc.pad_reflect(mixed, 1)

    def _check_gate(self, gate: Tensor, batch: int) -> Tensor:
        if gate.dim() == 1:
            gate = gate.expand(batch, -1)
        if gate.shape != (batch, self.n_styles + 1):
            raise ValueError(f"gate: expected shape ({batch}, {self.n_styles + 1}) or ({self.n_styles + 1},), "
                             f"got {tuple(gate.shape)}")
        return gate


class Discriminator(nn.Module):
    """PatchGAN (70×70 receptive field with ``layers=3``) with a real/fake head and a style-classifier head.

    ``forward(image)`` returns ``(realness, logits)``: (B, 1, h, w) LSGAN scores and (B, n_styles, h, w)
    style logits, one per patch (h = w = 19 for a 128 px input).
    """

    def __init__(self, n_styles: int, ndf: int = 64, layers: int = 3) -> None:
        super().__init__()
        body: list[nn.Module] = [nn.Conv2d(3, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2, inplace=True)]
        channels = ndf
        for index in range(1, layers + 1):
            wider = ndf * 2 ** index
            stride = 2 if index < layers else 1
            body += [nn.Conv2d(channels, wider, 4, stride=stride, padding=2), _norm(wider, True),
                     nn.LeakyReLU(0.2, inplace=True)]
            channels = wider
        self.body = nn.Sequential(*body)
        self.adversarial = nn.Conv2d(channels, 1, 4, padding=2)
        self.classifier = nn.Conv2d(channels, n_styles, 4, padding=2)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        features = self.body(image)
        return self.adversarial(features), self.classifier(features)


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: conv weights N(0, 0.02), biases 0, affine norm scales N(1, 0.02)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.InstanceNorm2d) and layer.affine:
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def one_hot(n_styles: int, index: int, batch: int = 1) -> Tensor:
    """The gate selecting branch ``index`` (``n_styles`` is the identity branch) for ``batch`` images."""
    gate = torch.zeros(batch, n_styles + 1)
    gate[:, index] = 1.0
    return gate


def to_network(image: Tensor) -> Tensor:
    """0..1 RGB → the networks' -1..1."""
    return image * 2 - 1


def from_network(image: Tensor) -> Tensor:
    """The networks' -1..1 → 0..1 RGB (not clamped)."""
    return (image + 1) / 2


def build_generator(config: Mapping[str, Any]) -> Generator:
    """A generator from a model's metadata (the keys of :data:`GENERATOR_OPTIONS`)."""
    options = {key: config[key] for key in GENERATOR_OPTIONS if key in config}
    try:
        return Generator(**options)
    except (TypeError, ValueError) as err:
        raise WeightsError(f"model metadata describes no Gated-GAN generator this plugin can build: {err}",
                           hint="the file may come from a newer plugin_host; update it") from None


_PORT_HINT = ("expected a plugin_host Gated-GAN export, or a generator state dict of the PyTorch port "
              "(colemiller94/gatedgan Generator: keys encoder.model.1.weight, transformer.t.0.conv_block.1.weight, "
              "…, decoder.model.12.bias)")


def port_layout(state: Mapping[str, Any]) -> dict[str, Any]:
    """The generator options of a port checkpoint, read from its keys and shapes (WeightsError if none fit).

    The port builds non-affine instance norms and transposed-conv upsampling; its width is the first
    conv's output channels, its style count the transformer blocks, its decoder blocks those before
    the first transposed conv (``decoder.model.5`` for the port's five).
    """
    first = state.get("encoder.model.1.weight")
    if not isinstance(first, Tensor) or first.dim() != 4:
        raise WeightsError("not a Gated-GAN generator: no encoder.model.1.weight (the first 7×7 conv)",
                           hint=_PORT_HINT)
    styles = {int(key.split(".")[2]) for key in state if key.startswith("transformer.t.")
              and key.split(".")[2].isdigit()}
    blocks = {int(key.split(".")[2]) for key in state if key.startswith("decoder.model.")
              and ".conv_block." in key and key.split(".")[2].isdigit()}
    return {"n_styles": max(styles, default=0) + 1, "ngf": int(first.shape[0]),
            "decoder_blocks": max(blocks, default=-1) + 1,
            "upsample": "transposed", "affine": False}


def load_generator(state_dict: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> Generator:
    """A generator with ``state_dict`` loaded strictly, in eval mode without gradients.

    With ``metadata`` (our export) the network is built from it. Without (a port checkpoint) its shape
    is read from the keys (:func:`port_layout`); every missing, unexpected or misshapen key is named in
    one WeightsError.
    """
    if not isinstance(state_dict, Mapping):
        raise WeightsError(f"not a Gated-GAN generator: expected a state dict, got {type(state_dict).__name__}",
                           hint=_PORT_HINT)
    config = dict(metadata) if metadata else port_layout(state_dict)
    net = build_generator(config)
    state = {k: v.float() if isinstance(v, Tensor) and v.is_floating_point() else v for k, v in state_dict.items()}
    load_strict(net, state, "not a Gated-GAN generator of this shape", _PORT_HINT)
    return net.eval().requires_grad_(False)


def style_names(metadata: Mapping[str, Any], n_styles: int) -> tuple[str, ...]:
    """A model's style names in gate order: its metadata's ``styles``, else the port's four, else style1…N."""
    names = metadata.get("styles")
    if isinstance(names, Sequence) and not isinstance(names, str) and len(names) == n_styles:
        return tuple(str(name) for name in names)
    if n_styles == len(PORT_STYLES):
        return PORT_STYLES
    return tuple(f"style{index + 1}" for index in range(n_styles))
