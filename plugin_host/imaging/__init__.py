"""Shared imaging for methods: image I/O, resizing, encoder normalisation, colour, tiling.

Tensors in, tensors out: images are (B, 3, H, W) float RGB in 0..1 unless a docstring says
otherwise. Importing this package imports torch; the host imports it only when a run starts.
"""
from __future__ import annotations

from .color import (COLOR_MODES, match_color_statistics, match_histograms, preserve_colors,
                    preserve_luminance, rgb_to_ycbcr, ycbcr_to_rgb)
from .io import (DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, SAVE_FORMATS, LoadedImage, check_output_path,
                 ensure_not_overwriting, from_pil, load_image, max_pixels_from_env, save_image, to_pil)
from .normalize import CONVENTIONS, EncoderNormalize, from_encoder_input, to_encoder_input
from .resize import pad_to_min_side, resize_max_side, resize_to, scale
from .tiling import tile_grid, tiled_apply

__all__ = [
    # io
    "LoadedImage", "load_image", "save_image", "check_output_path", "from_pil", "to_pil", "ensure_not_overwriting",
    "max_pixels_from_env", "DEFAULT_MAX_PIXELS", "MAX_PIXELS_ENV", "SAVE_FORMATS",
    # resize
    "resize_max_side", "resize_to", "scale", "pad_to_min_side",
    # normalize
    "CONVENTIONS", "to_encoder_input", "from_encoder_input", "EncoderNormalize",
    # color
    "COLOR_MODES", "rgb_to_ycbcr", "ycbcr_to_rgb", "preserve_luminance", "match_color_statistics",
    "match_histograms", "preserve_colors",
    # tiling
    "tiled_apply", "tile_grid",
]
