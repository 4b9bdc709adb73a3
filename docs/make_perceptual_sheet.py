"""Perceptual-loss contact sheet and quality figures, on images not used in training.

    PLUGIN_HOST_SHARED=../shared .venv/bin/python docs/make_perceptual_sheet.py [--model NAME ...]

Writes docs/gallery/perceptual-contact-sheet.jpg (a first row with each model's style image, then one
row per content image: the content, then one column per style model) and prints JSON: per pair, the
Gram distance (at the model's style layers) of the output and of the content to the model's style image.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

import plugin_host
from make_adain_sheet import grid
from plugin_host.imaging.io import load_image, to_pil
from plugin_host.imaging.resize import resize_max_side
from plugin_host_perceptual.evaluate import find_painting, gram_distance

HERE = Path(__file__).resolve().parent
CONTENTS = ("tubingen.jpg", "golden_gate.jpg", "sailboat.jpg")  # not in ../shared/datasets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", action="append", help="style model(s); default: every shipped one")
    parser.add_argument("--size", type=int, default=384)
    args = parser.parse_args()
    shared = Path(os.environ.get("PLUGIN_HOST_SHARED", HERE.parent.parent / "shared"))
    method = plugin_host.load_method("perceptual", device="auto", seed=0)
    ctx = method.session.context
    shipped = [e for e in method.session.registry.weights.values()
               if e.model_kind == "perceptual-style" and e.source is not None and e.sha256]
    cards = {e.name: e.extra.get("card", {}) for e in shipped}
    models = args.model or sorted(cards)
    report: dict = {"models": models, "pairs": []}
    style_files = {model: find_painting(shared, cards.get(model, {}).get("style_name", "")) for model in models}
    styles = {model: load_image(f).rgb for model, f in style_files.items() if f is not None}
    blank = torch.ones(1, 3, 3, 4)
    rows = [[blank] + [styles.get(model, blank) for model in models]]
    for name in CONTENTS:
        content = resize_max_side(load_image(shared / "images" / "content" / name).rgb, args.size)
        row = [content]
        for model in models:
            card = cards.get(model, {})
            out = method(content, model=model)
            row.append(out)
            if model in styles:
                layers = card["style_layers"]
                encoder = ctx.load_encoder(card["encoder"], layers)
                style = resize_max_side(styles[model], 256)
                report["pairs"].append({"content": name, "model": model,
                                        "output_to_style": gram_distance(encoder, layers, out, style),
                                        "content_to_style": gram_distance(encoder, layers, content, style)})
        rows.append(row)
    sheet = grid(rows, height=160)
    out_path = HERE / "gallery" / "perceptual-contact-sheet.jpg"
    to_pil(sheet).convert("RGB").save(out_path, quality=88)
    report["sheet"] = str(out_path.relative_to(HERE.parent))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
