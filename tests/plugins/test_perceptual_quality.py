"""The shipped perceptual-loss models on images not used in their training (the shared test images)."""
import json
from pathlib import Path

import pytest
import torch

import plugin_host
from plugin_host.imaging.io import load_image
from plugin_host.imaging.resize import resize_max_side
from plugin_host_perceptual.evaluate import find_painting, gram_distance

pytestmark = [pytest.mark.shared, pytest.mark.slow]

SHIPPED = Path(plugin_host.__file__).resolve().parents[1] / "plugins" / "perceptual" / "weights"


def shipped_cards(kind):
    cards = [json.loads(p.read_text()) for p in sorted(SHIPPED.glob("*.pth.json"))]
    return [c for c in cards if c["model_kind"] == kind]


def style_file(shared_dir, name):
    found = find_painting(shared_dir, name)
    assert found, f"style image {name!r} is in neither images/style nor datasets/style"
    return found


@pytest.fixture(scope="module")
def style_method():
    return plugin_host.load_method("perceptual", device="cpu", seed=0)


def test_at_least_one_style_and_one_sr_model_are_shipped():
    assert shipped_cards("perceptual-style") and shipped_cards("perceptual-sr")


@pytest.mark.parametrize("card", shipped_cards("perceptual-style"), ids=lambda c: c["name"])
def test_styled_output_is_closer_to_the_style_than_the_content_is(style_method, shared_dir, card):
    content = resize_max_side(load_image(shared_dir / "images" / "content" / "golden_gate.jpg").rgb, 256)
    style = resize_max_side(load_image(style_file(shared_dir, card["style_name"])).rgb, 256)
    out = style_method(content, model=card["name"])
    encoder = style_method.session.context.load_encoder(card["encoder"], card["style_layers"])
    layers = card["style_layers"]
    assert gram_distance(encoder, layers, out, style) < MAX_GRAM_RATIO * gram_distance(encoder, layers, content, style)


@pytest.fixture(scope="module")
def unseen_photos(shared_dir):
    """The ten test photos (none is a training photo) at 320 px on the long side."""
    paths = sorted((shared_dir / "images" / "content").glob("*.jpg"))
    return [resize_max_side(load_image(path).rgb, 320) for path in paths]


#: Shipped models known to miss the artefact bar, with what they reach (strict: the test fails when one passes).
BELOW_THE_BAR = {
    "perceptual-great-wave": "peak ≤ 3.5 on 8 of 10 photos after 1700 fine-tuning steps: amber.jpg and modern.jpg "
                             "at 3.6, at the frequencies of the photos' own stripes (as photos they score 3.62 "
                             "and 3.43), which this style keeps sharp",
}


def _bar_cases():
    return [pytest.param(card, marks=pytest.mark.xfail(reason=BELOW_THE_BAR[card["name"]], strict=True))
            if card["name"] in BELOW_THE_BAR else card for card in shipped_cards("perceptual-style")]


@pytest.mark.parametrize("card", _bar_cases(), ids=lambda c: c["name"])
def test_no_pattern_locked_to_the_pixel_grid_and_the_content_kept(style_method, shared_dir, unseen_photos, card):
    """The artefact and content bars of the trained-quality issue, on photos never used in training: ``peak``
    at most 3.5 on 90 % of the outputs (the photos themselves reach 2.7–3.6) and the relu4_2 distance to the
    photo at most 0.45 of the painting's, as a median."""
    import statistics

    from plugin_host.evaluation import CONTENT_LAYER, content_ratio, periodic_peak

    painting = resize_max_side(load_image(style_file(shared_dir, card["style_name"])).rgb, 256)
    encoder = style_method.session.context.load_encoder("vgg16-caffe-hed", (CONTENT_LAYER,))
    outputs = [style_method(photo, model=card["name"]) for photo in unseen_photos]
    peaks = [periodic_peak(out) for out in outputs]
    assert sum(peak <= MAX_PEAK for peak in peaks) >= 0.9 * len(peaks), [round(p, 2) for p in peaks]
    ratios = [content_ratio(encoder, out, photo, painting) for out, photo in zip(outputs, unseen_photos)]
    assert statistics.median(ratios) <= MAX_CONTENT_RATIO, [round(r, 2) for r in ratios]


@pytest.mark.parametrize("card", shipped_cards("perceptual-sr"), ids=lambda c: c["name"])
def test_sr_model_on_set5_beats_bicubic_at_what_it_was_trained_for(shared_dir, card):
    from plugin_host.runner import Session
    from plugin_host_perceptual.evaluate import evaluate

    files = sorted((shared_dir / "datasets" / "sr" / "Set5").glob("*.png"))
    session = Session(device="cpu")
    rows = {r["method"]: r for r in evaluate(files, card["scale"], [card["name"]], session)}
    # The protocol check: our bicubic row (the paper's ×4 figure is 28.43 dB)
    assert rows["bicubic"]["psnr"] == pytest.approx({4: 28.63, 8: 24.53}[card["scale"]], abs=0.05)
    if card["loss"] == "pixel":
        assert rows[card["name"]]["psnr"] > rows["bicubic"]["psnr"] + MIN_SR_GAIN_DB
    else:  # a feature-loss model trades PSNR for its own objective: features closer to the HR image's
        model, bicubic = feature_distances(files, card, session)
        assert model < MAX_FEATURE_RATIO * bicubic


def feature_distances(files, card, session):
    """Summed MSE at the card's content layer to the HR image, of the model's and of bicubic's output."""
    import torch.nn.functional as F

    from plugin_host_perceptual.evaluate import benchmark_pair
    from plugin_host_perceptual.models import load_model
    from plugin_host_perceptual.run import forward

    ctx, scale, layer = session.context, card["scale"], card.get("content_layer") or "relu2_2"
    net = load_model(ctx, card["name"], "sr")[0]
    encoder = ctx.load_encoder(card["encoder"], [layer])
    totals = [0.0, 0.0]
    for path in files:
        hr, low = benchmark_pair(path, scale)
        outputs = (forward(net, low, 0, ctx), F.interpolate(low, scale_factor=scale, mode="bicubic").clamp(0, 1))
        with torch.no_grad():
            target = encoder(hr)[layer]
            for i, out in enumerate(outputs):
                totals[i] += float((encoder(out)[layer] - target).square().mean())
    return totals


# Measured with the shipped models (docs/make_perceptual_sheet.py, sr-eval): Gram distance ratio 0.07–0.27
# for perceptual-starry-night on three photos; perceptual-sr-x4-pixel 29.38 dB on Set5 ×4, bicubic 28.63 dB.
MAX_GRAM_RATIO = 0.5
#: The issue's bars (not what a model happened to reach).
MAX_PEAK = 3.5
MAX_CONTENT_RATIO = 0.45
MIN_SR_GAIN_DB = 0.5
MAX_FEATURE_RATIO = 0.9
