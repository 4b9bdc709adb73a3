"""The wire format both sides share (no server, no GIMP)."""
from __future__ import annotations

import io
import struct

import pytest


def test_a_job_round_trips_with_buffers_in_order(bridge_modules):
    wire = bridge_modules.wire
    content, style = bytes(range(24)), bytes(range(100, 148))
    body = wire.encode_job("gatys", {"iterations": 3}, {
        "content": wire.raw_image(content, 3, 2, 4),
        "style": [{"path": "/tmp/s.png"}, wire.raw_image(style, 2, 2, 3, "f32")],
    }, blend={"style": [1, 2]})
    header, buffers = wire.decode_job(body)
    assert header["method"] == "gatys" and header["params"] == {"iterations": 3}
    assert header["images"]["style"][0] == {"path": "/tmp/s.png"}
    assert header["images"]["style"][1] == {"width": 2, "height": 2, "channels": 3, "dtype": "f32", "buffer": 1}
    assert bytes(buffers[0]) == content and bytes(buffers[1]) == style
    assert header["blend"] == {"style": [1, 2]}


@pytest.mark.parametrize("mangle,message", [
    (lambda b: b"XXXX" + b[4:], "bad magic"),
    (lambda b: b[:-1], "the header describes"),
    (lambda b: b + b"!", "the header describes"),
    (lambda b: b[:4] + struct.pack(">I", 1 << 30) + b[8:], "too large"),
])
def test_damaged_bodies_are_refused_with_a_reason(bridge_modules, mangle, message):
    wire = bridge_modules.wire
    body = wire.encode_job("m", {}, {"content": wire.raw_image(bytes(16), 2, 2, 4)})
    with pytest.raises(wire.WireError, match=message):
        wire.decode_job(mangle(body))


def test_other_protocol_versions_say_to_reinstall(bridge_modules):
    wire = bridge_modules.wire
    text = b'{"protocol": 99, "images": {}}'
    with pytest.raises(wire.WireError, match="plugin_host gimp install"):
        wire.decode_job(wire.MAGIC + struct.pack(">I", len(text)) + text)


@pytest.mark.parametrize("args,message", [
    ((bytes(15), 2, 2, 4), "needs 16 bytes, got 15"),
    ((bytes(16), 2, 2, 5), "channels must be 1 to 4"),
    ((bytes(16), 0, 2, 4), "positive whole numbers"),
    ((bytes(16), 2, 2, 4, "u16"), "dtype must be one of"),
])
def test_raw_image_checks_its_layout(bridge_modules, args, message):
    with pytest.raises(bridge_modules.wire.WireError, match=message):
        bridge_modules.wire.raw_image(*args)


def test_frames_carry_json_events_and_raw_payloads(bridge_modules):
    wire = bridge_modules.wire
    stream = io.BytesIO(wire.encode_frame({"event": "progress", "step": 1})
                        + wire.encode_frame({"event": "result", "width": 1}, b"\n\x00\xff\n")
                        + wire.encode_frame({"event": "after the end"}))
    frames = list(wire.read_frames(stream))
    assert frames == [({"event": "progress", "step": 1}, None),
                      ({"event": "result", "width": 1, "bytes": 4}, b"\n\x00\xff\n")]


def test_a_truncated_payload_is_an_error_not_a_short_image(bridge_modules):
    wire = bridge_modules.wire
    stream = io.BytesIO(wire.encode_frame({"event": "result"}, b"12345678")[:-3])
    with pytest.raises(wire.WireError, match="3 bytes early"):
        list(wire.read_frames(stream))
