"""The Gated-GAN quality bar: the collection classifier it is judged by."""
import statistics

import pytest
import torch

from plugin_host.evaluation import descriptor_distance, style_descriptor
from plugin_host.imaging.io import load_image

pytestmark = [pytest.mark.shared, pytest.mark.slow]

COLLECTIONS = ("cezanne", "monet", "ukiyoe", "vangogh")


@pytest.fixture(scope="module")
def encoder(default_encoder):
    from plugin_host.encoders.vgg import build_encoder
    from plugin_host.evaluation import DESCRIPTOR_LAYERS

    state = torch.load(default_encoder, map_location="cpu", weights_only=True)
    return build_encoder("vgg16", state, "caffe", DESCRIPTOR_LAYERS)


def test_the_collection_classifier_places_each_painting_with_its_painter(shared_dir, encoder):
    """Leave one out: each of the 4 × 50 paintings against the collections without it. The issue measured 19 of
    24 other paintings of these painters on their own collection (79 %; 95 % interval about 58–93 %); chance is
    25 %. Van Gogh's 50 are the hardest (many land with Cézanne), so the bound is on all 200 together."""
    root = shared_dir / "datasets" / "style"
    with torch.no_grad():
        described = {name: [style_descriptor(encoder, load_image(path).rgb) for path in sorted((root / name).glob("*.jpg"))]
                     for name in COLLECTIONS}
    hits = 0
    for name, descriptors in described.items():
        for index, held_out in enumerate(descriptors):
            others = {other: [d for j, d in enumerate(ds) if other != name or j != index]
                      for other, ds in described.items()}
            nearest = min(others, key=lambda c: statistics.median(descriptor_distance(held_out, d) for d in others[c]))
            hits += nearest == name
    assert hits / 200 >= 0.6
