"""Frozen VGG16/VGG19 feature extractors returning named intermediate activations.

Layers are named after torchvision's ``vgg16().features`` / ``vgg19().features`` index order:
``conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, …, pool5``. State dicts use torchvision's
layout (``features.N.weight`` / ``features.N.bias``, or the same keys without ``features.``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from typing import Any, Literal, cast, get_args

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ..errors import WeightsError
from ..imaging.normalize import to_encoder_input

Architecture = Literal["vgg16", "vgg19"]
Pooling = Literal["max", "avg"]
Convention = Literal["torchvision", "caffe", "raw"]

ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
POOLINGS: tuple[str, ...] = get_args(Pooling)
CONVENTIONS: tuple[str, ...] = get_args(Convention)

# torchvision's VGG configurations "D" and "E": conv widths in order, "M" for a 2x2 max-pool.
# Written out rather than imported: importing torchvision costs 1.6 s and ~170 MiB of memory,
# and a test checks that the layers built from these match torchvision's module for module.
VGG_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}


def _check_architecture(architecture: str) -> list[int | str]:
    if architecture not in VGG_CONFIGS:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")
    return list(VGG_CONFIGS[architecture])


def make_layers(cfg: Iterable[int | str]) -> nn.Sequential:
    """torchvision's ``vgg.make_layers(cfg)`` without batch norm: 3x3 conv + ReLU per width, max-pool per "M"."""
    layers: list[nn.Module] = []
    channels = 3
    for entry in cfg:
        if entry == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(entry), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = int(entry)
    return nn.Sequential(*layers)


class _MaxPoolRecomputingIndices(torch.autograd.Function):
    """Max-pool whose backward finds the maxima again instead of keeping them from the forward.

    Autograd's max-pool keeps an int64 index per output value: four times the bytes of a bf16
    output, 60 MiB for VGG16's pools at 512². Its input is kept anyway (the ReLU before it saves
    that same tensor), so recomputing the indices in backward costs one more pass over it.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, kernel_size: int, stride: int) -> Tensor:
        ctx.save_for_backward(x)
        ctx.kernel_size, ctx.stride = kernel_size, stride
        return nn.functional.max_pool2d(x, kernel_size, stride)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            pooled = nn.functional.max_pool2d(x, ctx.kernel_size, ctx.stride)
        (grad_input,) = torch.autograd.grad(pooled, x, grad_output)
        return grad_input, None, None


class LeanMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d(k, s)`` (no padding, dilation or ceil mode) that keeps no indices for backward.

    With ``keep_indices`` set (:meth:`VGGEncoder.keep_pool_indices`) it is a plain max-pool again:
    faster backward, more memory.
    """

    keep_indices: bool = False

    def forward(self, x: Tensor) -> Tensor:
        if self.keep_indices or not (torch.is_grad_enabled() and x.requires_grad):
            return super().forward(x)
        return _MaxPoolRecomputingIndices.apply(x, self.kernel_size, self.stride)


def layer_names(architecture: Architecture) -> tuple[str, ...]:
    """Names of the modules of ``vgg16().features`` / ``vgg19().features``, in index order.

    Args:
        architecture: ``"vgg16"`` (31 names) or ``"vgg19"`` (37 names).

    Returns:
        ``("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1", …, "pool5")``;
        the name at position ``N`` is the module whose weights are ``features.N.*``.

    Example:
        >>> layer_names("vgg16").index("relu4_2")
        20
    """
    names: list[str] = []
    block, index = 1, 1
    for entry in _check_architecture(architecture):
        if entry == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
            index += 1
    return tuple(names)


def _truncated_cfg(cfg: list[int | str], modules: int) -> list[int | str]:
    """The shortest prefix of ``cfg`` whose ``make_layers`` output has at least ``modules`` modules."""
    prefix: list[int | str] = []
    count = 0
    for entry in cfg:
        if count >= modules:
            break
        prefix.append(entry)
        count += 1 if entry == "M" else 2
    return prefix


