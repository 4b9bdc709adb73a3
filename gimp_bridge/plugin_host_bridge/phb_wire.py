"""The wire format shared by the GIMP bridge and ``plugin_host serve``: standard library only.

A job request body is ``MAGIC``, a 4-byte big-endian header length, the JSON header, then
the raw pixel buffers back to back. Pixels are interleaved rows, top to bottom, as GEGL
hands them out: ``u8`` (0..255) or ``f32`` (little-endian float32, 0..1), 1 to 4 channels
(Y, YA, RGB, RGBA). That way GIMP's Python (no numpy, no PIL) sends what
``GeglBuffer.get`` returned and writes back what it receives, without touching a pixel.

The response is a stream of frames: one JSON object per line; a frame with ``"bytes": N``
is followed by N raw bytes (the result's pixels). The last frame is ``result``, ``error``
or ``cancelled``.
"""
from __future__ import annotations

import json
import struct

PROTOCOL = 1
MAGIC = b"PHJ1"
CONTENT_TYPE = "application/x-plugin-host-job"
DTYPE_SIZES = {"u8": 1, "f32": 4}
HEADER_LIMIT = 1 << 20  # a header is parameters and image specs: 1 MiB is plenty
LAST_EVENTS = ("result", "error", "cancelled")


class WireError(ValueError):
    """A malformed request or response; the message says which part."""


def raw_image(data: bytes, width: int, height: int, channels: int, dtype: str = "u8") -> dict:
    """Describe a pixel buffer for :func:`encode_job` (checks its length)."""
    spec = {"width": int(width), "height": int(height), "channels": int(channels), "dtype": dtype}
    if len(data) != buffer_size(spec):
        raise WireError(f"{width}x{height}x{channels} {dtype} needs {buffer_size(spec)} bytes, got {len(data)}")
    return {"spec": spec, "data": data}


def buffer_size(spec: dict) -> int:
    if spec.get("dtype") not in DTYPE_SIZES:
        raise WireError(f"dtype must be one of {sorted(DTYPE_SIZES)}, got {spec.get('dtype')!r}")
    if spec.get("channels") not in (1, 2, 3, 4):
        raise WireError(f"channels must be 1 to 4, got {spec.get('channels')!r}")
    w, h = spec.get("width"), spec.get("height")
    if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
        raise WireError(f"width and height must be positive whole numbers, got {w!r} x {h!r}")
    return w * h * spec["channels"] * DTYPE_SIZES[spec["dtype"]]


def encode_job(method: str, params: dict, images: dict, blend: dict | None = None,
               output: dict | None = None) -> bytes:
    """Build a request body.

    :param images: input name -> an image or a list of images; an image is either
        :func:`raw_image`'s result or ``{"path": "/file/the/host/reads.png"}``.
    :param output: e.g. ``{"dtype": "f32"}``; by default the result has the content's layout.
    """
    buffers: list[bytes] = []

    def spec_of(image: dict) -> dict:
        if "path" in image:
            return {"path": str(image["path"])}
        buffers.append(image["data"])
        return dict(image["spec"], buffer=len(buffers) - 1)

    specs = {name: [spec_of(i) for i in value] if isinstance(value, (list, tuple)) else spec_of(value)
             for name, value in images.items() if value is not None}
    header = {"protocol": PROTOCOL, "method": method, "params": params, "images": specs,
              "blend": blend or {}, "output": output or {}}
    text = json.dumps(header).encode("utf-8")
    return b"".join([MAGIC, struct.pack(">I", len(text)), text, *buffers])


def decode_job(body: bytes) -> tuple[dict, list[memoryview]]:
    """Split a request body into its header and buffers (checked against the header's specs)."""
    view = memoryview(body)
    if bytes(view[:4]) != MAGIC or len(view) < 8:
        raise WireError("not a plugin_host job (bad magic); is the client up to date?")
    (size,) = struct.unpack(">I", view[4:8])
    if size > HEADER_LIMIT or 8 + size > len(view):
        raise WireError(f"header length {size} is too large or past the end of the body")
    try:
        header = json.loads(bytes(view[8:8 + size]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WireError(f"header is not JSON: {err}") from None
    if not isinstance(header, dict) or header.get("protocol") != PROTOCOL:
        raise WireError(f"protocol {header.get('protocol') if isinstance(header, dict) else None!r} "
                        f"is not {PROTOCOL}; install the bridge again (plugin_host gimp install)")
    specs = [s for v in (header.get("images") or {}).values() for s in (v if isinstance(v, list) else [v])]
    raw = sorted((s for s in specs if isinstance(s, dict) and "buffer" in s), key=lambda s: s["buffer"])
    if [s["buffer"] for s in raw] != list(range(len(raw))):
        raise WireError("image buffers must be numbered 0, 1, 2, ... in order")
    buffers, offset = [], 8 + size
    for spec in raw:
        length = buffer_size(spec)
        buffers.append(view[offset:offset + length])
        offset += length
    if offset != len(view):
        raise WireError(f"body has {len(view)} bytes, the header describes {offset}")
    return header, buffers


def encode_frame(event: dict, payload: bytes | None = None) -> bytes:
    if payload is not None:
        event = dict(event, bytes=len(payload))
    line = json.dumps(event).encode("utf-8") + b"\n"
    return line + payload if payload is not None else line


def read_frames(stream):
    """Yield ``(event, payload)`` from a binary stream of frames until it ends."""
    while True:
        line = stream.readline()
        if not line:
            return
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            raise WireError(f"the host sent a line that is not JSON: {line[:200]!r}") from None
        payload = None
        if "bytes" in event:
            payload = _read_exactly(stream, int(event["bytes"]))
        yield event, payload
        if event.get("event") in LAST_EVENTS:
            return


def _read_exactly(stream, count: int) -> bytes:
    chunks, left = [], count
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise WireError(f"the host's reply ended {left} bytes early")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
