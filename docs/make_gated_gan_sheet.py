"""Gated-GAN contact sheet on photos not used in training.

    PLUGIN_HOST_SHARED=../shared .venv/bin/python docs/make_gated_gan_sheet.py [--model NAME]

Writes docs/gallery/gated-gan-contact-sheet.jpg. Rows: photos of ../shared/images/content (the model was
trained on ../shared/datasets/content only) under a row of one painting per collection. Columns: the photo,
the identity gate (strength 0), each style gate, then two even blends of two styles. Prints JSON naming the columns.
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

HERE = Path(__file__).resolve().parent
PHOTOS = ("tubingen.jpg", "golden_gate.jpg", "sailboat.jpg", "chicago.jpg", "flowers.jpg")


def blends(styles: list[str]) -> list[dict[str, float]]:
    """Two even blends of neighbouring styles (the first with the last, the second with the third)."""
    if len(styles) < 2:
        return []
    pairs = [(styles[0], styles[-1])] + ([(styles[1], styles[2])] if len(styles) >= 3 else [])
    return [{a: 0.5, b: 0.5} for a, b in pairs]


def header(shared: Path, styles: list[str], blanks_after: int, size: int) -> list[torch.Tensor]:
    """Above each style column the first painting of its collection (blank where there is none)."""
    blank = torch.ones(1, 3, size // 2, size)
    cells = []
    for style in styles:
        found = sorted((shared / "datasets" / "style" / style).glob("*.jpg"))
        cells.append(resize_max_side(load_image(found[0]).rgb, size // 2) if found else blank)
    return [blank, blank, *cells, *[blank] * blanks_after]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="gated-gan-painters")
    parser.add_argument("--size", type=int, default=384, help="long side the photos are stylised at")
    parser.add_argument("--out", type=Path, default=HERE / "gallery" / "gated-gan-contact-sheet.jpg",
                        help="where to write the sheet (to compare models without touching the docs)")
    args = parser.parse_args()
    shared = Path(os.environ.get("PLUGIN_HOST_SHARED", HERE.parent.parent / "shared"))
    method = plugin_host.load_method("gated-gan", device="auto", seed=0)
    from plugin_host_gated_gan.models import load_model

    _, styles = load_model(method.session.context, args.model)
    mixes = blends(list(styles))
    rows = []
    for name in PHOTOS:
        photo = resize_max_side(load_image(shared / "images" / "content" / name).rgb, args.size)
        row = [photo, method(photo, model=args.model, style=styles[0], strength=0.0)]
        row += [method(photo, model=args.model, style=style) for style in styles]
        row += [method(photo, model=args.model, style_blend=mix) for mix in mixes]
        rows.append(row)
    sheet = grid([header(shared, list(styles), len(mixes), args.size)] + rows, height=160)
    to_pil(sheet).convert("RGB").save(args.out, quality=88)
    columns = ["photo", "identity", *styles, *("+".join(mix) for mix in mixes)]
    print(json.dumps({"model": args.model, "photos": PHOTOS, "columns": columns, "sheet": str(args.out)}, indent=2))


if __name__ == "__main__":
    with torch.no_grad():
        main()
