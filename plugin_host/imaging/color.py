"""Colour preservation: keep the content's colours in a stylised image, or recolour the style.

All images are (B, 3, H, W) RGB in 0..1. ``content``/``target`` may have batch size 1 (shared
by the whole batch) and, where noted, another spatial size.
"""
from __future__ import annotations

import kornia.color
import torch

from .._shared_params import COLOR_MODES  # declared with the preserve_colors parameter
from ._checks import check_image
from .resize import resize_to

LUMINANCE_SPACES = ("ycbcr", "lab")


def rgb_to_ycbcr(image: torch.Tensor) -> torch.Tensor:
    """RGB (B, 3, H, W) in 0..1 to full-range YCbCr (B, 3, H, W) in 0..1 (kornia's convention)."""
    check_image(image, channels=3)
    return kornia.color.rgb_to_ycbcr(image)


def ycbcr_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr`; the result is clamped to 0..1 (out-of-gamut colours)."""
    check_image(image, channels=3)
    return kornia.color.ycbcr_to_rgb(image)


def _like(reference: torch.Tensor, other: torch.Tensor, resize: bool) -> torch.Tensor:
    """``other`` on ``reference``'s device/dtype, its batch broadcast, optionally resized."""
    other = other.to(reference)
    if resize and other.shape[-2:] != reference.shape[-2:]:
        other = resize_to(other, tuple(reference.shape[-2:]))
    if other.shape[0] == 1 and reference.shape[0] > 1:
        other = other.expand(reference.shape[0], -1, -1, -1)
    if other.shape[0] != reference.shape[0]:
        raise ValueError(f"batch size: expected 1 or {reference.shape[0]}, got {other.shape[0]}")
    return other


def preserve_luminance(stylised: torch.Tensor, content: torch.Tensor, space: str = "ycbcr") -> torch.Tensor:
    """Luminance of ``stylised`` with the chroma of ``content`` (Gatys et al. 2017, "luminance only").

    ``space="ycbcr"`` keeps Y of stylised and Cb, Cr of content; ``"lab"`` keeps L of stylised and
    a, b of content. ``content`` is resized to ``stylised``'s size if they differ. Returns
    (B, 3, H, W) clamped to 0..1.
    """
    check_image(stylised, "stylised", channels=3)
    check_image(content, "content", channels=3)
    if space not in LUMINANCE_SPACES:
        raise ValueError(f"space: expected one of {', '.join(LUMINANCE_SPACES)}, got {space!r}")
    content = _like(stylised, content, resize=True)
    if space == "ycbcr":
        mixed = torch.cat([rgb_to_ycbcr(stylised)[:, :1], rgb_to_ycbcr(content)[:, 1:]], dim=1)
        return ycbcr_to_rgb(mixed).clamp(0.0, 1.0)
    lab = torch.cat([kornia.color.rgb_to_lab(stylised)[:, :1], kornia.color.rgb_to_lab(content)[:, 1:]], dim=1)
    return kornia.color.lab_to_rgb(lab, clip=True).clamp(0.0, 1.0)


def _sqrtm(cov: torch.Tensor, inverse: bool = False, eps: float = 0.0) -> torch.Tensor:
    """Symmetric square root (or inverse square root) of (B, 3, 3) covariances, via eigh."""
    values, vectors = torch.linalg.eigh(cov)
    values = values.clamp_min(0.0) + eps
    root = values.rsqrt() if inverse else values.sqrt()
    return vectors @ torch.diag_embed(root) @ vectors.transpose(-2, -1)


def _stats(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (B, 3, 1) and population covariance (B, 3, 3, float64, on the CPU) of (B, 3, N) pixels.

    The 3×3 covariances go to the CPU: their square roots need float64 ``eigh``, which MPS lacks and
    which costs CUDA a synchronisation anyway.
    """
    mean = pixels.mean(-1, keepdim=True)
    centred = pixels - mean
    return mean, (centred @ centred.transpose(-2, -1)).cpu().double() / pixels.shape[-1]


def match_color_statistics(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5,
                           clamp: bool = True) -> torch.Tensor:
    """Recolour ``source`` so its RGB mean and covariance equal ``target``'s.

    The linear map ``x -> A (x - mu_s) + mu_t`` with ``A = C_t^(1/2) C_s^(-1/2)`` (symmetric,
    "PCA" square roots; Gatys et al. 2017, colour histogram matching). ``eps`` regularises
    ``C_s`` for flat images. ``target`` may have another size. Returns (B, 3, H, W) of source's
    size, clamped to 0..1 unless ``clamp=False`` (clamping slightly changes the statistics).
    """
    check_image(source, "source", channels=3)
    check_image(target, "target", channels=3)
    if not eps >= 0:
        raise ValueError(f"eps: expected a number >= 0, got {eps!r}")
    target = _like(source, target, resize=False)
    pixels = source.flatten(2)
    mean_s, cov_s = _stats(pixels)
    mean_t, cov_t = _stats(target.flatten(2))
    transform = (_sqrtm(cov_t) @ _sqrtm(cov_s, inverse=True, eps=eps)).to(source.device, source.dtype)
    out = (transform @ (pixels - mean_s) + mean_t).view_as(source)
    return out.clamp(0.0, 1.0) if clamp else out


def match_histograms(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Exact per-channel histogram matching: ``source``'s values replaced, rank for rank, by
    ``target``'s (target quantiles interpolated where the pixel counts differ).

    ``source`` (B, C, H, W), ``target`` (B or 1, C, H', W'). Ties in ``source`` get distinct
    target values, so the output's sorted values equal the target's when sizes match.
    """
    check_image(source, "source")
    check_image(target, "target", channels=source.shape[1])
    target = _like(source, target, resize=False)
    values = source.flatten(2)
    reference = target.flatten(2).sort(dim=-1).values
    count, target_count = values.shape[-1], reference.shape[-1]
    if target_count != count:
        # float64 positions (exact up to 2^53 pixels) on the CPU, where every backend has float64
        position = torch.linspace(0, target_count - 1, count, dtype=torch.float64)
        low = position.floor().long().clamp(max=target_count - 1)
        high = (low + 1).clamp(max=target_count - 1)
        weight = (position - low).to(source.device, source.dtype)
        low, high = low.to(source.device), high.to(source.device)
        reference = torch.lerp(reference[..., low], reference[..., high], weight)
    order = values.argsort(dim=-1, stable=True)
    return torch.empty_like(values).scatter_(-1, order, reference).view_as(source)


def preserve_colors(stylised: torch.Tensor, content: torch.Tensor, mode: str) -> torch.Tensor:
    """Post-process ``stylised`` to keep ``content``'s colours; ``mode`` is one of :data:`COLOR_MODES`.

    ``"none"`` returns ``stylised``; ``"luminance"`` is :func:`preserve_luminance`;
    ``"histogram"`` is :func:`match_color_statistics` of ``stylised`` onto ``content``.
    """
    if mode not in COLOR_MODES:
        raise ValueError(f"mode: expected one of {', '.join(COLOR_MODES)}, got {mode!r}")
    check_image(stylised, "stylised", channels=3)
    check_image(content, "content", channels=3)
    if mode == "none":
        return stylised
    if mode == "luminance":
        return preserve_luminance(stylised, content)
    return match_color_statistics(stylised, content)
