"""Differentiable losses for style transfer: content, Gram style, mean/std style, total variation, shift equivariance.

All functions take and return tensors; losses return 0-dim tensors averaged over the batch.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from kornia.losses import total_variation
from torch import Tensor

__all__ = [
    "content_loss",
    "gram_matrix",
    "gram_style_loss",
    "mean_std",
    "mean_std_style_loss",
    "shift_equivariance_loss",
    "total_variation_loss",
]


_REDUCED = (torch.bfloat16, torch.float16)


def _check_features(features: Tensor, name: str = "features") -> None:
    if not isinstance(features, Tensor) or features.ndim != 4:
        got = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(f"expected {name} of shape (B, C, H, W), got {got}")


def _match(value: Tensor, target: Tensor, name: str) -> Tensor:
    """``target`` broadcast to ``value``'s shape (a target without batch or with batch 1 is shared)."""
    try:
        return target.expand_as(value)
    except RuntimeError:
        raise ValueError(
            f"{name} has shape {tuple(target.shape)}, which does not match {tuple(value.shape)}"
        ) from None


def gram_matrix(features: Tensor) -> Tensor:
    r"""Gram matrix of feature maps, normalised by the number of elements per sample.

    .. math:: G_{b,ij} = \frac{1}{C H W} \sum_{h,w} F_{b,i,h,w} F_{b,j,h,w}

    Dividing by :math:`C H W` makes the value independent of image size and layer width.
    Computed in float32 for reduced-precision features; channels-last features are read in
    place rather than copied.

    Args:
        features: :math:`(B, C, H, W)`.

    Returns:
        :math:`(B, C, C)`, symmetric.

    Example:
        >>> gram_matrix(torch.ones(1, 2, 1, 2))
        tensor([[[0.5000, 0.5000],
                 [0.5000, 0.5000]]])
    """
    _check_features(features)
    if features.requires_grad and torch.is_grad_enabled():
        return _Gram.apply(features)
    return _gram(features.float() if features.dtype in _REDUCED else features)


def _rows(features: Tensor) -> Tensor:
    """``features`` as (B, H*W, C) pixel rows: a view for channels-last tensors, else a copy."""
    b, c, h, w = features.shape
    return features.permute(0, 2, 3, 1).reshape(b, h * w, c)


def _gram(features: Tensor) -> Tensor:
    b, c, h, w = features.shape
    if features.is_contiguous(memory_format=torch.channels_last) and not features.is_contiguous():
        rows = _rows(features)
        gram = torch.bmm(rows.transpose(1, 2), rows)
    else:
        flat = features.reshape(b, c, h * w)
        gram = torch.bmm(flat, flat.transpose(1, 2))
    return gram / (c * h * w)


