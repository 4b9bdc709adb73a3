"""The quality figures of the trained style models, on photos and paintings never used in training.

    PLUGIN_HOST_SHARED=../shared .venv/bin/python docs/measure_style_models.py [--adain-decoder NAME] [--perceptual NAME ...]

Photos: the 10 of ``../shared/images/content`` (none is in ``datasets/content``, the training photos), at
320 px on the long side. AdaIN styles: the ``images/style`` paintings that are not in ``datasets/style`` (the
decoder's training paintings). Perceptual: each shipped style model against its own painting.

Prints JSON with, per model, the medians and the share of outputs meeting each bar:

* ``psnr`` (AdaIN): strength 0 reconstruction of each photo, dB;
* ``peak``: :func:`plugin_host.evaluation.periodic_peak` of each output (bar: ≤ 3.5);
* ``style_ratio``: the output's style distance to its painting over the photo's (AdaIN: mean/std at relu1_1 …
  relu4_1; perceptual: Gram at the model's layers); below 1, the output took on the painting's statistics;
* ``content_ratio``: :func:`plugin_host.evaluation.content_ratio` at relu4_2 (bar: median ≤ 0.45);
* ``own_painting`` (perceptual): the share of outputs whose nearest of the shipped models' paintings, in Gram
  distance, is the model's own (bar: ≥ 0.9).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import torch

import plugin_host
from plugin_host.evaluation import CONTENT_LAYER, content_ratio, periodic_peak
from plugin_host.imaging.io import load_image
from plugin_host.imaging.resize import resize_max_side

HERE = Path(__file__).resolve().parent
SIZE = 320


def shared_folder() -> Path:
    return Path(os.environ.get("PLUGIN_HOST_SHARED", HERE.parent.parent / "shared"))


def pictures(folder: Path, size: int = SIZE, exclude: set[str] = frozenset()) -> dict[str, torch.Tensor]:
    return {path.name: resize_max_side(load_image(path).rgb, size) for path in sorted(folder.glob("*.jpg"))
            if path.stem not in exclude}


def summary(values: list[float], bar: float | None = None, below: bool = True) -> dict:
    found = {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
             "max": round(max(values), 3)}
    if bar is not None:
        found["share_meeting_bar"] = round(sum((v <= bar) if below else (v >= bar) for v in values) / len(values), 3)
    return found


def measure_adain(decoder: str, photos: dict, shared: Path) -> dict:
    from plugin_host_adain.evaluate import style_distance
    from plugin_host_adain.models import load_models

    adain = plugin_host.load_method("adain", device="auto", seed=0)
    training = {p.stem for p in (shared / "datasets" / "style").rglob("*.jpg")} | {"mondrian", "woman-with-hat-matisse", "rain-princess-cropped",
                                                                                 "shipwreck"}
    paintings = pictures(shared / "images" / "style", 512, exclude=training)
    encoder, _ = load_models(adain.session.context, decoder)
    content_encoder = adain.session.context.load_encoder("vgg16-caffe-hed", (CONTENT_LAYER,))
    psnr, peaks, styles, contents = [], [], [], []
    for photo in photos.values():
        recon = adain(photo, style=photo, strength=0.0, decoder=decoder, max_size=0)
        psnr.append(float(10 * torch.log10(1 / (recon - photo).square().mean())))
        for painting in paintings.values():
            out = adain(photo, style=painting, decoder=decoder, max_size=0)
            peaks.append(periodic_peak(out))
            styles.append(style_distance(encoder, out, painting) / style_distance(encoder, photo, painting))
            contents.append(content_ratio(content_encoder, out, photo, painting))
    return {"decoder": decoder, "paintings": sorted(paintings), "psnr": summary(psnr, 18, below=False),
            "peak": summary(peaks, 3.5), "style_ratio": summary(styles, 1.0), "content_ratio": summary(contents, 0.45)}


def measure_perceptual(models: list[str] | None, photos: dict, shared: Path) -> dict:
    from plugin_host_perceptual.evaluate import find_painting, gram_distance

    method = plugin_host.load_method("perceptual", device="auto", seed=0)
    ctx = method.session.context
    cards = {e.name: e.extra.get("card", {}) for e in method.session.registry.weights.values()
             if e.model_kind == "perceptual-style" and e.source is not None and e.sha256}
    models = models or sorted(cards)
    paintings = {m: resize_max_side(load_image(find_painting(shared, cards[m]["style_name"])).rgb, 256) for m in models}
    content_encoder = ctx.load_encoder("vgg16-caffe-hed", (CONTENT_LAYER,))
    report = {}
    for model in models:
        layers = cards[model]["style_layers"]
        encoder = ctx.load_encoder(cards[model]["encoder"], layers)
        peaks, styles, contents, own = [], [], [], []
        for photo in photos.values():
            out = method(photo, model=model)
            peaks.append(periodic_peak(out))
            painting = paintings[model]
            styles.append(gram_distance(encoder, layers, out, painting) / gram_distance(encoder, layers, photo, painting))
            contents.append(content_ratio(content_encoder, out, photo, painting))
            nearest = min(paintings, key=lambda m: gram_distance(encoder, layers, out, paintings[m]))
            own.append(float(nearest == model))
        report[model] = {"peak": summary(peaks, 3.5), "style_ratio": summary(styles, 1.0),
                         "content_ratio": summary(contents, 0.45), "own_painting": round(sum(own) / len(own), 3)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adain-decoder", default="adain-decoder-vgg16-hed")
    parser.add_argument("--perceptual", action="append", help="style model(s); default: every shipped one")
    parser.add_argument("--skip", choices=("adain", "perceptual"), action="append", default=[])
    args = parser.parse_args()
    shared = shared_folder()
    photos = pictures(shared / "images" / "content")
    report: dict = {"photos": sorted(photos), "size": SIZE}
    if "adain" not in args.skip:
        report["adain"] = measure_adain(args.adain_decoder, photos, shared)
    if "perceptual" not in args.skip:
        report["perceptual"] = measure_perceptual(args.perceptual, photos, shared)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
