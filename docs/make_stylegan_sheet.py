"""StyleGAN contact sheets and figures of a generator (the shipped one, or a training snapshot).

    PLUGIN_HOST_SHARED=../shared .venv/bin/python docs/make_stylegan_sheet.py [--checkpoint FILE] [--project 3]

Writes, under --out-dir (docs/gallery):

* ``stylegan-sheet.jpg``: per class, a row of eight seeds at ψ 0.7; then per class one seed at ψ 0, 0.25, 0.5,
  0.75, 1 (truncation toward that class's average style).
* ``stylegan-mixing.jpg``: style mixing in the first class: the top row gives four destination seeds; each
  row below takes one source seed's coarse, middle or fine styles into every destination.
* ``stylegan-noise.jpg``: one picture with four noise draws (and the spread of those draws, enlarged: where noise
  acts), then noise on all layers, none, fine only, coarse only.
* ``stylegan-projection.jpg`` (with ``--project N``): N photos that were never trained on (``images/content``):
  the photo, its projection, then the projection with its fine styles from a seed of each class.

Prints JSON: the generator, the files, and the measures of :func:`measure` (``peak`` of generated pictures,
distance to the nearest training picture for the memorisation check, share nearest their own class, how much
of the layout a new noise draw and new styles change).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import torch
from torch.nn.functional import adaptive_avg_pool2d

import plugin_host
from plugin_host.evaluation import periodic_peak
from plugin_host.imaging.io import from_pil, load_image, to_pil
from plugin_host.imaging.resize import resize_to

HERE = Path(__file__).resolve().parent
SEEDS = tuple(range(8))
TRUNCATIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
PHOTOS = ("golden_gate.jpg", "tubingen.jpg", "sailboat.jpg", "chicago.jpg", "flowers.jpg")
NOISE_LAYERS = ("all", "fine", "coarse")
LAYOUT_GRID = 8  # a picture's layout: its mean colour in each cell of an 8×8 grid
OTHER = 10_000  # offset to a seed no measured picture uses


def square_grid(rows: list[list[torch.Tensor]], side: int, gap: int = 4) -> torch.Tensor:
    """Pictures resized to ``side`` px squares, row by row on a white canvas (rows may be shorter)."""
    columns = max(len(row) for row in rows)
    canvas = torch.ones(1, 3, len(rows) * (side + gap) - gap, columns * (side + gap) - gap)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            top, left = r * (side + gap), c * (side + gap)
            canvas[..., top:top + side, left:left + side] = resize_to(picture.float().cpu(), (side, side))
    return canvas


class Sheets:
    """The render and project methods bound to one generator."""

    def __init__(self, source: dict[str, str]) -> None:
        self.render = plugin_host.load_method("stylegan", device="auto", seed=0)
        self.restyle = plugin_host.load_method("stylegan-project", session=self.render.session)  # one model cache
        self.source = source
        self.classes = generator_classes(self.render, source)

    def picture(self, seed: int, **params) -> torch.Tensor:
        """The picture of ``seed`` as the user gets it (8 bits a channel), (1, 3, R, R) in 0..1."""
        return from_pil(self.render(seeds=[seed], **self.source, **params)).rgb

    def classes_and_truncation(self) -> list[list[torch.Tensor]]:
        rows = [[self.picture(seed, collection=name, truncation=0.7) for seed in SEEDS] for name in self.classes]
        rows += [[self.picture(SEEDS[0], collection=name, truncation=psi) for psi in TRUNCATIONS]
                 for name in self.classes]
        return rows

    def mixing(self) -> list[list[torch.Tensor]]:
        name, destinations, source = self.classes[0], SEEDS[:4], SEEDS[4]
        rows = [[self.picture(source, collection=name)] + [self.picture(d, collection=name) for d in destinations]]
        for group in ("coarse", "middle", "fine"):
            rows.append([torch.ones(1, 3, 8, 8)] + [self.picture(d, collection=name, mix_seed=source,
                                                                 mix_styles=group) for d in destinations])
        return rows

    def noise(self) -> list[list[torch.Tensor]]:
        name, seed = self.classes[0], SEEDS[1]
        draws = [self.picture(seed, collection=name, noise_seed=100 + k) for k in range(4)]
        spread = torch.stack(draws).std(0)
        spread = (spread / spread.amax().clamp_min(1e-6)).mean(1, keepdim=True).expand(1, 3, *spread.shape[-2:])
        modes = [self.picture(seed, collection=name, noise_layers=layers) for layers in NOISE_LAYERS]
        modes.insert(1, self.picture(seed, collection=name, noise_mode="none"))
        return [draws + [spread], modes]

    def projection(self, shared: Path, count: int, steps: int) -> list[list[torch.Tensor]]:
        rows = []
        for file in PHOTOS[:count]:
            photo = load_image(shared / "images" / "content" / file).rgb
            latent = Path(os.environ.get("TMPDIR", "/tmp")) / f"stylegan-sheet-{file}.pt"
            projected = self.restyle(photo, **self.source, steps=steps, save_latent=str(latent))
            row = [photo, projected]
            row += [self.restyle(photo, **self.source, latent=str(latent), style_seed=SEEDS[2], collection=name)
                    for name in self.classes if name != "photo"]
            latent.unlink(missing_ok=True)
            rows.append(row)
        return rows


def generator_classes(render, source: dict[str, str]) -> tuple[str, ...]:
    """The classes of the generator ``source`` names (a file, or an installed generator's)."""
    from plugin_host_stylegan.models import read_generator_file
    from plugin_host_stylegan.schema import SHIPPED_MODEL

    path = Path(source["checkpoint"]) if "checkpoint" in source else render.session.context.weights.path(
        source.get("generator", SHIPPED_MODEL))
    return read_generator_file(path).config.classes


def layout_change(pictures: torch.Tensor, others: torch.Tensor) -> float:
    """Mean absolute change of the pictures' layouts (0..1 colour), pair by pair."""
    change = adaptive_avg_pool2d(pictures, LAYOUT_GRID) - adaptive_avg_pool2d(others, LAYOUT_GRID)
    return round(float(change.abs().mean()), 4)


def measure(sheets: Sheets, shared: Path, count: int) -> dict[str, object]:
    """Per class, of ``count`` generated pictures: ``peak``; the distance to the nearest training picture (the
    memorisation check: 1 = as far as two training pictures are from each other; a copy would be near 0);
    ``own_class``, the share whose features are nearest the mean of their own class's training pictures among
    the classes' means (``own_class_real``: the same share for the training pictures themselves); and how much
    of the layout the noise decides: ``layout_change_noise`` with a new noise draw and the same seed's styles,
    ``layout_change_styles`` with another seed's styles and the same noise (in a trained StyleGAN the styles
    decide the layout and the noise only its fine detail)."""
    from plugin_host_stylegan.evaluate import (FEATURE_LAYERS, PooledFeatures, nearest_real_distance,
                                               reference_pictures)
    from plugin_host.sdk import DEFAULT_ENCODER

    folders = {"photo": shared / "datasets" / "content"} | {
        name: shared / "datasets" / "style" / name for name in sheets.classes if name != "photo"}
    ctx = sheets.render.session.context
    features = PooledFeatures(ctx.load_encoder(DEFAULT_ENCODER, FEATURE_LAYERS))
    side = sheets.picture(0, collection=sheets.classes[0]).shape[-1]
    reals = {name: reference_pictures([folders[name]], side, 400) for name in sheets.classes}
    real_features = {name: torch.cat([features(batch) for batch in real.split(50)]) for name, real in reals.items()}
    centroids = torch.stack([f.mean(0) for f in real_features.values()])

    def own_share(found: torch.Tensor, index: int) -> float:
        return round(float((torch.cdist(found, centroids).argmin(1) == index).float().mean()), 3)

    def draw(name: str, seeds: range, noise_offset: int = 0, style_offset: int = 0) -> torch.Tensor:
        return torch.cat([sheets.picture(style_offset + seed, collection=name, truncation=1.0,
                                         noise_seed=noise_offset + seed) for seed in seeds])

    found: dict[str, object] = {}
    for index, name in enumerate(sheets.classes):
        pictures = draw(name, range(count))
        new_noise = draw(name, range(count), noise_offset=OTHER)
        new_styles = draw(name, range(count), style_offset=OTHER)
        peaks = [periodic_peak(p[None]) for p in pictures]
        nearest = nearest_real_distance([reals[name]], [pictures], features)
        found[name] = {"peak_median": round(statistics.median(peaks), 3),
                       "peak_within_3_5": round(sum(p <= 3.5 for p in peaks) / len(peaks), 3),
                       "nearest_real_min": round(float(nearest.min()), 3),
                       "nearest_real_median": round(float(nearest.median()), 3),
                       "own_class": own_share(features(pictures), index),
                       "own_class_real": own_share(real_features[name], index),
                       "layout_change_noise": layout_change(pictures, new_noise),
                       "layout_change_styles": layout_change(pictures, new_styles)}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="a generator file (e.g. a training snapshot)")
    parser.add_argument("--generator", default=None, help="an installed generator (default: the shipped one)")
    parser.add_argument("--out-dir", type=Path, default=HERE / "gallery")
    parser.add_argument("--side", type=int, default=128, help="side of each cell in the sheets")
    parser.add_argument("--project", type=int, default=0, help="photos to project (about a minute each)")
    parser.add_argument("--steps", type=int, default=300, help="projection steps")
    parser.add_argument("--measure", type=int, default=50, help="pictures a class for the measures (0: none)")
    args = parser.parse_args()
    shared = Path(os.environ.get("PLUGIN_HOST_SHARED", HERE.parent.parent / "shared"))
    source = {"checkpoint": str(args.checkpoint)} if args.checkpoint else (
        {"generator": args.generator} if args.generator else {})
    sheets = Sheets(source)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    made = {"stylegan-sheet.jpg": sheets.classes_and_truncation(), "stylegan-mixing.jpg": sheets.mixing(),
            "stylegan-noise.jpg": sheets.noise()}
    if args.project:
        made["stylegan-projection.jpg"] = sheets.projection(shared, args.project, args.steps)
    for file, rows in made.items():
        to_pil(square_grid(rows, args.side)).convert("RGB").save(args.out_dir / file, quality=90)
    report = {"generator": source or "shipped", "classes": sheets.classes,
              "files": [str(args.out_dir / f) for f in made]}
    if args.measure:
        report["measures"] = measure(sheets, shared, args.measure)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    with torch.no_grad():
        main()
