"""Measures of a result's quality shared by methods, tests and contact sheets.

* :func:`periodic_peak` finds periodic artefacts (grids, hatching, checkerboards): they are narrow
  peaks in an image's power spectrum, while photos and paintings have smooth spectra.
* :func:`content_ratio` says how much of a photo's content a stylised result kept.
* :func:`style_descriptor`, :func:`descriptor_distance` and :func:`nearest_collection` classify a
  picture by the painting collection whose feature statistics it is closest to.

The feature measures take an encoder: a module mapping an RGB batch in 0..1 to ``{layer: features}``,
such as :class:`plugin_host.encoders.VGGEncoder` built with the layers named here.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Encoder = Callable[[Tensor], Mapping[str, Tensor]]

#: Layer whose features stand for a picture's content (Gatys et al.'s content layer).
CONTENT_LAYER = "relu4_2"
#: Layers whose channel statistics describe a picture's style for :func:`style_descriptor`.
DESCRIPTOR_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
#: Long side (pixels) a picture is resized to before :func:`style_descriptor` reads it.
DESCRIPTOR_SIZE = 128

#: Largest square (pixels) of an image's centre that :func:`periodic_peak` looks at.
PEAK_CROP = 512
#: Spatial frequencies (cycles per pixel) at or below this are left out: a picture's layout lives there.
PEAK_MIN_FREQUENCY = 1 / 16
#: Side of the neighbourhood (in frequency bins) whose median is the spectrum's local level.
PEAK_NEIGHBOURHOOD = 9


def _grayscale(image: Tensor) -> Tensor:
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"periodic_peak takes one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected an image of shape (3, H, W) or (1, H, W), got {tuple(image.shape)}")
    image = image.double()
    if image.shape[0] == 1:
        return image[0]
    r, g, b = image
    return 0.299 * r + 0.587 * g + 0.114 * b


def _local_median(values: Tensor, size: int) -> Tensor:
    """Median of each ``size`` × ``size`` neighbourhood (edges replicated)."""
    half = size // 2
    padded = F.pad(values[None, None], (half, half, half, half), mode="replicate")[0, 0]
    windows = padded.unfold(0, size, 1).unfold(1, size, 1)
    return windows.reshape(*values.shape, size * size).median(dim=-1).values


def periodic_peak(image: Tensor) -> float:
    """How strongly an image's spectrum peaks at one frequency: the periodic-artefact measure ``peak``.

    The grayscale image's centre square (side ≤ :data:`PEAK_CROP`, no resampling) is multiplied by a
    2-D Hann window; its log power spectrum minus the spectrum's local median over
    :data:`PEAK_NEIGHBOURHOOD` × :data:`PEAK_NEIGHBOURHOOD` frequency bins is taken at every frequency
    above :data:`PEAK_MIN_FREQUENCY` cycles per pixel, and the largest value is returned.
    Photos and paintings score about 2.6–3.4; a regular grid or hatching scores well above 3.5.

    Args:
        image: RGB or gray in 0..1, ``(3, H, W)``, ``(1, H, W)`` or a batch of one.

    Returns:
        The peak height in natural-log units of power.
    """
    gray = _grayscale(image.detach().cpu())
    height, width = gray.shape
    side = min(height, width, PEAK_CROP)
    top, left = (height - side) // 2, (width - side) // 2
    square = gray[top:top + side, left:left + side]
    window = torch.hann_window(side, periodic=False, dtype=torch.float64)
    square = (square - square.mean()) * window[:, None] * window[None, :]
    power = torch.fft.fftshift(torch.fft.fft2(square)).abs().square()
    log_power = torch.log(power + 1e-12)
    excess = log_power - _local_median(log_power, PEAK_NEIGHBOURHOOD)
    frequencies = torch.fft.fftshift(torch.fft.fftfreq(side, dtype=torch.float64))
    radius = torch.sqrt(frequencies[:, None] ** 2 + frequencies[None, :] ** 2)
    return float(excess[radius > PEAK_MIN_FREQUENCY].max())


def _batch(image: Tensor) -> Tensor:
    return image if image.ndim == 4 else image[None]


def content_distance(encoder: Encoder, image: Tensor, reference: Tensor, layer: str = CONTENT_LAYER) -> float:
    """Mean squared difference of ``layer`` features; ``reference`` is resized to ``image``'s size first."""
    image, reference = _batch(image), _batch(reference)
    if reference.shape[-2:] != image.shape[-2:]:
        reference = F.interpolate(reference, size=image.shape[-2:], mode="bilinear", align_corners=False,
                                  antialias=True)
    with torch.no_grad():
        a, b = encoder(image)[layer].float(), encoder(reference)[layer].float()
    return float((a - b).square().mean())


def content_ratio(encoder: Encoder, result: Tensor, photo: Tensor, painting: Tensor,
                  layer: str = CONTENT_LAYER) -> float:
    """How far a stylised ``result`` strayed from its ``photo``, relative to how far the ``painting`` is from it.

    ``content_distance(result, photo) / content_distance(painting, photo)``: 0 is the photo's content
    kept exactly, 1 is as far from it as the painting. The encoder must return ``layer``.
    """
    return content_distance(encoder, result, photo, layer) / content_distance(encoder, painting, photo, layer)


def style_descriptor(encoder: Encoder, image: Tensor, layers: Sequence[str] = DESCRIPTOR_LAYERS,
                     size: int = DESCRIPTOR_SIZE) -> dict[str, Tensor]:
    """Per-channel mean and standard deviation of each layer, ``log(1 + value)``, of ``image`` resized to
    ``size`` on its long side: ``{layer: (2C,)}``."""
    image = _batch(image)
    scale = size / max(image.shape[-2:])
    shape = [max(1, round(side * scale)) for side in image.shape[-2:]]
    image = F.interpolate(image, size=shape, mode="bilinear", align_corners=False, antialias=scale < 1)
    with torch.no_grad():
        features = encoder(image)
    descriptor = {}
    for layer in layers:
        flat = features[layer].float().flatten(2)[0]
        stats = torch.cat([flat.mean(dim=1), flat.std(dim=1, unbiased=False)])
        descriptor[layer] = torch.log1p(stats.clamp(min=0))
    return descriptor


def descriptor_distance(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """Sum over layers of the mean squared difference of two :func:`style_descriptor` results."""
    return float(sum((a[layer] - b[layer]).square().mean() for layer in a))


def nearest_collection(descriptor: Mapping[str, Tensor],
                       collections: Mapping[str, Sequence[Mapping[str, Tensor]]]) -> str:
    """The collection whose paintings are closest to ``descriptor``: the smallest median
    :func:`descriptor_distance` over each collection's painting descriptors."""
    if not collections or not all(collections.values()):
        raise ValueError("nearest_collection needs at least one collection, each with a painting")
    distances = {name: statistics.median(descriptor_distance(descriptor, painting) for painting in paintings)
                 for name, paintings in collections.items()}
    return min(distances, key=distances.__getitem__)


__all__ = ["CONTENT_LAYER", "DESCRIPTOR_LAYERS", "DESCRIPTOR_SIZE", "PEAK_CROP", "PEAK_MIN_FREQUENCY",
           "PEAK_NEIGHBOURHOOD", "content_distance", "content_ratio", "descriptor_distance", "nearest_collection",
           "periodic_peak", "style_descriptor"]
