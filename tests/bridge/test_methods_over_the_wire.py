"""Real methods through the server and the one-shot path, and starting a server on demand."""
from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
import types

import pytest


def gradient(w, h):
    return bytes(v for y in range(h) for x in range(w) for v in (x * 255 // w, y * 255 // h, 128, 255 - x * 3))


@pytest.fixture(scope="module")
def tiny_adain_registry(tmp_path_factory):
    """The installed plugins plus a random width-1/4 decoder for the default encoder (fast, not pretty)."""
    import torch

    from plugin_host import UrlSource, WeightsEntry, hookimpl
    from plugin_host.plugins import load_registry
    from plugin_host.training import export_model
    from plugin_host_adain.net import Decoder

    path = tmp_path_factory.mktemp("decoder") / "adain-decoder-wire.pth"
    torch.manual_seed(0)
    export_model(path, Decoder("vgg16", width=0.25), {"encoder": "vgg16-caffe-hed", "architecture": "vgg16",
                                                      "width": 0.25}, dtype=torch.float32)
    entry = WeightsEntry("adain-decoder-wire", path.name, "adain-decoder", "vgg16", "caffe",
                         UrlSource(path.as_uri()), None, extra={"encoder": "vgg16-caffe-hed"})
    plugin = types.ModuleType("wire_decoder")
    plugin.register_weights = hookimpl(lambda register: register(entry))
    return load_registry(extra_plugins=[("wire_decoder", plugin)])


def _changed_with_alpha_kept(data, pixels):
    assert pixels[3::4] == data[3::4], "alpha must come back untouched"
    return sum(abs(a - b) > 3 for a, b in zip(pixels, data)) / (len(data) * 3 / 4)


def test_gatys_and_adain_through_the_warm_server(make_server, bridge_modules, tiny_adain_registry, default_encoder,
                                                 tmp_path):
    from PIL import Image

    wire, client = bridge_modules.wire, bridge_modules.client
    _, path = make_server(tiny_adain_registry)
    info = json.loads(path.read_text())
    data, style = gradient(24, 16), gradient(16, 16)[::-1]
    Image.new("RGB", (20, 20), (200, 30, 30)).save(tmp_path / "style.png")

    body = wire.encode_job("gatys", {"iterations": 2, "max_size": 16},  # a smaller result is resized back
                           {"content": wire.raw_image(data, 24, 16, 4), "style": [{"path": str(tmp_path / "style.png")}]})
    layout, pixels = client.run_job(info, body)
    assert (layout["width"], layout["height"]) == (24, 16)
    assert _changed_with_alpha_kept(data, pixels) > 0.5

    results = []
    for params in ({"max_size": 0, "strength": 0.8}, {"content_size": 0, "alpha": 0.8}):  # former names: one release
        body = wire.encode_job("adain", {"decoder": "adain-decoder-wire", **params},
                               {"content": wire.raw_image(data, 24, 16, 4),
                                "style": [wire.raw_image(style, 16, 16, 4), wire.raw_image(data, 24, 16, 4)],
                                "mask": [wire.raw_image(bytes([255] * 12 + [0] * 12) * 16, 24, 16, 1),
                                         wire.raw_image(bytes([0] * 12 + [255] * 12) * 16, 24, 16, 1)]},
                               blend={"style": [1, 1]})
        layout, pixels = client.run_job(info, body)
        assert _changed_with_alpha_kept(data, pixels) > 0.5
        results.append(pixels)
    assert results[0] == results[1]


def test_one_shot_stdio_speaks_the_same_frames(toy_registry, bridge_modules):
    from plugin_host.progress import CancelToken
    from plugin_host.runner import Session
    from plugin_host.serve.stdio import run_stdio

    wire = bridge_modules.wire
    session = Session(toy_registry, device="cpu")
    data = gradient(6, 5)
    out = io.BytesIO()
    code = run_stdio(session, CancelToken(), 1 << 20, 10_000,
                     stdin=io.BytesIO(wire.encode_job("slow", {"steps": 2}, {"content": wire.raw_image(data, 6, 5, 4)})),
                     stdout=out)
    out.seek(0)
    layout, pixels = bridge_modules.client.finish(wire.read_frames(out))
    assert code == 0 and layout["channels"] == 4 and pixels[0::4] == bytes(255 - v for v in data[0::4])

    out = io.BytesIO()
    code = run_stdio(session, CancelToken(), 1 << 20, 10_000, stdin=io.BytesIO(b"garbage"), stdout=out)
    out.seek(0)
    with pytest.raises(bridge_modules.client.HostError, match="bad magic"):
        bridge_modules.client.finish(wire.read_frames(out))
    assert code == 2


def test_the_bridge_starts_a_server_when_none_runs_and_reuses_it(bridge_modules, tmp_path, capsys):
    """What the plug-in does on its first call: start ``plugin_host serve`` detached, wait for it.
    Then the CLI: ``serve --status``, a second ``serve`` refused, ``serve --stop``, and SIGTERM."""
    from plugin_host.cli import main

    client = bridge_modules.client
    server_file = tmp_path / "run" / "server.json"
    command = [sys.executable, "-m", "plugin_host"]
    info = client.connect(str(server_file), command, wait_s=60)
    assert client.connect(str(server_file), command, start=False)["pid"] == info["pid"]
    assert oct((tmp_path / "run").stat().st_mode & 0o777) == "0o700"
    where = ["--server-file", str(server_file)]
    assert main(["serve", "--status", *where]) == 0 and json.loads(capsys.readouterr().out)["running"] is True
    assert main(["serve", *where]) == 2
    assert "a server is already running" in capsys.readouterr().err
    assert main(["serve", "--stop", *where]) == 0 and f"pid {info['pid']}" in capsys.readouterr().out
    _wait_gone(server_file)
    with pytest.raises(client.HostError, match="start one with `plugin_host serve`"):
        client.connect(str(server_file), command, start=False)

    info = client.connect(str(server_file), command, wait_s=60)
    os.kill(info["pid"], signal.SIGTERM)  # Ctrl-C and SIGTERM stop it cleanly, file removed
    _wait_gone(server_file)


def _wait_gone(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not path.exists(), "the server did not remove its file on the way out"


def test_one_shot_fallback_reports_the_hosts_error(bridge_modules):
    wire, client = bridge_modules.wire, bridge_modules.client
    body = wire.encode_job("gatys", {"iterations": 0}, {"content": wire.raw_image(gradient(4, 4), 4, 4, 4)})
    with pytest.raises(client.HostError) as err:
        client.run_once([sys.executable, "-m", "plugin_host"], body)
    assert "parameter 'iterations'" in err.value.message and err.value.kind == "parameter"


def test_an_unrunnable_host_command_is_a_clear_error(bridge_modules, tmp_path):
    client = bridge_modules.client
    with pytest.raises(client.HostError, match="cannot start /nonexistent/plugin_host") as err:
        client.connect(str(tmp_path / "s.json"), ["/nonexistent/plugin_host"])
    assert "gimp doctor" in err.value.hint
