"""Frozen feature extractors (loss networks and encoders) shared by style methods."""
from __future__ import annotations

from .scales import channel_scales, normalise
from .vgg import (
    ARCHITECTURES,
    CONVENTIONS,
    POOLINGS,
    Architecture,
    Convention,
    Pooling,
    VGGEncoder,
    build_encoder,
    layer_names,
)

__all__ = [
    "ARCHITECTURES",
    "CONVENTIONS",
    "POOLINGS",
    "Architecture",
    "Convention",
    "Pooling",
    "VGGEncoder",
    "build_encoder",
    "channel_scales",
    "layer_names",
    "normalise",
]
