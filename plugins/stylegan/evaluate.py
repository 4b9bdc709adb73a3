"""How close a generator's pictures are to the training pictures: KID on the default encoder's pooled features.

Features: the default encoder (``vgg16-caffe-hed``, :data:`plugin_host.sdk.DEFAULT_ENCODER`) at
:data:`FEATURE_SIDE` px, its ``relu4_3`` and ``relu5_3`` maps each averaged over the picture, divided by
its root mean square (so every number is about 1, as Inception's pooled features are, whatever the
encoder's input scale) and joined: 1024 numbers per picture. FID's Inception network cannot be fetched here, and FID is rank-deficient with
50 paintings per class; the kernel inception distance (Bińkowski et al., ICLR 2018: the squared MMD with a
cubic polynomial kernel, averaged over random subsets) is unbiased for small sets. It is computed by
torchmetrics' ``KernelInceptionDistance``, given these features as its feature extractor, rather than by
hand. :func:`nearest_real_distance` is the memorisation check: how far each generated picture is from its
nearest training picture, in the same features; :func:`relative_spread`, how varied the generated pictures are.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FEATURE_LAYERS = ("relu4_3", "relu5_3")
FEATURE_SIDE = 128


class PooledFeatures(nn.Module):
    """(B, 3, H, W) in 0..1 → (B, 1024): :data:`FEATURE_LAYERS` of ``encoder``, averaged over the picture."""

    def __init__(self, encoder: nn.Module, side: int = FEATURE_SIDE) -> None:
        super().__init__()
        self.encoder, self.side = encoder, side

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        if images.shape[-2:] != (self.side, self.side):
            images = F.interpolate(images.float(), size=(self.side, self.side), mode="bilinear",
                                   align_corners=False, antialias=True)
        # pictures come from wherever they were made (training pictures from the CPU): features on the encoder's device
        features = self.encoder(images.to(next(self.encoder.parameters()).device))
        pooled = [features[name].float().mean((2, 3)) for name in FEATURE_LAYERS]
        return torch.cat([p / p.square().mean(1, keepdim=True).sqrt().clamp_min(1e-8) for p in pooled], dim=1)


def kernel_distance(real: Iterable[Tensor], fake: Iterable[Tensor], features: nn.Module, *, subset_size: int = 50,
                    subsets: int = 100, seed: int = 0) -> tuple[float, float]:
    """KID (mean and standard deviation over ``subsets`` random subsets) between two sets of pictures.

    ``real`` and ``fake`` are batches (B, 3, H, W) in 0..1; a subset has ``subset_size`` pictures of each
    (fewer when a set is smaller). The subsets are drawn from ``seed``, so the value is repeatable.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    with warnings.catch_warnings():  # that it keeps every feature in memory: a few thousand pictures at most here
        warnings.filterwarnings("ignore", message=".*will save all extracted features", category=UserWarning)
        metric = KernelInceptionDistance(feature=features, subsets=subsets, subset_size=subset_size)
    counts = [0, 0]
    for index, (batches, is_real) in enumerate(((real, True), (fake, False))):
        for batch in batches:
            metric.update(batch, real=is_real)
            counts[index] += len(batch)
    metric.subset_size = max(2, min(subset_size, *counts))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def nearest_real_distance(real: Iterable[Tensor], fake: Iterable[Tensor], features: nn.Module) -> Tensor:
    """For each fake picture, the feature distance to its nearest real one, over the real set's median
    distance between two real pictures (so 1 is "as far as two training pictures are from each other")."""
    real_features = torch.cat([features(batch) for batch in real])
    fake_features = torch.cat([features(batch) for batch in fake])
    return torch.cdist(fake_features, real_features).min(1).values / _typical_distance(real_features)


def relative_spread(real: Iterable[Tensor], fake: Iterable[Tensor], features: nn.Module) -> float:
    """How varied the fake pictures are: the median distance between two of them over the same median between
    two real ones, in the same features. About 1 for a generator that varies as the training pictures do; a
    generator that draws a few pictures over and over (mode collapse) is near 0, which KID on 50 paintings a
    collection can miss. Features pooled over the picture see colours and textures, not where things are."""
    real_features = torch.cat([features(batch) for batch in real])
    fake_features = torch.cat([features(batch) for batch in fake])
    return float(_typical_distance(fake_features) / _typical_distance(real_features))


def _typical_distance(features: Tensor) -> Tensor:
    """The median distance between two different rows of ``features``."""
    between = torch.cdist(features, features)
    return between[~torch.eye(len(features), dtype=torch.bool, device=features.device)].median()


def reference_pictures(folders: Sequence[Path], resolution: int, count: int) -> Tensor:
    """At most ``count`` training pictures of ``folders`` as the trainer sees them (short side resized to
    ``resolution``, a square crop at a position fixed per picture), (N, 3, R, R) in 0..1, the same every call."""
    from plugin_host.sdk import ImageFolder

    pictures = ImageFolder(folders, resolution, resolution)
    return torch.stack([pictures[(index, 0)] for index in range(min(count, len(pictures)))])


@torch.no_grad()
def generated_pictures(generator: nn.Module, count: int, label: int | None, *, seed: int = 0,
                       batch: int = 25) -> Iterator[Tensor]:
    """``count`` pictures of ``generator`` (class ``label``), random noise, no truncation, in batches, 0..1.

    Codes and noise come from ``seed`` alone (torch's global random state is left as it was), so two
    generators are compared on the same codes."""
    device = generator.w_avg.device
    codes = torch.randn(count, generator.config.z_dim, generator=torch.Generator().manual_seed(seed))
    for start in range(0, count, batch):
        z = codes[start:start + batch].to(device)
        labels = None if label is None else torch.full((len(z),), label, device=device, dtype=torch.long)
        noise = generator.make_noise(len(z), "random", seed=seed + 1 + start, device=device)
        images = generator.synthesis(generator.styles(z, labels), noise)
        yield ((images.float() + 1) / 2).clamp(0, 1)


def generator_kid(generator: nn.Module, references: Mapping[str, Tensor], features: nn.Module, *,
                  images: int = 200, seed: int = 0) -> dict[str, float]:
    """KID of ``generator`` against each class's reference pictures (``""``: a generator without classes),
    ``images`` generated per class; ``kid`` is the mean over the classes, ``kid_<class>`` each one."""
    classes = list(generator.config.classes)
    found: dict[str, float] = {}
    for name, real in references.items():
        label = classes.index(name) if classes else None
        fake = generated_pictures(generator, images, label, seed=seed)
        found[f"kid_{name}" if name else "kid"] = kernel_distance([real], fake, features, seed=seed)[0]
    if classes:
        found = {"kid": sum(found.values()) / len(found), **found}
    return found
