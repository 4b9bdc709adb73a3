"""The server under abuse: oversize and stalled requests, wrong JSON shapes, odd verbs, methods that
raise BaseExceptions, signals and shutdown. Every client gets an answer; the server keeps serving.

Toy methods come from ``serve_child.py`` (no weights); the signal tests run it as a child process.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from serve_child import toy_plugin

CHILD = Path(__file__).with_name("serve_child.py")
TOKEN = "secret-token"


@pytest.fixture(scope="module")
def registry():
    from plugin_host.plugins import load_registry

    return load_registry(extra_plugins=[("serve_toys", toy_plugin())])


@pytest.fixture
def serve(make_server, registry):
    """A server with the toy methods; returns (server, info for the bridge's client)."""
    def start(**limits):
        server, path = make_server(registry, **limits)
        return server, json.loads(path.read_text())
    return start


def rgba(w, h):
    return bytes((x * 7 + y * 11 + c * 50) % 256 for y in range(h) for x in range(w) for c in range(4))


def job_body(wire, method="quick", params=None, w=4, h=3, **images):
    return wire.encode_job(method, params or {}, {"content": wire.raw_image(rgba(w, h), w, h, 4), **images})


def raw_request(port, head: bytes, body: bytes = b"", timeout=5.0) -> tuple[int, dict, bytes]:
    """Send bytes on a plain socket; returns (status, headers, body) of the answer, read to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(1 << 16):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    header_text, _, content = rest.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in header_text.decode().split("\r\n") if ": " in line)
    return int(status_line.split()[1]), headers, content


def post_head(length, token=TOKEN, content_type="application/x-plugin-host-job") -> bytes:
    return (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n").encode()


# -- oversize bodies ------------------------------------------------------------------------------

def test_an_oversize_body_is_answered_413_with_its_hint_not_a_broken_pipe(serve, bridge_modules):
    client, wire = bridge_modules.client, bridge_modules.wire
    _, info = serve(max_request_bytes=1000)
    big = wire.encode_job("quick", {}, {"content": wire.raw_image(bytes(4_000_000), 1000, 1000, 4)})  # 4 MB:
    # more than the socket buffers hold while nobody reads
    with pytest.raises(client.HostError) as err:  # the bridge's own client, not knowing the limit
        client.run_job(info, big)
    assert err.value.kind == "too-large" and "over the server's limit of 1000" in err.value.message
    assert "--max-request-bytes" in err.value.hint
    status, _, content = raw_request(info["port"], post_head(len(big)), big)  # a plain socket, all sent
    assert status == 413 and json.loads(content)["kind"] == "too-large"
    status, _, content = raw_request(info["port"], post_head(len(big), token="wrong"), big)
    assert status == 401 and json.loads(content)["kind"] == "auth"  # refused unread, still answered


# -- stalled and slow clients -----------------------------------------------------------------------

def _stall(port, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head)
    return sock


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_stalled_connections_are_freed_and_a_normal_client_still_answered(serve, bridge_modules):
    client = bridge_modules.client
    server, info = serve(request_timeout=0.5, max_connections=3)
    port = info["port"]
    status, _, content = raw_request(port, post_head(-1) + b"PHJ1")  # waits for nothing: answered at once
    assert status == 400 and "Content-Length" in json.loads(content)["error"]
    assert _wait(lambda: server.open_connections == 0)  # that connection released (under load it can lag)
    stalled = [_stall(port, post_head(500) + b"PHJ1"),  # a partial body
               _stall(port, post_head(500)),  # headers, no body
               _stall(port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")]  # headers never finished
    assert _wait(lambda: server.open_connections == 3)
    status, body = client.request(info, "GET", "/v1/health")  # over the cap: a clear answer, not a wait
    assert status == 503 and body["kind"] == "busy" and "3 open connections" in body["error"]
    for sock in stalled:  # each is closed by the server at its deadline (an answer if it can still get one)
        answer = b""
        while chunk := sock.recv(1 << 16):
            answer += chunk
        sock.close()
        assert answer == b"" or answer.startswith(b"HTTP/1.0 400"), answer[:200]
    assert _wait(lambda: server.open_connections == 0)
    assert client.health(info)["ok"] is True


def test_a_request_sent_a_byte_at_a_time_is_cut_at_its_deadline(serve):
    server, info = serve(request_timeout=0.6)
    sock = socket.create_connection(("127.0.0.1", info["port"]), timeout=5)
    started = time.monotonic()
    head = post_head(100)
    with pytest.raises(OSError):  # each byte comes within the read timeout; the whole request does not
        for i in range(100):
            sock.sendall(head[i % len(head):i % len(head) + 1])
            time.sleep(0.1)
    sock.close()
    assert time.monotonic() - started < 4 and _wait(lambda: server.open_connections == 0)


# -- wrong JSON shapes -------------------------------------------------------------------------------

def _header_with(wire, **changes):
    body = job_body(wire)
    (size,) = struct.unpack(">I", body[4:8])
    header = json.loads(body[8:8 + size])
    for key, value in changes.items():
        target, name = (header["images"]["content"], key[6:]) if key.startswith("image_") else (header, key)
        if value is ...:
            del target[name]
        else:
            target[name] = value
    text = json.dumps(header).encode()
    pixels = body[8 + size:] if b'"buffer"' in text else b""
    return wire.MAGIC + struct.pack(">I", len(text)) + text + pixels


BUFFER = {"buffer": 0, "width": 4, "height": 3, "channels": 4, "dtype": "u8"}


@pytest.mark.parametrize("changes,field", [
    ({"params": [1, 2]}, "'params'"),
    ({"params": "steps=2"}, "'params'"),
    ({"images": [BUFFER]}, "'images'"),
    ({"images": "content.png"}, "'images'"),
    ({"images": {"content": "content.png"}}, "'images.content'"),
    ({"images": {"content": [BUFFER, {"path": "more.png"}]}}, "'images.content'"),
    ({"images": {"content": [BUFFER], "style": [7]}}, "'images.style[0]'"),
    ({"image_buffer": 0.0}, "'images.content.buffer'"),
    ({"image_buffer": "0"}, "'images.content.buffer'"),
    ({"image_buffer": -1}, "'images.content.buffer'"),
    ({"image_width": 4.0}, "'images.content'"),
    ({"image_channels": True}, "'images.content'"),
    ({"image_dtype": ["u8"]}, "'images.content'"),
    ({"images": {"content": {"path": 3}}}, "'images.content.path'"),
    ({"blend": [1, 2]}, "'blend'"),
    ({"blend": {"style": "1,2"}}, "'blend.style'"),
    ({"blend": {"style": [1, "2"]}}, "'blend.style'"),
    ({"output": "f32"}, "'output'"),
    ({"output": {"dtype": "u16"}}, "'output.dtype'"),
    ({"output": {"size": 2}}, "'output.size'"),
    ({"method": ["quick"]}, "'method'"),
    ({"method": ...}, "'method'"),
    ({"images": {}}, "'images.content'"),
])
def test_a_header_of_the_wrong_shape_gets_400_naming_the_field(serve, bridge_modules, changes, field):
    client, wire = bridge_modules.client, bridge_modules.wire
    _, info = serve()
    status, body = client.request(info, "POST", "/v1/jobs", _header_with(wire, **changes), wire.CONTENT_TYPE)
    assert status == 400 and body["kind"] == "request" and field in body["error"], body


def test_images_given_by_path_are_held_to_the_servers_pixel_limit(serve, bridge_modules, tmp_path):
    from PIL import Image

    client, wire = bridge_modules.client, bridge_modules.wire
    _, info = serve(max_pixels=100_000)
    Image.new("RGB", (500, 400), "red").save(tmp_path / "large.png")
    Image.new("RGB", (200, 100), "red").save(tmp_path / "small.png")
    with pytest.raises(client.HostError) as err:
        client.run_job(info, job_body(wire, "styled", style=[{"path": str(tmp_path / "large.png")}]))
    assert err.value.kind == "input" and "large.png" in err.value.message and "100,000" in err.value.message
    assert "--max-pixels" in err.value.hint
    layout, _ = client.run_job(info, job_body(wire, "styled", style=[{"path": str(tmp_path / "small.png")}]))
    assert (layout["width"], layout["height"]) == (4, 3)


# -- methods that raise BaseExceptions --------------------------------------------------------------

@pytest.mark.parametrize("raised", ["SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"])
def test_a_method_raising_any_base_exception_fails_its_job_and_the_worker_goes_on(serve, bridge_modules, raised):
    client, wire = bridge_modules.client, bridge_modules.wire
    server, info = serve()
    with pytest.raises(client.HostError) as err:
        client.run_job(info, job_body(wire, "raiser", {"kind": raised}))
    assert err.value.kind == "internal" and raised in err.value.message and "serve_toys" in err.value.message
    layout, pixels = client.run_job(info, job_body(wire, "quick"))  # the next job runs
    assert layout["width"] == 4 and pixels[3::4] == rgba(4, 3)[3::4]
    assert server.worker.alive and _wait(lambda: not server.worker.busy)  # it clears up just after the frame


# -- verbs, malformed requests ------------------------------------------------------------------------

@pytest.mark.parametrize("verb", ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "BREW"])
def test_other_verbs_get_json_405_with_allow_and_401_first_without_a_token(serve, verb):
    _, info = serve()
    for path, allow in (("/v1/jobs", "GET, POST"), ("/v1/health", "GET"), ("/v1/jobs/j1/cancel", "POST")):
        for token, expected in ((TOKEN, 405), (None, 401)):
            conn = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=5)
            conn.request(verb, path, headers={"Authorization": f"Bearer {token}"} if token else {})
            response = conn.getresponse()
            content = response.read()
            conn.close()
            assert response.status == expected and response.getheader("Content-Type") == "application/json"
            assert response.getheader("Allow") == (allow if expected == 405 else None)
            if verb == "HEAD":
                assert content == b""
            else:
                assert json.loads(content)["kind"] == ("request" if expected == 405 else "auth")


def test_a_malformed_request_line_gets_a_json_error(serve):
    _, info = serve()
    status, headers, content = raw_request(info["port"], b"GET /v1/health HTTP/9\r\n\r\n")
    assert status in (400, 505) and headers["Content-Type"] == "application/json"
    assert json.loads(content)["kind"] == "request"


def test_a_bug_in_the_server_is_answered_500_with_a_log(serve, bridge_modules, monkeypatch):
    from plugin_host.serve import httpd

    def broken(registry):
        raise RuntimeError("described badly")

    _, info = serve()
    monkeypatch.setattr(httpd, "describe_methods", broken)
    status, body = bridge_modules.client.request(info, "GET", "/v1/methods")
    assert status == 500 and body["kind"] == "internal" and "RuntimeError: described badly" in body["error"]
    assert "traceback is in" in body["hint"]
    assert bridge_modules.client.health(info)["ok"] is True


# -- options ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option", [["--port", "99999"], ["--port", "-1"], ["--max-queue", "-1"],
                                    ["--max-pixels", "0"], ["--max-request-bytes", "0"], ["--idle-exit", "-1"],
                                    ["--stdio", "--max-pixels", "-5"]])
def test_impossible_server_options_are_refused_with_one_line(registry, capsys, option):
    from plugin_host.cli import main

    assert main(["serve", *option], registry=registry) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: {option[-2]} {option[-1]} is out of range"), err


# -- stdio and signals: child processes ----------------------------------------------------------------

def _child(*args, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(CHILD), *args], env=env, **kwargs)


def test_stdio_leaves_no_worker_thread_behind(registry):
    import io

    from plugin_host.progress import CancelToken
    from plugin_host.runner import Session
    from plugin_host.serve.jobs import WORKER_THREAD
    from plugin_host.serve.stdio import run_stdio
    from plugin_host.serve import wire

    def workers():
        return {t for t in threading.enumerate() if t.name == WORKER_THREAD}

    out, before = io.BytesIO(), workers()
    body = job_body(wire, "spin", {"steps": 2, "size": 32})
    assert run_stdio(Session(registry, device="cpu"), CancelToken(), 1 << 20, 10_000, io.BytesIO(body), out) == 0
    assert [e["event"] for e, _ in wire.read_frames(io.BytesIO(out.getvalue()))][-1] == "result"
    assert workers() <= before  # joined, not left running into the interpreter's exit


def test_stdio_exits_0_after_its_last_frame(bridge_modules):
    wire = bridge_modules.wire
    body = job_body(wire, "spin", {"steps": 2, "size": 128})
    for _ in range(2):  # it aborted now and then (not always) when its worker thread was left running
        child = _child("serve", "--stdio", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = child.communicate(body, timeout=120)
        frames = [json.loads(line) for line in out.split(b"\n") if line.startswith(b"{")]
        assert child.returncode == 0 and frames[-1]["event"] == "result", err.decode()[-800:]
        assert b"terminate called" not in err


def test_stdio_sigterm_during_its_job_ends_with_cancelled_and_130(bridge_modules):
    wire = bridge_modules.wire
    child = _child("serve", "--stdio", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdin.write(job_body(wire, "spin", {"steps": 100_000, "size": 256}))
    child.stdin.close()
    frames = []
    for line in child.stdout:  # frames arrive as the job runs: signal once, when it is under way
        frames.append(json.loads(line)["event"])
        if frames.count("progress") == 1 and frames[-1] == "progress":
            child.send_signal(signal.SIGTERM)
    code, err = child.wait(timeout=60), child.stderr.read()
    assert code == 130 and frames[-1] == "cancelled" and b"terminate called" not in err, (frames, err[-800:])


def _start_server(tmp_path):
    server_file = tmp_path / "server.json"
    child = _child("serve", "--server-file", str(server_file), stderr=subprocess.PIPE)
    assert _wait(lambda: server_file.exists() or child.poll() is not None, timeout=120), "no server file"
    return child, json.loads(server_file.read_text()), server_file


def _run_in_thread(client, info, body):
    events = []

    def run():
        try:
            events.append(client.run_job(info, body, events.append))
        except client.HostError as err:
            events.append(err)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert _wait(lambda: any(isinstance(e, dict) and e.get("event") == "progress" for e in events), timeout=60)
    return thread, events


@pytest.mark.parametrize("signals", [1, 2], ids=["sigterm", "sigterm-twice"])
def test_sigterm_while_a_job_runs_cancels_it_and_exits_130(bridge_modules, tmp_path, signals):
    client, wire = bridge_modules.client, bridge_modules.wire
    child, info, server_file = _start_server(tmp_path)
    thread, events = _run_in_thread(client, info, job_body(wire, "spin", {"steps": 100_000, "size": 256}))
    for _ in range(signals):  # a second one while stopping: leave at once, still no abort
        child.send_signal(signal.SIGTERM)
        time.sleep(0.05)
    code = child.wait(timeout=60)
    err = child.stderr.read().decode()
    thread.join(10)
    assert code == 130 and "terminate called" not in err, err[-800:]
    assert isinstance(events[-1], client.Cancelled if signals == 1 else client.HostError)  # the client heard
    assert not server_file.exists()
