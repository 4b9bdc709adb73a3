"""A warm server on a thread, with a controllable toy method beside the real ones.

``slow`` advances one step every ``delay`` seconds and checks cancel between steps, so queue,
progress and cancel can be tested in well under a second.
"""
from __future__ import annotations

import sys
import threading
import time
import types
from pathlib import Path

import pytest

from plugin_host import Method, hookimpl
from plugin_host.schema import FloatParam, ImageInput, IntParam, Schema

BRIDGE = Path(__file__).resolve().parents[2] / "gimp_bridge" / "plugin_host_bridge"


def slow_run(inputs, params, ctx):
    ctx.progress.stage("work", total=params.steps)
    for _ in range(params.steps):
        ctx.cancel.raise_if_cancelled()
        time.sleep(params.delay)
        ctx.progress.advance()
    return 1 - inputs["content"]  # an inverse: easy to check exactly


def twice_run(inputs, params, ctx):
    return inputs["content"].repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2)  # like a 2x upscaler


def _register(register):
    register(Method(name="slow", title="Slow inverse", description="inverts, one step at a time",
                    inputs=(ImageInput("content"),),
                    schema=Schema((IntParam("steps", default=3, min=1, max=10_000),
                                   FloatParam("delay", default=0.01, min=0.0, max=5.0))),
                    run=slow_run))
    register(Method(name="twice", title="Twice as large", description="enlarges 2x", menu="Enhance",
                    inputs=(ImageInput("content"),), schema=Schema(), run=twice_run))


def _slow_plugin():
    plugin = types.ModuleType("slow_plugin")
    plugin.register_methods = hookimpl(_register)
    return plugin


@pytest.fixture(scope="session")
def bridge_modules():
    """The plug-in's helpers imported as GIMP imports them: top-level modules from its folder, with the
    host's wire format as ``phb_wire`` (``gimp install`` copies it there)."""
    from plugin_host.serve import wire

    sys.path.insert(0, str(BRIDGE))
    sys.modules["phb_wire"] = wire
    import phb_args
    import phb_client
    import phb_wire

    yield types.SimpleNamespace(args=phb_args, client=phb_client, wire=phb_wire)
    sys.path.remove(str(BRIDGE))


@pytest.fixture(scope="session")
def toy_registry():
    from plugin_host.plugins import load_registry

    return load_registry(extra_plugins=[("slow_plugin", _slow_plugin())])


@pytest.fixture
def make_server(toy_registry, tmp_path):
    """Start a server on a thread; yields a factory, stops every server it made."""
    from plugin_host.runner import Session
    from plugin_host.serve.httpd import Server, serve_forever

    made = []

    def make(registry=None, **limits):
        session = Session(registry or toy_registry, device="cpu", seed=0)
        server = Server(session, "secret-token", **limits)
        path = tmp_path / f"server-{len(made)}.json"
        thread = threading.Thread(target=serve_forever, args=(server, path), daemon=True)
        thread.start()
        for _ in range(100):
            if path.exists():
                break
            time.sleep(0.01)
        made.append((server, thread))
        return server, path

    yield make
    for server, thread in made:
        server.shutdown()
        thread.join(5)
