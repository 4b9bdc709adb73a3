"""The protocol of ``plugin_host serve``: its wire format and how to ask the server. Standard library only.

The host owns it; the GIMP bridge depends on it, never the other way: ``plugin_host gimp install`` copies
this file beside the bridge as ``phb_wire.py``, which the bridge imports (GIMP's Python has no plugin_host).

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

import http.client
import json
import struct

PROTOCOL = 1
MAGIC = b"PHJ1"
CONTENT_TYPE = "application/x-plugin-host-job"
DTYPE_SIZES = {"u8": 1, "f32": 4}
HEADER_LIMIT = 1 << 20  # a header is parameters and image specs: 1 MiB is plenty
LAST_EVENTS = ("result", "error", "cancelled")
CONNECT_TIMEOUT_S = 3.0


class WireError(ValueError):
    """A malformed request or response; the message says which part."""


def raw_image(data: bytes, width: int, height: int, channels: int, dtype: str = "u8") -> dict:
    """Describe a pixel buffer for :func:`encode_job` (checks its length)."""
    spec = {"width": int(width), "height": int(height), "channels": int(channels), "dtype": dtype}
    if len(data) != buffer_size(spec):
        raise WireError(f"{width}x{height}x{channels} {dtype} needs {buffer_size(spec)} bytes, got {len(data)}")
    return {"spec": spec, "data": data}


def buffer_size(spec: dict) -> int:
    if not isinstance(spec.get("dtype"), str) or spec["dtype"] not in DTYPE_SIZES:
        raise WireError(f"dtype must be one of {sorted(DTYPE_SIZES)}, got {shown(spec.get('dtype'))}")
    if not _is_whole(spec.get("channels")) or spec["channels"] not in (1, 2, 3, 4):
        raise WireError(f"channels must be 1 to 4, got {shown(spec.get('channels'))}")
    w, h = spec.get("width"), spec.get("height")
    if not (_is_whole(w) and _is_whole(h) and w > 0 and h > 0):
        raise WireError(f"width and height must be positive whole numbers, got {shown(w)} x {shown(h)}")
    return w * h * spec["channels"] * DTYPE_SIZES[spec["dtype"]]


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def shown(value: object, limit: int = 60) -> str:
    """A JSON value as an error message quotes it: short, whatever its size."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def image_specs(header: dict) -> list[tuple[str, dict]]:
    """``(field, spec)`` for every image in a job header, each a buffer or a path; raises WireError naming
    the field whose JSON type is wrong (``images.style[1].buffer``)."""
    images = header.get("images")
    if images is None:
        return []
    if not isinstance(images, dict):
        raise WireError(f"'images' must be an object of input names to images, got {shown(images)}")
    found = []
    for name, value in images.items():
        for i, spec in enumerate(value if isinstance(value, list) else [value]):
            field = f"images.{name}" + (f"[{i}]" if isinstance(value, list) else "")
            if not isinstance(spec, dict) or ("buffer" in spec) == ("path" in spec):
                raise WireError(f"'{field}' must be {{\"buffer\": N, \"width\": ..., \"height\": ..., "
                                f"\"channels\": ..., \"dtype\": ...}} or {{\"path\": \"FILE\"}}, got {shown(spec)}")
            if "path" in spec and not (isinstance(spec["path"], str) and spec["path"]):
                raise WireError(f"'{field}.path' must be a file name, got {shown(spec['path'])}")
            if "buffer" in spec and not (_is_whole(spec["buffer"]) and spec["buffer"] >= 0):
                raise WireError(f"'{field}.buffer' must be a whole number from 0, got {shown(spec['buffer'])}")
            found.append((field, spec))
    return found


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
    raw = sorted(((f, s) for f, s in image_specs(header) if "buffer" in s), key=lambda fs: fs[1]["buffer"])
    if [s["buffer"] for _, s in raw] != list(range(len(raw))):
        raise WireError("image buffers must be numbered 0, 1, 2, ... in order")
    buffers, offset = [], 8 + size
    for field, spec in raw:
        try:
            length = buffer_size(spec)
        except WireError as err:
            raise WireError(f"'{field}': {err}") from None
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


def request(info: dict, verb: str, path: str, body: bytes | None = None, content_type: str | None = None,
            timeout: float = CONNECT_TIMEOUT_S) -> tuple[int, object]:
    """One JSON request to the server a server file describes (``port``, ``token``); (HTTP status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", int(info["port"]), timeout=timeout)
    try:
        headers = {"Authorization": "Bearer " + str(info["token"])}
        if content_type:
            headers["Content-Type"] = content_type
        conn.request(verb, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data or b"null")
        except ValueError:
            return response.status, {"error": data[:500].decode("utf-8", "replace")}
    finally:
        conn.close()


def health(info: dict | None, timeout: float = CONNECT_TIMEOUT_S) -> dict | None:
    """The server's health answer, or None when nothing usable answers there."""
    if not info:
        return None
    try:
        status, data = request(info, "GET", "/v1/health", timeout=timeout)
    except (OSError, http.client.HTTPException):
        return None
    ok = status == 200 and isinstance(data, dict) and data.get("protocol") == PROTOCOL
    return data if ok else None
