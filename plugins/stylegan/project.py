"""Projection (GAN inversion): the W+ styles and noise maps with which the generator redraws a picture.

As in Karras et al. 2020 (§5) and Abdal et al., "Image2StyleGAN" (ICCV 2019): start every row of W+ at the
average style, then optimise W+ and the per-layer noise maps with Adam to minimise a perceptual distance
(VGG features, each pixel's feature vector scaled to unit length, squared differences summed over
channels and averaged over pixels and layers) plus a pixel MSE. The learning rate ramps up over the first
5 % of the steps and down (cosine) over the last 25 %; Gaussian noise of 5 % of the styles' spread is
added to W+ early on and fades out by 75 %, to explore; the noise maps are kept at zero mean and unit
variance and free of structure by penalising their autocorrelation at every scale down to 8×8, so they
cannot take over the picture's content.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from .net import Generator

#: VGG layers of the perceptual distance.
PERCEPTUAL_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
RAMP_UP, RAMP_DOWN, STYLE_NOISE, STYLE_NOISE_UNTIL = 0.05, 0.25, 0.05, 0.75
#: Side the pictures are resized to for the VGG features (the generator's resolution, within these bounds).
VGG_SIDES = (32, 256)


@dataclass
class Projection:
    """W+ (1, n_latent, w_dim), one noise map per layer (1, 1, r, r) and the loss at each step."""

    w_plus: Tensor
    noise: list[Tensor]
    losses: list[float] = field(default_factory=list)


def unit_features(features: dict[str, Tensor]) -> dict[str, Tensor]:
    """Every pixel's feature vector divided by its length (float32)."""
    return {k: v.float() / (v.float().square().sum(1, keepdim=True).sqrt() + 1e-8) for k, v in features.items()}


def perceptual_distance(features: dict[str, Tensor], target: dict[str, Tensor]) -> Tensor:
    if not target:
        return torch.zeros(())
    return sum((features[k] - target[k]).square().sum(1).mean() for k in target) / len(target)


def noise_regularisation(maps: list[Tensor]) -> Tensor:
    """Squared autocorrelation of each map at a one-pixel shift in x and y, at every scale down to 8×8."""
    total = maps[0].new_zeros(())
    for noise in maps:
        while True:
            total = total + (noise * noise.roll(1, dims=3)).mean().square() + (noise * noise.roll(1, dims=2)).mean().square()
            if noise.shape[-1] <= 8:
                break
            noise = F.avg_pool2d(noise, 2)
    return total


def learning_rate(step: int, steps: int, peak: float) -> float:
    t = step / steps
    down = 0.5 - 0.5 * math.cos(min(1.0, (1 - t) / RAMP_DOWN) * math.pi)
    return peak * down * min(1.0, t / RAMP_UP)


def vgg_side(resolution: int) -> int:
    return min(max(resolution, VGG_SIDES[0]), VGG_SIDES[1])


def project(generator: Generator, target: Tensor, encoder: Callable[[Tensor], dict[str, Tensor]], *,
            steps: int, labels: Tensor | None = None, lr: float = 0.1, perceptual_weight: float = 1.0,
            pixel_weight: float = 1.0, noise_regularize: float = 1e5, start: Tensor | None = None,
            rng: torch.Generator | None = None, on_step: Callable[[int, float], None] | None = None) -> Projection:
    """Project ``target`` (1, 3, R, R) in 0..1, R the generator's resolution.

    ``encoder`` maps a (1, 3, h, w) 0..1 picture to features by layer name (:data:`PERCEPTUAL_LAYERS`);
    ``start`` is the w (1, w_dim) to start from (default: the average style); ``rng`` (a CPU generator)
    draws the starting noise maps and the exploration noise, so a projection is repeatable. ``on_step``
    is called after each step with its index and loss (to report progress and to cancel, by raising).
    """
    device = target.device
    rng = rng or torch.Generator().manual_seed(0)
    side = vgg_side(generator.config.resolution)

    def features(picture: Tensor) -> dict[str, Tensor]:
        if not perceptual_weight:
            return {}
        if picture.shape[-1] != side:
            picture = F.interpolate(picture, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        return unit_features(encoder(picture))

    with torch.no_grad():
        wanted = features(target)
        z = torch.randn(2048, generator.config.z_dim, generator=rng).to(device)
        samples = generator.mapping(z, None if labels is None else labels.expand(len(z))).float()
        spread = float((samples - samples.mean(0)).square().sum(1).mean().sqrt())
        start = generator.average(labels, 1).float() if start is None else start.float()
    w_plus = start[:, None].repeat(1, generator.n_latent, 1).clone().requires_grad_(True)
    noise = [torch.randn(1, 1, layer.resolution, layer.resolution, generator=rng).to(device).requires_grad_(True)
             for layer in generator.synthesis.layers]
    optimizer = torch.optim.Adam([w_plus, *noise], lr=lr, betas=(0.9, 0.999))
    losses: list[float] = []
    with torch.enable_grad():  # also when the caller computes under no_grad (a script using the Python API)
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, steps, lr)
            explore = spread * STYLE_NOISE * max(0.0, 1 - step / (steps * STYLE_NOISE_UNTIL)) ** 2
            jitter = torch.randn(w_plus.shape, generator=rng).to(device) * explore
            picture = (generator.synthesis(w_plus + jitter, noise).float() + 1) / 2
            distance = perceptual_weight * perceptual_distance(features(picture), wanted) \
                + pixel_weight * F.mse_loss(picture, target)
            loss = distance + noise_regularize * noise_regularisation(noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for n in noise:
                    n.sub_(n.mean()).div_(n.std() + 1e-8)
            losses.append(float(distance.detach()))
            if on_step is not None:
                on_step(step, losses[-1])
    return Projection(w_plus.detach(), [n.detach() for n in noise], losses)


def reconstruction_distance(generator: Generator, projection: Projection, target: Tensor,
                            encoder: Callable[[Tensor], dict[str, Tensor]], perceptual_weight: float = 1.0,
                            pixel_weight: float = 1.0) -> float:
    """The projection's loss without exploration noise (what the last step converged to)."""
    side = vgg_side(generator.config.resolution)
    with torch.no_grad():
        picture = (generator.synthesis(projection.w_plus, projection.noise).float() + 1) / 2

        def features(image: Tensor) -> dict[str, Tensor]:
            return unit_features(encoder(F.interpolate(image, size=(side, side), mode="bilinear",
                                                       align_corners=False, antialias=True)))

        return float(perceptual_weight * perceptual_distance(features(picture), features(target))
                     + pixel_weight * F.mse_loss(picture, target))
