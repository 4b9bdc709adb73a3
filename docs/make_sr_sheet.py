"""Super-resolution comparison sheet on Set5 (not used in training).

    PLUGIN_HOST_SHARED=../shared .venv/bin/python docs/make_sr_sheet.py

Writes docs/gallery/perceptual-sr-sheet.jpg: one row per scale (×4 on butterfly, ×8 on baby), columns
low-resolution input (nearest), bicubic, the pixel-loss model, the feature-loss model, the original. Each
cell is the same crop, enlarged. The input is made as `plugin_host sr-eval` makes it (antialiased bicubic
downsampling, no blur, rounded to 8 bits).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

import plugin_host
from make_adain_sheet import grid
from plugin_host.imaging.io import to_pil
from plugin_host_perceptual.evaluate import benchmark_pair

HERE = Path(__file__).resolve().parent
PICTURES = ((4, "butterfly.png"), (8, "baby.png"))
CROP = (120, 160)  # height and width of the shown crop, in high-resolution pixels (the sheet's 4:3 cells)


def centre_crop(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    (h, w), (crop_h, crop_w) = image.shape[-2:], size
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    return image[..., top:top + crop_h, left:left + crop_w]


def main() -> None:
    shared = Path(os.environ.get("PLUGIN_HOST_SHARED", HERE.parent.parent / "shared"))
    method = plugin_host.load_method("perceptual-sr", device="auto", seed=0)
    rows = []
    for scale, name in PICTURES:
        hr, low = benchmark_pair(shared / "datasets" / "sr" / "Set5" / name, scale)
        cells = [F.interpolate(low, scale_factor=scale, mode="nearest"),
                 F.interpolate(low, scale_factor=scale, mode="bicubic").clamp(0, 1)]
        cells += [method(low, model=f"perceptual-sr-x{scale}-{loss}") for loss in ("pixel", "feature")]
        cells.append(hr)
        rows.append([centre_crop(cell, CROP) for cell in cells])
    sheet = grid(rows, height=192)
    out_path = HERE / "gallery" / "perceptual-sr-sheet.jpg"
    to_pil(sheet).convert("RGB").save(out_path, quality=90)
    print(out_path.relative_to(HERE.parent))


if __name__ == "__main__":
    main()