class VGGEncoder(nn.Module):
    """A frozen VGG feature extractor that returns the activations of the requested layers.

    Only the prefix of ``features`` up to the deepest requested layer is built, so deeper
    layers are neither computed nor allocated. The torchvision classifier is never built.

    Args:
        architecture: ``"vgg16"`` or ``"vgg19"``.
        layers: names from :func:`layer_names` whose outputs :meth:`forward` returns
            (duplicates are ignored; order is kept).
        pooling: ``"max"`` (torchvision) or ``"avg"`` (``AvgPool2d(2, 2)`` in place of every
            max-pool, as Gatys et al. recommend for synthesis).
        convention: input normalisation the weights expect, applied inside :meth:`forward`:
            ``"torchvision"`` (RGB, ImageNet mean/std), ``"caffe"`` (BGR, 0..255, mean
            subtracted) or ``"raw"`` (none).
        state_dict: torchvision-layout weights (``features.N.weight``/``.bias`` or
            ``N.weight``/``.bias``); keys of layers that are not kept are ignored. Tensors already
            in the default dtype are used without a copy. ``None`` keeps PyTorch's random
            initialisation (tests only).

    Raises:
        ValueError: unknown architecture, layer, pooling or convention, or no layers.
        WeightsError: ``state_dict`` lacks a key of a kept layer or a tensor has the wrong shape.

    Example:
        >>> enc = VGGEncoder("vgg16", ["relu1_1", "relu2_1"])
        >>> feats = enc(torch.rand(1, 3, 32, 32))
        >>> feats["relu2_1"].shape
        torch.Size([1, 128, 16, 16])
    """

    def __init__(
        self,
        architecture: Architecture,
        layers: Iterable[str],
        pooling: Pooling = "max",
        convention: Convention = "torchvision",
        state_dict: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        cfg = _check_architecture(architecture)
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown convention {convention!r}; expected one of {CONVENTIONS}")
        if isinstance(layers, str):
            layers = [layers]
        requested = tuple(dict.fromkeys(layers))
        if not requested:
            raise ValueError("layers must name at least one layer")
        names = layer_names(architecture)
        unknown = [name for name in requested if name not in names]
        if unknown:
            raise ValueError(f"unknown {architecture} layer(s) {unknown}; expected names from {names}")

        self.architecture: str = architecture
        self.pooling: str = pooling
        self.convention: str = convention
        self.layers: tuple[str, ...] = requested
        depth = max(names.index(name) for name in requested) + 1
        self._names: tuple[str, ...] = names[:depth]

        # With weights, build on the meta device so no throw-away random init is allocated.
        with torch.device("meta") if state_dict is not None else nullcontext():
            features = make_layers(_truncated_cfg(cfg, depth))[:depth]
        for index, module in enumerate(features):
            if isinstance(module, nn.ReLU):
                # A requested conv output must survive the ReLU that follows it.
                module.inplace = False
            elif isinstance(module, nn.MaxPool2d):
                features[index] = nn.AvgPool2d(kernel_size=2, stride=2) if pooling == "avg" else LeanMaxPool2d(2, 2)
        self.features = cast(nn.Sequential, features)
        if state_dict is not None:
            self._load(state_dict)
        self.requires_grad_(False)
        self.eval()

    def _load(self, state_dict: Mapping[str, Any]) -> None:
        hint = (f"expected a torchvision-layout {self.architecture} state dict with keys "
                "'features.N.weight' / 'features.N.bias' (or 'N.weight' / 'N.bias')")
        for index, module in enumerate(self.features):
            if not isinstance(module, nn.Conv2d):
                continue
            layer = self._names[index]
            for attr in ("weight", "bias"):
                expected = getattr(module, attr)
                key = f"features.{index}.{attr}"
                value = state_dict.get(key, state_dict.get(f"{index}.{attr}"))
                if value is None:
                    raise WeightsError(
                        f"{self.architecture} weights: missing key {key!r} for layer {layer}", hint)
                if not isinstance(value, Tensor):
                    raise WeightsError(
                        f"{self.architecture} weights: {key!r} (layer {layer}) is a "
                        f"{type(value).__name__}, not a tensor", hint)
                if value.shape != expected.shape:
                    raise WeightsError(
                        f"{self.architecture} weights: {key!r} (layer {layer}) has shape "
                        f"{tuple(value.shape)}, expected {tuple(expected.shape)}", hint)
                tensor = value.detach().to(dtype=torch.get_default_dtype())
                setattr(module, attr, nn.Parameter(tensor, requires_grad=False))

    def keep_pool_indices(self, keep: bool) -> None:
        """Let the max-pools keep their indices for backward (faster, more memory) or recompute them."""
        for module in self.features:
            if isinstance(module, LeanMaxPool2d):
                module.keep_indices = keep

    def train(self, mode: bool = True) -> VGGEncoder:
        """Kept for the ``nn.Module`` API; the encoder stays in eval mode."""
        return super().train(False)

    def forward(self, image: Tensor, on_layer: Callable[[str, Tensor], object] | None = None) -> dict[str, Tensor]:
        """Activations of the requested layers.

        Args:
            image: RGB image batch in 0..1, shape :math:`(B, 3, H, W)`; normalised internally.
            on_layer: called with each requested layer's name and activation as soon as it is computed,
                before the next layer runs. A loss computed there is built into the graph beside its layer, so
                backward computes its gradient when it reaches that layer instead of first (autograd runs the
                most recently created ready node first): at 512² that keeps the gradients of the shallow
                style layers from being held through the whole backward pass (about 130 MiB).

        Returns:
            ``{layer: features}`` for each requested layer, in the requested order; features of
            a layer in block ``k`` have shape :math:`(B, C_k, H / 2^{k-1}, W / 2^{k-1})` (pools
            floor odd sizes), with ``C_k`` = 64, 128, 256, 512, 512. Gradients flow to ``image``.

        Raises:
            ValueError: ``image`` is not a :math:`(B, 3, H, W)` tensor.
        """
        if not isinstance(image, Tensor) or image.ndim != 4 or image.shape[1] != 3:
            got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"expected an image of shape (B, 3, H, W), got {got}")
        wanted = set(self.layers)
        found: dict[str, Tensor] = {}
        x = to_encoder_input(image, self.convention)
        for name, module in zip(self._names, self.features):
            x = module(x)
            if name in wanted:
                found[name] = x
                if on_layer is not None:
                    on_layer(name, x)
        return {name: found[name] for name in self.layers}

    @property
    def description(self) -> str:
        """One line for logs, e.g. ``"vgg16 (caffe input, max pooling): relu1_1, relu2_1"``."""
        return (f"{self.architecture} ({self.convention} input, {self.pooling} pooling): "
                + ", ".join(self.layers))

    def to_json(self) -> dict[str, Any]:
        """``{"architecture", "convention", "pooling", "layers"}`` (JSON-serialisable)."""
        return {
            "architecture": self.architecture,
            "convention": self.convention,
            "pooling": self.pooling,
            "layers": list(self.layers),
        }

    def extra_repr(self) -> str:
        return self.description


def build_encoder(
    architecture: Architecture,
    state_dict: Mapping[str, Any] | None,
    convention: Convention,
    layers: Iterable[str],
    pooling: Pooling = "max",
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> VGGEncoder:
    """Build a frozen :class:`VGGEncoder` and move it to ``device`` / ``dtype``.

    Args:
        architecture: ``"vgg16"`` or ``"vgg19"``.
        state_dict: torchvision-layout weights, or ``None`` for random weights.
        convention: ``"torchvision"``, ``"caffe"`` or ``"raw"`` — what the weights expect.
        layers: names from :func:`layer_names` to return.
        pooling: ``"max"`` or ``"avg"``.
        device: target device (default: where the weights are, CPU for random weights).
        dtype: floating dtype of the parameters (default: ``torch.get_default_dtype()``).

    Returns:
        The encoder in eval mode with ``requires_grad=False`` parameters.
    """
    encoder = VGGEncoder(architecture, layers, pooling=pooling, convention=convention,
                         state_dict=state_dict)
    return encoder.to(device=device, dtype=dtype)
