"""Raw interleaved pixel buffers (the wire format) to tensors and back.

Alpha never goes through the method: the result carries the content buffer's own alpha,
value for value, so GIMP writes back exactly the alpha it read. Each conversion is one strided
numpy pass and the result is returned as a view, not copied again: a 1-megapixel call spends
tens of milliseconds here, not hundreds.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputImageError

_LUMA = np.asarray((0.2126, 0.7152, 0.0722), dtype=np.float32).reshape(3, 1, 1)


def as_array(buffer: Any, spec: dict) -> np.ndarray:
    """``(H, W, C)`` view of a buffer without copying: uint8 or little-endian float32."""
    dtype = np.uint8 if spec["dtype"] == "u8" else np.dtype("<f4")
    return np.frombuffer(buffer, dtype=dtype).reshape(spec["height"], spec["width"], spec["channels"])


def to_tensor(buffer: Any, spec: dict) -> Any:
    """``(1, 3, H, W)`` float32 RGB in 0..1 (gray repeated), alpha left out."""
    import torch

    pixels = as_array(buffer, spec)
    colour = pixels[..., :3] if spec["channels"] >= 3 else np.broadcast_to(pixels[..., :1], pixels.shape[:2] + (3,))
    planar = np.array(colour.transpose(2, 0, 1), dtype=np.float32, order="C")  # one pass: gather + convert
    if spec["dtype"] == "u8":
        planar *= 1 / 255
    elif not np.isfinite(planar).all():
        raise InputImageError("the image holds NaN or infinite values", hint="send pixels in 0..1")
    return torch.from_numpy(planar).unsqueeze(0).clamp_(0, 1)


def from_result(rgb: Any, content: Any, spec: dict, dtype: str | None = None,
                keep_size: bool = False) -> tuple[memoryview, dict]:
    """Encode a ``(1, 3, h, w)`` result in the content's layout, with the content's alpha.

    A method may return another size (``max_size``, or a super-resolution method). By default it is
    resized to the content's, since a filter writes back over the pixels it read; with
    ``keep_size`` the result keeps its own size (for a new image) and the alpha is resized to it.
    ``content`` None (a method without a content image): ``spec`` gives channels and dtype, the result
    keeps its size and is opaque. Returns a byte view of the interleaved pixels.
    """
    import torch

    from ..imaging.resize import resize_to

    channels = spec["channels"]
    dtype = dtype or spec["dtype"]
    height, width = tuple(rgb.shape[-2:]) if keep_size or content is None else (spec["height"], spec["width"])
    if tuple(rgb.shape[-2:]) != (height, width):
        rgb = resize_to(rgb, (height, width))
    planar = np.clip(rgb[0].numpy(), 0, 1)
    if channels <= 2:
        planar = (planar * _LUMA).sum(axis=0, keepdims=True)
    if dtype == "u8":
        planar = np.rint(planar * 255)
    out = np.empty((height, width, channels), dtype=np.uint8 if dtype == "u8" else np.dtype("<f4"))
    out[..., :planar.shape[0]] = planar.transpose(1, 2, 0)  # one pass: scatter + convert
    if channels in (2, 4) and content is None:
        out[..., -1] = 255 if dtype == "u8" else 1.0
    elif channels in (2, 4):  # keep the content's alpha exactly (converted only if the dtype changes)
        alpha = as_array(content, spec)[..., -1]
        if (height, width) != (spec["height"], spec["width"]):  # a new size: resample the alpha too
            scale = 255.0 if spec["dtype"] == "u8" else 1.0
            small = torch.from_numpy(alpha.astype(np.float32) / scale)[None, None]
            alpha = resize_to(small, (height, width))[0, 0].clamp(0, 1).numpy() * scale
            alpha = np.rint(alpha) if spec["dtype"] == "u8" else alpha
        if dtype != spec["dtype"]:
            alpha = alpha / np.float32(255) if spec["dtype"] == "u8" else np.rint(alpha * 255)
        out[..., -1] = alpha
    layout = {"width": width, "height": height, "channels": channels, "dtype": dtype}
    return memoryview(out).cast("B"), layout
