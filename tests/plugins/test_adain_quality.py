"""The shipped AdaIN decoder on images not used in its training (the shared test images)."""
import pytest
import torch

import plugin_host
from plugin_host.imaging.io import load_image
from plugin_host.imaging.resize import resize_max_side

pytestmark = [pytest.mark.shared, pytest.mark.slow]


@pytest.fixture(scope="module")
def adain(shared_dir):
    return plugin_host.load_method("adain", device="cpu", seed=0)


def picture(shared_dir, folder, name, size=192):
    return resize_max_side(load_image(shared_dir / "images" / folder / name).rgb, size)


@pytest.mark.parametrize("content_name, style_name", [("golden_gate.jpg", "candy.jpg"),
                                                      ("sailboat.jpg", "picasso_selfport1907.jpg")])
def test_full_style_moves_statistics_toward_the_style(adain, shared_dir, content_name, style_name):
    from plugin_host_adain.evaluate import style_distance
    from plugin_host_adain.models import load_models

    content = picture(shared_dir, "content", content_name)
    style = picture(shared_dir, "style", style_name, 256)
    out = adain(content, style=style, max_size=0)
    encoder, _ = load_models(adain.session.context, "adain-decoder-vgg16-hed")
    assert style_distance(encoder, out, style) < MAX_STYLE_RATIO * style_distance(encoder, content, style)


def test_strength_zero_reconstructs_the_content(adain, shared_dir):
    content = picture(shared_dir, "content", "tubingen.jpg")
    recon = adain(content, style=content, strength=0.0, max_size=0)
    psnr = 10 * torch.log10(1 / (recon - content).square().mean())
    assert psnr > MIN_RECONSTRUCTION_PSNR, float(psnr)


@pytest.fixture(scope="module")
def unseen_pairs(shared_dir):
    """The ten test photos (no training photo among them) at 320 px, each with one of the six test paintings
    (none used in training) in turn."""
    photos = sorted((shared_dir / "images" / "content").glob("*.jpg"))
    paintings = sorted(path.name for path in (shared_dir / "images" / "style").glob("*.jpg")
                       if path.name in UNSEEN_PAINTINGS)
    assert len(photos) >= 10 and len(paintings) == len(UNSEEN_PAINTINGS)
    return [(picture(shared_dir, "content", photo.name, 320), picture(shared_dir, "style", paintings[i % 6], 512))
            for i, photo in enumerate(photos)]


def test_the_bars_of_the_trained_quality_issue_on_unseen_pictures(adain, unseen_pairs):
    """Strength 0 gives the photo back (median PSNR at least 18 dB); at strength 1 no pattern locks to the pixel
    grid (``peak`` at most 3.5 on 90 % of the outputs; photos reach 2.5-3.6) and the content is kept (relu4_2
    distance to the photo at most 0.45 of the painting's, as a median)."""
    import statistics

    from plugin_host.evaluation import CONTENT_LAYER, content_ratio, periodic_peak

    encoder = adain.session.context.load_encoder("vgg16-caffe-hed", (CONTENT_LAYER,))
    psnrs, peaks, ratios = [], [], []
    for photo, painting in unseen_pairs:
        recon = adain(photo, style=photo, strength=0.0, max_size=0)
        psnrs.append(float(10 * torch.log10(1 / (recon - photo).square().mean())))
        out = adain(photo, style=painting, max_size=0)
        peaks.append(periodic_peak(out))
        ratios.append(content_ratio(encoder, out, photo, painting))
    assert statistics.median(psnrs) >= 18.0, [round(p, 1) for p in psnrs]
    assert sum(peak <= 3.5 for peak in peaks) >= 0.9 * len(peaks), [round(p, 2) for p in peaks]
    assert statistics.median(ratios) <= 0.45, [round(r, 2) for r in ratios]


#: The paintings of docs/measure_style_models.py: in images/style, none in the training collections.
UNSEEN_PAINTINGS = ("candy.jpg", "mosaic.jpg", "picasso_selfport1907.jpg", "rain-princess.jpg", "seated-nude.jpg",
                    "the_resevoir_at_poitiers.jpg")
# The issue's bars. Measured with the shipped decoder (1633 CPU steps, both paths): over the 60 pairs of
# docs/measure_style_models.py, style ratio below 1 on 59 (median 0.41), PSNR median 22.8 dB; here the two pairs
# measure 0.66 and 0.39, tubingen.jpg at 192 px 23.6 dB, and the ten unseen pairs PSNR median 22.8 dB, peak within
# 3.5 on 9 of 10, content ratio median 0.41. (The decoder before it: ratios 0.20 and 0.14 but 10.9 dB, the
# photo's content lost.)
MAX_STYLE_RATIO = 1.0
MIN_RECONSTRUCTION_PSNR = 18.0
