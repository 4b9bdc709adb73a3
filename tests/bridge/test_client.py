"""The bridge's client without a server: messages for the user, frames to outcomes, the host command."""
from __future__ import annotations

import io

import pytest


def frames(wire, *events):
    return wire.read_frames(io.BytesIO(b"".join(wire.encode_frame(*e) if isinstance(e, tuple) else
                                                 wire.encode_frame(e) for e in events)))


def test_an_error_frame_becomes_the_hosts_message_and_hint(bridge_modules):
    wire, client = bridge_modules.wire, bridge_modules.client
    seen = []
    with pytest.raises(client.HostError) as err:
        client.finish(frames(wire, {"event": "progress", "step": 1},
                             {"event": "error", "error": "weights file missing", "kind": "weights",
                              "hint": "run plugin_host weights fetch vgg"}), seen.append)
    assert str(err.value) == "weights file missing\nHint: run plugin_host weights fetch vgg"
    assert err.value.kind == "weights" and seen == [{"event": "progress", "step": 1}]


def test_results_cancels_and_truncated_streams(bridge_modules):
    wire, client = bridge_modules.wire, bridge_modules.client
    layout, pixels = client.finish(frames(wire, ({"event": "result", "width": 1}, b"\x01\x02")))
    assert layout["width"] == 1 and pixels == b"\x01\x02"
    with pytest.raises(client.Cancelled):
        client.finish(frames(wire, {"event": "cancelled"}))
    with pytest.raises(client.HostError, match="stopped without a result") as err:
        client.finish(frames(wire, {"event": "started"}))
    assert err.value.kind == "protocol"


def test_the_host_command_comes_from_the_install_or_the_environment(bridge_modules, monkeypatch):
    client = bridge_modules.client
    monkeypatch.delenv("PLUGIN_HOST_COMMAND", raising=False)
    assert client.host_command(["/venv/bin/plugin_host"]) == ["/venv/bin/plugin_host"]
    monkeypatch.setenv("PLUGIN_HOST_COMMAND", "/opt/py -m plugin_host")
    assert client.host_command(["/venv/bin/plugin_host"]) == ["/opt/py", "-m", "plugin_host"]
    monkeypatch.delenv("PLUGIN_HOST_COMMAND")
    with pytest.raises(client.HostError, match="plugin_host gimp install"):
        client.host_command(None)


def test_a_stale_or_foreign_server_file_is_not_trusted(bridge_modules, tmp_path):
    client = bridge_modules.client
    path = tmp_path / "server.json"
    path.write_text('{"port": 1, "token": "x", "pid": 1}')  # nothing listens on port 1
    assert client.health(client.read_server_file(str(path))) is None
    path.write_text("not json")
    assert client.read_server_file(str(path)) is None
