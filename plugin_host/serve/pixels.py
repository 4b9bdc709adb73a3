"""Raw interleaved pixel buffers (the wire format) to tensors and back.

Alpha never goes through the method: the result carries the content buffer's own alpha,
byte for byte, so GIMP writes back exactly the alpha it read.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputImageError

_LUMA = (0.2126, 0.7152, 0.0722)


def as_array(buffer: memoryview, spec: dict) -> np.ndarray:
    """``(H, W, C)`` view of a buffer: uint8 or float32."""
    dtype = np.uint8 if spec["dtype"] == "u8" else np.dtype("<f4")
    return np.frombuffer(buffer, dtype=dtype).reshape(spec["height"], spec["width"], spec["channels"])


def to_tensor(buffer: memoryview, spec: dict) -> Any:
    """``(1, 3, H, W)`` float32 RGB in 0..1 (gray repeated), alpha left out."""
    import torch

    array = as_array(buffer, spec)
    colour = array[..., :3] if spec["channels"] >= 3 else np.repeat(array[..., :1], 3, axis=2)
    values = colour.astype(np.float32) / 255.0 if spec["dtype"] == "u8" else colour.astype(np.float32)
    if not np.isfinite(values).all():
        raise InputImageError("the image holds NaN or infinite values", hint="send pixels in 0..1")
    return torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1))).unsqueeze(0).clamp_(0, 1)


def from_result(rgb: Any, content: memoryview, spec: dict, dtype: str | None = None) -> tuple[bytes, dict]:
    """Encode a ``(1, 3, h, w)`` result in the content's layout and size, with the content's alpha.

    A method may return another size (e.g. ``max_size``); it is resized to the content's, since
    a filter writes back over the pixels it read.
    """
    from ..imaging.resize import resize_to

    height, width, channels = spec["height"], spec["width"], spec["channels"]
    dtype = dtype or spec["dtype"]
    if tuple(rgb.shape[-2:]) != (height, width):
        rgb = resize_to(rgb, (height, width)).clamp(0, 1)
    out = rgb[0].permute(1, 2, 0).numpy().astype(np.float32)
    if channels <= 2:
        out = (out * np.asarray(_LUMA, dtype=np.float32)).sum(axis=2, keepdims=True)
    source = as_array(content, spec)
    if channels in (2, 4):  # keep the content's alpha exactly
        alpha = source[..., -1:]
        if dtype != spec["dtype"]:
            alpha = alpha.astype(np.float32) / 255.0 if spec["dtype"] == "u8" else alpha * 255.0
        out = np.concatenate([_quantise(out, dtype), alpha.astype(_numpy_dtype(dtype))], axis=2)
    else:
        out = _quantise(out, dtype)
    layout = {"width": width, "height": height, "channels": channels, "dtype": dtype}
    return np.ascontiguousarray(out).tobytes(), layout


def _numpy_dtype(dtype: str) -> Any:
    return np.uint8 if dtype == "u8" else np.dtype("<f4")


def _quantise(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "u8":
        return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)
    return np.clip(values, 0, 1).astype("<f4")
