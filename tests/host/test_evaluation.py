"""The periodic-artefact measure ``peak`` (plugin_host.evaluation.periodic_peak)."""
from __future__ import annotations

import math

import pytest
import torch

from plugin_host.evaluation import periodic_peak


def pink_noise(side: int, seed: int = 0) -> torch.Tensor:
    """A 1/f random image: the smooth, peak-free spectrum of natural pictures."""
    generator = torch.Generator().manual_seed(seed)
    spectrum = torch.fft.fft2(torch.randn(side, side, generator=generator, dtype=torch.float64))
    frequencies = torch.fft.fftfreq(side, dtype=torch.float64)
    radius = torch.sqrt(frequencies[:, None] ** 2 + frequencies[None, :] ** 2).clamp(min=1 / side)
    image = torch.fft.ifft2(spectrum / radius).real
    image = (image - image.mean()) / image.std() * 0.15 + 0.5
    return image.clamp(0, 1).float().expand(3, side, side).clone()


def with_grid(image: torch.Tensor, period: int, amplitude: float) -> torch.Tensor:
    """``image`` plus a faint diagonal hatching of ``period`` pixels."""
    _, height, width = image.shape
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    hatching = amplitude * torch.sin(2 * math.pi * (x + y) / period)
    return (image + hatching).clamp(0, 1)


def test_smooth_spectrum_scores_like_a_photo():
    assert 2.0 < periodic_peak(pink_noise(256)) < 3.5


@pytest.mark.parametrize("period", [4, 6, 8])
def test_faint_hatching_raises_the_peak(period):
    clean = pink_noise(256, seed=1)
    hatched = with_grid(clean, period, amplitude=0.03)  # about 8 grey levels
    assert periodic_peak(hatched) > periodic_peak(clean) + 2.0
    assert periodic_peak(hatched) > 5.0


def test_layout_frequencies_are_ignored():
    # A period of 32 px is 1/32 cycle per pixel: the picture's layout, not an artefact.
    clean = pink_noise(256, seed=2)
    assert periodic_peak(with_grid(clean, 32, amplitude=0.1)) < 3.5


def test_only_the_centre_square_is_measured():
    picture = pink_noise(512, seed=3)
    wide = torch.cat([with_grid(pink_noise(512, seed=4), 4, 0.05), picture,
                      with_grid(pink_noise(512, seed=5), 4, 0.05)], dim=2)  # hatching left and right
    assert periodic_peak(wide) == pytest.approx(periodic_peak(picture))


def test_gray_and_batch_of_one_are_accepted():
    image = pink_noise(64, seed=6)
    assert periodic_peak(image[:1]) == pytest.approx(periodic_peak(image))
    assert periodic_peak(image[None]) == pytest.approx(periodic_peak(image))
    with pytest.raises(ValueError, match="batch of 2"):
        periodic_peak(torch.stack([image, image]))


# --- feature measures, with the real default encoder on the bundled samples ---------------------

from plugin_host.encoders.vgg import build_encoder  # noqa: E402
from plugin_host.evaluation import (CONTENT_LAYER, DESCRIPTOR_LAYERS, content_ratio, descriptor_distance,  # noqa: E402
                                    nearest_collection, style_descriptor)
from plugin_host.imaging.io import load_image  # noqa: E402
from plugin_host.imaging.resize import resize_max_side  # noqa: E402


@pytest.fixture(scope="module")
def encoder(default_encoder):
    state = torch.load(default_encoder, map_location="cpu", weights_only=True)
    return build_encoder("vgg16", state, "caffe", (*DESCRIPTOR_LAYERS, CONTENT_LAYER))


@pytest.fixture(scope="module")
def samples(samples_dir):
    return {path.stem: resize_max_side(load_image(path).rgb, 160) for path in samples_dir.glob("*.jpg")}


def test_content_ratio_is_small_for_the_photo_and_one_for_the_painting(encoder, samples):
    photo, painting = samples["lighthouse"], samples["starry_night"]
    slightly_changed = (photo + 0.03 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert content_ratio(encoder, slightly_changed, photo, painting) < 0.2
    assert content_ratio(encoder, painting, photo, painting) == pytest.approx(1.0, rel=1e-3)
    assert content_ratio(encoder, samples["parrots"], photo, painting) > 0.5  # another photo is not this content


def test_a_picture_lands_in_the_collection_of_its_own_kind(encoder, samples):
    # Two "collections": crops of each painting; a new crop of a painting lands with its own.
    def crops(image, corners):
        h, w = image.shape[-2:]
        return [image[..., int(y * h):int(y * h) + h // 2, int(x * w):int(x * w) + w // 2] for y, x in corners]

    collections = {name: [style_descriptor(encoder, crop) for crop in crops(samples[name], [(0, 0), (0, .5), (.5, 0)])]
                   for name in ("starry_night", "great_wave")}
    for name in collections:
        held_out = style_descriptor(encoder, crops(samples[name], [(.5, .5)])[0])
        assert nearest_collection(held_out, collections) == name


def test_descriptor_distance_is_zero_to_itself_and_symmetric(encoder, samples):
    a, b = style_descriptor(encoder, samples["lighthouse"]), style_descriptor(encoder, samples["great_wave"])
    assert descriptor_distance(a, a) == 0
    assert descriptor_distance(a, b) == pytest.approx(descriptor_distance(b, a)) and descriptor_distance(a, b) > 0
    assert set(a) == set(DESCRIPTOR_LAYERS) and a["relu1_1"].shape == (128,)
    with pytest.raises(ValueError):
        nearest_collection(a, {})