class _Gram(torch.autograd.Function):
    """Gram of features (bf16/fp16 ones summed and rounded in float32) with a one-product backward.

    Autograd through ``F Fᵀ`` computes the gradient as two products, one per factor, and adds them;
    since both factors are ``F``, one product with the symmetrised gradient does (about 10 % less time
    per float32 Gatys step at 512² in a probe, benchmarks/results/*-gatys-fp32-variants-probe.json). For reduced precision, autograd through ``features.float()`` would
    also keep a float32 copy of every style layer for the backward pass (at 512² the relu1_1 copy
    alone is 64 MiB); this keeps only the features the network already holds.
    """

    @staticmethod
    def forward(ctx, features: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(features)
        return _gram(features.float() if features.dtype in _REDUCED else features)

    @staticmethod
    def backward(ctx, grad_gram: Tensor) -> Tensor:  # type: ignore[override]
        (features,) = ctx.saved_tensors
        b, c, h, w = features.shape
        # G = F Fᵀ / n with F the (C, HW) channel rows, so dL/dF = (dG + dGᵀ) F / n. The gradient is
        # returned in the features' precision anyway, so the product runs in it (accumulating in
        # float32 inside the matmul) rather than through float32 copies of F and dL/dF.
        symmetric = ((grad_gram + grad_gram.transpose(1, 2)) / (c * h * w)).to(features.dtype)
        if features.is_contiguous():
            return torch.bmm(symmetric, features.reshape(b, c, h * w)).reshape(b, c, h, w)
        grad_rows = torch.bmm(_rows(features), symmetric)  # channels-last: the pixel rows are a view
        return grad_rows.reshape(b, h, w, c).permute(0, 3, 1, 2)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    r"""Mean squared error between feature maps.

    Args:
        features: :math:`(B, C, H, W)` (any shape works).
        target: same shape as ``features``, or broadcastable to it (e.g. batch 1).

    Returns:
        Scalar :math:`\operatorname{mean}((F - T)^2)`, in float32 for reduced-precision inputs.
    """
    if features.dtype in _REDUCED or target.dtype in _REDUCED:
        features, target = features.float(), target.float()
    return F.mse_loss(features, _match(features, target, "target"))


def gram_style_loss(features: Tensor, target_gram: Tensor) -> Tensor:
    """Mean squared error between the Gram matrix of ``features`` and a target Gram matrix.

    Args:
        features: :math:`(B, C, H, W)`.
        target_gram: :math:`(B, C, C)`, :math:`(1, C, C)` or :math:`(C, C)`, normalised like
            :func:`gram_matrix`.

    Returns:
        Scalar, mean over the :math:`B C^2` entries.
    """
    gram = gram_matrix(features)
    return F.mse_loss(gram, _match(gram, target_gram, "target_gram"))


def mean_std(features: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    r"""Per-channel mean and standard deviation over the spatial axes.

    The standard deviation is :math:`\sqrt{\operatorname{Var} + \varepsilon}` with the population
    (biased, divide by :math:`HW`) variance; ``eps`` keeps its gradient finite on flat maps.

    Args:
        features: :math:`(B, C, H, W)`.
        eps: added to the variance before the square root.

    Returns:
        ``(mean, std)``, each :math:`(B, C)`.
    """
    _check_features(features)
    flat = features.flatten(2)
    mean = flat.mean(dim=2)
    std = (flat.var(dim=2, unbiased=False) + eps).sqrt()
    return mean, std


def mean_std_style_loss(features: Tensor, target_mean: Tensor, target_std: Tensor,
                        eps: float = 1e-5) -> Tensor:
    """MSE of channel means plus MSE of channel standard deviations (AdaIN's style loss).

    Args:
        features: :math:`(B, C, H, W)`.
        target_mean: :math:`(B, C)`, :math:`(1, C)` or :math:`(C,)`, from :func:`mean_std`.
        target_std: same shapes as ``target_mean``, from :func:`mean_std` with the same ``eps``.
        eps: passed to :func:`mean_std`.

    Returns:
        Scalar.
    """
    mean, std = mean_std(features, eps)
    return (F.mse_loss(mean, _match(mean, target_mean, "target_mean"))
            + F.mse_loss(std, _match(std, target_std, "target_std")))


def total_variation_loss(image: Tensor) -> Tensor:
    r"""Anisotropic L1 total variation, normalised by the number of pixel values.

    .. math:: \frac{1}{B C H W} \sum_{b,c} \Big( \sum |I_{h+1,w} - I_{h,w}|
              + \sum |I_{h,w+1} - I_{h,w}| \Big)

    Absolute (not squared) differences, summed by :func:`kornia.losses.total_variation`.

    Args:
        image: :math:`(B, C, H, W)`.

    Returns:
        Scalar; 0 for a constant image.

    Example:
        >>> total_variation_loss(torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]]))
        tensor(0.5000)
    """
    _check_features(image, "image")
    return total_variation(image, reduction="sum").sum() / image.numel()


def shift_equivariance_loss(network: Callable[[Tensor], Tensor], inputs: Tensor, outputs: Tensor,
                            margin: int = 16, scale: float = 255.0) -> Tensor:
    """How much a network's output is locked to its pixel grid rather than to the picture.

    ``network`` is run on ``inputs`` shifted by (dy, dx) (each 0–3 from torch's generator, not both 0: not a
    multiple of a ×4 stride) and compared, as a mean squared difference times ``scale``², with ``outputs``
    (its output for the unshifted inputs, same size) shifted alike; ``margin`` pixels at each border are
    left out (padding differs there, at most a quarter of the smaller side). A network with stride-2 stages
    can paint a pattern that stays with its grid when the picture moves; such a pattern costs here, a texture
    that follows the picture does not.

    Args:
        network: (B, C, H', W') → (B, C', H', W') for any size.
        inputs: :math:`(B, C, H, W)`; outputs: :math:`(B, C', H, W)`, ``network(inputs)``.
    """
    dy, dx = divmod(int(torch.randint(1, 16, ())), 4)
    moved = network(inputs[..., dy:, dx:])
    # A network that rounds sizes down to its stride (AdaIN's decoder: to 8) may return less than it was given.
    reference = outputs[..., dy:dy + moved.shape[-2], dx:dx + moved.shape[-1]]
    moved = moved[..., :reference.shape[-2], :reference.shape[-1]]
    margin = min(margin, (min(moved.shape[-2:]) - 4) // 4)
    inner = (..., slice(margin, moved.shape[-2] - margin), slice(margin, moved.shape[-1] - margin))
    return F.mse_loss(moved[inner].float() * scale, reference[inner].float() * scale)
