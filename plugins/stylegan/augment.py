"""Differentiable augmentation of the discriminator's inputs, for training on a few hundred images.

Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training" (NeurIPS 2020): the same kind of
random transform is applied to every image the discriminator sees, real or generated, in its own update
and in the generator's, so the discriminator cannot memorise the few real images and the generator still
gets gradients through the transform. Parameters are drawn per image from torch's generator (saved in
training checkpoints, so a resumed run draws the same ones). Images are (B, 3, H, W) in −1..1.

* ``color``: brightness + U(−0.5, 0.5), saturation × U(0, 2), contrast × U(0.5, 1.5);
* ``translation``: an integer shift of up to 1/8 of the size in x and y, the uncovered border zero;
* ``cutout``: one square of half the size, at a random place, set to zero.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

TRANSLATION = 1 / 8
CUTOUT = 1 / 2


def color(x: Tensor) -> Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x: Tensor, ratio: float = TRANSLATION) -> Tensor:
    b, c, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] + dy  # the source row of each output pixel
    cols = torch.arange(w, device=x.device)[None, None, :] + dx
    inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).to(x.dtype)
    index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).reshape(b, 1, h * w).expand(b, c, h * w)
    return x.reshape(b, c, h * w).gather(2, index).reshape(b, c, h, w) * inside[:, None]


def cutout(x: Tensor, ratio: float = CUTOUT) -> Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + 1 - ch % 2, (b, 1, 1), device=x.device)  # centres; the square may overhang
    cx = torch.randint(0, w + 1 - cw % 2, (b, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    hole = (rows >= cy - ch // 2) & (rows < cy - ch // 2 + ch) & (cols >= cx - cw // 2) & (cols < cx - cw // 2 + cw)
    return x * (~hole)[:, None].to(x.dtype)


OPERATIONS = {"color": color, "translation": translation, "cutout": cutout}


def augment(x: Tensor, policy: Sequence[str]) -> Tensor:
    """``x`` through the operations named in ``policy``, in the order color, translation, cutout."""
    for name in OPERATIONS:
        if name in policy:
            x = OPERATIONS[name](x)
    return x
