"""A method without a content input (a generator) over the wire and in the bridge's arguments (no GIMP)."""
from __future__ import annotations

import io
import types

import pytest


def _picture(inputs, params, ctx):
    import torch

    ctx.progress.stage("draw", total=1)
    ramp = torch.linspace(0, 1, 7)
    ctx.progress.advance()
    return torch.stack([ramp.expand(5, 7), ramp.flip(0).expand(5, 7), torch.full((5, 7), params.level)])[None]


@pytest.fixture(scope="module")
def generator_registry():
    from plugin_host import FloatParam, Method, Schema, hookimpl
    from plugin_host.plugins import load_registry

    plugin = types.ModuleType("toy_generator")
    plugin.register_methods = hookimpl(lambda register: register(Method(
        name="ramp", title="Ramp", description="a 7×5 picture", inputs=(),
        schema=Schema((FloatParam("level", default=0.5, min=0.0, max=1.0),)), run=_picture, menu="Render",
        creates_image=True)))
    return load_registry(entry_points=[], extra_plugins=[("toy_generator", plugin)])


def _run(session, body, wire):
    from plugin_host.progress import CancelToken
    from plugin_host.serve.stdio import run_stdio

    out = io.BytesIO()
    code = run_stdio(session, CancelToken(), 1 << 20, 10_000, stdin=io.BytesIO(body), stdout=out)
    out.seek(0)
    return code, out


def test_a_generator_answers_an_opaque_picture_at_its_own_size(generator_registry, bridge_modules):
    from plugin_host.runner import Session

    wire, client = bridge_modules.wire, bridge_modules.client
    session = Session(generator_registry, device="cpu")
    code, out = _run(session, wire.encode_job("ramp", {"level": 0.2}, {}, output={"size": "result"}), wire)
    layout, pixels = client.finish(wire.read_frames(out))
    assert code == 0 and {k: layout[k] for k in ("width", "height", "channels", "dtype")} == \
        {"width": 7, "height": 5, "channels": 4, "dtype": "u8"}
    assert set(pixels[3::4]) == {255} and set(pixels[2::4]) == {51} and pixels[0:8:4] == bytes([0, 42])
    code, out = _run(session, wire.encode_job("ramp", {}, {}, output={"dtype": "f32"}), wire)
    layout, pixels = client.finish(wire.read_frames(out))
    assert layout["dtype"] == "f32" and len(pixels) == 7 * 5 * 4 * 4
    given = wire.encode_job("ramp", {}, {"content": wire.raw_image(bytes(4 * 6), 2, 3, 4)})
    code, out = _run(session, given, wire)
    with pytest.raises(client.HostError, match="has no input named 'content'"):
        client.finish(wire.read_frames(out))


def test_the_bridge_offers_a_generator_a_new_image_or_a_new_layer(bridge_modules, generator_registry):
    from plugin_host.serve.httpd import describe_methods

    args = bridge_modules.args
    ramp = next(m for m in describe_methods(generator_registry) if m["name"] == "ramp")
    assert not args.reads_layer(ramp) and args.reads_layer({"inputs": [{"name": "content", "role": "content"}]})
    output = next(s for s in args.argument_specs(ramp) if s["name"] == "output-mode")
    assert [c[0] for c in output["choices"]] == ["new-image", "new-layer"] and output["default"] == "new-image"
    assert args.collect(ramp, {}) == {"params": {"level": 0.5}, "images": {}, "blend": {}, "masks": {},
                                      "output": "new-image"}
    assert args.collect(ramp, {"output-mode": "new-layer"})["output"] == "new-layer"
    assert args.menu_path(ramp) == "<Image>/Filters/Render/Neural Style"
