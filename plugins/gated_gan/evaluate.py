"""How good a Gated-GAN model is, by the quality bar of its issue: ``plugin_host gated-gan-eval``.

On photos never used in training, every style gate's output is classified by the painting collection whose
feature statistics it is nearest to (``style_descriptor`` / ``nearest_collection`` over the collections'
paintings, the default encoder). Reported: the share of outputs landing on their gate's own collection
(bar ≥ 75 %), the content ratio (relu4_2 distance of an output to its photo over that of one of the gate's
paintings; bar: median ≤ 0.6), the periodic-artefact measure ``peak`` (bar: ≤ 3.5 on ≥ 90 % of the
outputs) and the identity gate's reconstruction PSNR. Nothing here imports torch until the command runs.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

#: The quality bar: style accuracy at least, content ratio median at most, share of outputs with peak ≤ PEAK_MAX.
BAR = {"style_accuracy": 0.75, "content_ratio_median": 0.6, "peak_ok_share": 0.9}
PEAK_MAX = 3.5
#: The encoder layers ``style_descriptor`` (relu1_1 … relu5_1) and ``content_ratio`` (relu4_2) read.
EVALUATION_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="an installed gated-gan model")
    parser.add_argument("--photos", type=Path, required=True, help="folder of photos never used in training")
    parser.add_argument("--collections", type=Path, required=True,
                        help="folder with one sub-folder of paintings per style of the model (named as its styles)")
    parser.add_argument("--size", type=int, default=256, help="long side the photos are stylised at (default 256)")
    parser.add_argument("--limit", type=int, default=0, help="use at most this many photos (default: all)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a summary")


def handle(args: argparse.Namespace) -> int:
    from plugin_host.sdk import ParameterError, Session, image_files

    if args.size < 16:
        raise ParameterError("size", f"{args.size} is too small", hint="give --size 16 or more (256 is the default)")
    session = Session(device=args.device, seed=0)
    photos = image_files(args.photos) if args.photos.is_dir() else []
    if not photos:
        raise ParameterError("photos", f"no image files in '{args.photos}'", hint="give a folder of photos")
    report = evaluate(session.context, args.model, photos[:args.limit or None], args.collections, args.size)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for key in ("style_accuracy", "content_ratio_median", "peak_ok_share", "identity_psnr_mean"):
            print(f"{key:22} {report[key]:.3f}" + (f"   (bar {BAR[key]})" if key in BAR else ""))
        print("per style:", ", ".join(f"{name} {share:.2f}" for name, share in report["per_style"].items()))
        print("meets the bar" if report["meets_bar"] else "does not meet the bar")
    return 0


def evaluate(ctx: Any, model: str, photos: list[Path], collections: Path, size: int) -> dict[str, Any]:
    """The quality figures of ``model`` on ``photos``, its styles classified against ``collections/<style>``."""
    import torch

    from plugin_host.sdk import (DEFAULT_ENCODER, InputImageError, content_ratio, image_files, load_image,
                                 nearest_collection, periodic_peak, resize_max_side, style_descriptor)

    from .models import load_model
    from .net import from_network, one_hot, to_network

    net, styles = load_model(ctx, model)
    missing = [style for style in styles if not image_files(collections / style)]
    if missing:
        raise InputImageError(f"'{collections}' has no paintings for style {missing[0]!r}",
                              hint=f"give a folder with a sub-folder per style: {', '.join(styles)}")
    encoder = ctx.load_encoder(DEFAULT_ENCODER, EVALUATION_LAYERS)
    paintings = {style: [resize_max_side(load_image(path).rgb, size).to(ctx.device)
                         for path in image_files(collections / style)] for style in styles}
    described = {style: [style_descriptor(encoder, p) for p in images] for style, images in paintings.items()}
    hits: dict[str, list[bool]] = {style: [] for style in styles}
    ratios, peaks, psnrs = [], [], []
    ctx.progress.stage("evaluate", total=len(photos))
    for index, path in enumerate(photos):
        ctx.cancel.raise_if_cancelled()
        photo = resize_max_side(load_image(path).rgb, size).to(ctx.device)
        for gate_index in range(len(styles) + 1):
            with torch.no_grad():
                out = from_network(net(to_network(photo), one_hot(len(styles), gate_index).to(ctx.device))).clamp(0, 1)
            if gate_index == len(styles):
                mse = float((out - photo).square().mean())
                psnrs.append(10 * math.log10(1 / max(mse, 1e-10)))
                continue
            style = styles[gate_index]
            hits[style].append(nearest_collection(style_descriptor(encoder, out), described) == style)
            painting = paintings[style][index % len(paintings[style])]
            ratios.append(content_ratio(encoder, out, photo, painting))
            peaks.append(periodic_peak(out))
        ctx.progress.advance()
    report = {
        "model": model, "styles": list(styles), "photos": len(photos), "size": size,
        "style_accuracy": sum(sum(h) for h in hits.values()) / sum(len(h) for h in hits.values()),
        "per_style": {style: sum(h) / len(h) for style, h in hits.items()},
        "content_ratio_median": statistics.median(ratios),
        "peak_ok_share": sum(p <= PEAK_MAX for p in peaks) / len(peaks), "peak_median": statistics.median(peaks),
        "identity_psnr_mean": statistics.fmean(psnrs), "bar": BAR,
    }
    report["meets_bar"] = (report["style_accuracy"] >= BAR["style_accuracy"]
                           and report["content_ratio_median"] <= BAR["content_ratio_median"]
                           and report["peak_ok_share"] >= BAR["peak_ok_share"])
    return report
