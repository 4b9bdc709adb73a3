"""Regenerate the README gallery: Gatys on the bundled samples, with the default encoder.

    .venv/bin/python docs/make_gallery.py            # writes docs/gallery/*.jpg

Uses only files in docs/samples/, so it runs on any machine with the project installed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

import plugin_host

HERE = Path(__file__).resolve().parent
PAIRS = [  # (content, style, extra parameters)
    ("lighthouse.jpg", "starry_night.jpg", {}),
    ("parrots.jpg", "great_wave.jpg", {}),
    ("lighthouse.jpg", "great_wave.jpg", {"preserve_colors": "luminance"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=150, help="steps at full size")
    parser.add_argument("--levels", type=int, default=2, help="coarse-to-fine levels (100 steps each coarse one)")
    parser.add_argument("--size", type=int, default=320)
    args = parser.parse_args()
    gatys = plugin_host.load_method("gatys", device="auto", seed=0)
    out_dir = HERE / "gallery"
    tiles = []
    for content, style, extra in PAIRS:
        result = gatys(HERE / "samples" / content, style=HERE / "samples" / style,
                       iterations=args.iterations, levels=args.levels, max_size=args.size, **extra)
        suffix = "-colours" if extra else ""
        name = f"{Path(content).stem}-{Path(style).stem}{suffix}.jpg"
        result.convert("RGB").save(out_dir / name, quality=90)
        tiles.append([Image.open(HERE / "samples" / content), Image.open(HERE / "samples" / style), result])
        print(out_dir / name)
    sheet(tiles).save(out_dir / "contact-sheet.jpg", quality=88)


def sheet(rows: list[list[Image.Image]], height: int = 160, gap: int = 4) -> Image.Image:
    """Content | style | result, one row per pair, each scaled to ``height``."""
    scaled = [[im.convert("RGB").resize((round(im.width * height / im.height), height)) for im in row]
              for row in rows]
    width = max(sum(im.width for im in row) + gap * (len(row) - 1) for row in scaled)
    canvas = Image.new("RGB", (width, len(rows) * (height + gap) - gap), "white")
    for r, row in enumerate(scaled):
        x = 0
        for im in row:
            canvas.paste(im, (x, r * (height + gap)))
            x += im.width + gap
    return canvas


if __name__ == "__main__":
    main()
