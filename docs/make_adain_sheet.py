"""AdaIN contact sheet and quality figures on images not used in training.

    PLUGIN_HOST_SHARED=../shared .venv/bin/python docs/make_adain_sheet.py [--decoder NAME]

Writes docs/gallery/adain-contact-sheet.jpg (rows: content, then one column per style) and prints
JSON: for each pair, the mean/std style distance (relu1_1..relu4_1) of the output and of the
content to the style, and the strength 0 reconstruction PSNR of each content image.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

import plugin_host
from plugin_host.imaging.io import load_image, to_pil
from plugin_host.imaging.resize import resize_max_side

HERE = Path(__file__).resolve().parent
# Neither list appears in ../shared/datasets, which the shipped decoder was trained on.
CONTENTS = ("tubingen.jpg", "golden_gate.jpg", "sailboat.jpg")
STYLES = ("candy.jpg", "mosaic.jpg", "picasso_selfport1907.jpg", "the_resevoir_at_poitiers.jpg")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a - b).square().mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decoder", default="adain-decoder-vgg16-hed")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--out", type=Path, default=HERE / "gallery" / "adain-contact-sheet.jpg",
                        help="where to write the sheet (to compare decoders without touching the docs)")
    args = parser.parse_args()
    shared = Path(os.environ.get("PLUGIN_HOST_SHARED", HERE.parent.parent / "shared"))
    adain = plugin_host.load_method("adain", device="auto", seed=0)
    from plugin_host_adain.evaluate import style_distance
    from plugin_host_adain.models import load_models

    encoder, _ = load_models(adain.session.context, args.decoder)
    rows, report = [], {"decoder": args.decoder, "pairs": [], "reconstruction_psnr": {}}
    for name in CONTENTS:
        content = resize_max_side(load_image(shared / "images" / "content" / name).rgb, args.size)
        recon = adain(content, style=content, strength=0.0, decoder=args.decoder, max_size=0)
        report["reconstruction_psnr"][name] = round(psnr(recon, content), 2)
        row = [content]
        for style_name in STYLES:
            style = resize_max_side(load_image(shared / "images" / "style" / style_name).rgb, 512)
            out = adain(content, style=style, decoder=args.decoder, max_size=0)
            report["pairs"].append({"content": name, "style": style_name,
                                    "output_to_style": round(style_distance(encoder, out, style), 2),
                                    "content_to_style": round(style_distance(encoder, content, style), 2)})
            row.append(out)
        rows.append(row)
    header = [torch.ones(1, 3, args.size // 2, args.size)] + [
        resize_max_side(load_image(shared / "images" / "style" / s).rgb, args.size // 2) for s in STYLES]
    sheet = grid([header] + rows, height=160)
    to_pil(sheet).convert("RGB").save(args.out, quality=88)
    report["sheet"] = str(args.out)
    print(json.dumps(report, indent=2))


def grid(rows: list[list[torch.Tensor]], height: int, gap: int = 4) -> torch.Tensor:
    from plugin_host.imaging.resize import resize_to

    cell_w = round(height * 4 / 3)
    canvas = torch.ones(1, 3, len(rows) * (height + gap) - gap, len(rows[0]) * (cell_w + gap) - gap)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            h, w = image.shape[-2:]
            scale = min(height / h, cell_w / w)
            small = resize_to(image, (max(1, round(h * scale)), max(1, round(w * scale))))
            top, left = r * (height + gap), c * (cell_w + gap)
            canvas[..., top:top + small.shape[-2], left:left + small.shape[-1]] = small.cpu()
    return canvas


if __name__ == "__main__":
    main()
