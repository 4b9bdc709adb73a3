"""The warm server: token, limits, progress, queue, cancel, pixel layouts, and real methods."""
from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time

import pytest


def rgba(w, h):
    return bytes(v for y in range(h) for x in range(w) for v in (x * 7 % 256, y * 11 % 256, 90, 40 + x % 200))


def job(wire, method="slow", params=None, w=8, h=6, data=None, channels=4, dtype="u8", **images):
    data = data if data is not None else rgba(w, h)
    return wire.encode_job(method, params or {}, {"content": wire.raw_image(data, w, h, channels, dtype), **images})


def read_info(path):
    return json.loads(path.read_text())


def test_server_file_is_user_only_and_names_port_and_token(make_server):
    server, path = make_server()
    info = read_info(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert (info["port"], info["token"], info["pid"]) == (server.port, "secret-token", os.getpid())


def test_every_request_needs_the_token(make_server, bridge_modules):
    client = bridge_modules.client
    _, path = make_server()
    info = read_info(path)
    for token in ("wrong", ""):
        status, body = client.request(dict(info, token=token), "GET", "/v1/health")
        assert status == 401 and body["kind"] == "auth" and "Bearer" in body["hint"]
    assert client.health(dict(info, token="wrong")) is None
    health = client.health(info)
    assert {"gatys", "adain", "slow", "twice"} <= set(health["methods"])
    assert health["precision"] in ("float32", "bfloat16")


def test_methods_are_described_exactly_as_info_json(make_server, bridge_modules, toy_registry, capsys):
    from plugin_host.cli import main

    _, path = make_server()
    status, methods = bridge_modules.client.request(read_info(path), "GET", "/v1/methods")
    main(["info", "slow", "--json"], registry=toy_registry)
    assert status == 200
    assert next(m for m in methods if m["name"] == "slow") == json.loads(capsys.readouterr().out)


def test_a_job_streams_progress_then_the_result_with_alpha_untouched(make_server, bridge_modules):
    wire, client = bridge_modules.wire, bridge_modules.client
    _, path = make_server()
    events = []
    data = rgba(8, 6)
    layout, pixels = client.run_job(read_info(path), job(wire, params={"steps": 3}, data=data), events.append)
    kinds = [e["event"] for e in events]
    assert kinds[:3] == ["accepted", "queued", "started"] and "stage" in kinds
    assert [e["step"] for e in events if e["event"] == "progress"][-1] == 3
    assert layout["width"] == 8 and layout["height"] == 6 and layout["channels"] == 4 and layout["dtype"] == "u8"
    assert pixels[3::4] == data[3::4]
    for c in range(3):
        assert pixels[c::4] == bytes(255 - v for v in data[c::4])


def test_float_buffers_come_back_as_floats_not_quantised(make_server, bridge_modules):
    import array

    wire, client = bridge_modules.wire, bridge_modules.client
    _, path = make_server()
    values = array.array("f", [((i * 37) % 1000) / 999.0 for i in range(5 * 4 * 4)])
    layout, pixels = client.run_job(read_info(path), job(wire, w=5, h=4, data=values.tobytes(), dtype="f32"))
    out = array.array("f", pixels)
    assert layout["dtype"] == "f32"
    assert all(abs(out[i] - (1 - values[i])) < 1e-6 for i in range(len(values)) if i % 4 != 3)
    assert out[3::4] == values[3::4]


def test_gray_with_alpha_stays_gray_with_alpha(make_server, bridge_modules):
    wire, client = bridge_modules.wire, bridge_modules.client
    _, path = make_server()
    data = bytes(v for i in range(12) for v in (i * 20, 255 - i))
    layout, pixels = client.run_job(read_info(path), job(wire, w=4, h=3, data=data, channels=2))
    assert layout["channels"] == 2 and pixels[1::2] == data[1::2]
    assert all(abs(p - (255 - v)) <= 1 for p, v in zip(pixels[0::2], data[0::2]))


def test_a_result_of_another_size_is_fitted_back_unless_the_client_keeps_it(make_server, bridge_modules):
    wire, client = bridge_modules.wire, bridge_modules.client
    _, path = make_server()
    data = rgba(4, 3)
    layout, pixels = client.run_job(read_info(path), job(wire, method="twice", w=4, h=3, data=data))
    assert (layout["width"], layout["height"]) == (4, 3) and pixels[3::4] == data[3::4]  # fitted back
    assert max(abs(a - b) for a, b in zip(pixels, data)) <= 8  # 2x up, then antialiased back down
    body = wire.encode_job("twice", {}, {"content": wire.raw_image(data, 4, 3, 4)}, output={"size": "result"})
    layout, pixels = client.run_job(read_info(path), body)
    assert (layout["width"], layout["height"]) == (8, 6) and len(pixels) == 8 * 6 * 4
    assert pixels[(1 * 8 + 2) * 4:(1 * 8 + 2) * 4 + 4] == data[4:8]  # pixel (1, 0) now covers (2..3, 0..1)
    assert pixels[3::4][:2] == bytes([data[3]]) * 2  # alpha follows the new size


@pytest.mark.parametrize("method,params,words", [
    ("slow", {"steps": -1}, ["parameter 'steps'", "from 1 to 10000"]),
    ("slow", {"stepz": 2}, ["did you mean 'steps'"]),
    ("slw", {}, ["did you mean 'slow'"]),
])
def test_bad_requests_get_the_hosts_own_message(make_server, bridge_modules, method, params, words):
    wire, client = bridge_modules.wire, bridge_modules.client
    _, path = make_server()
    with pytest.raises(client.HostError) as err:
        client.run_job(read_info(path), job(wire, method=method, params=params))
    assert all(w in str(err.value) for w in words), str(err.value)


def test_limits_on_request_size_and_pixels(make_server, bridge_modules):
    wire, client = bridge_modules.wire, bridge_modules.client
    _, small = make_server(max_request_bytes=1000)
    with pytest.raises(client.HostError) as err:
        client.run_job(read_info(small), job(wire, w=20, h=20))
    assert err.value.kind == "too-large" and "1000" in err.value.message and err.value.hint
    with pytest.raises(client.HostError) as early:  # a client that knows the limit does not even send it
        client.run_job(dict(read_info(small), health={"max_request_bytes": 1000}), job(wire, w=20, h=20))
    assert early.value.message == err.value.message and early.value.kind == "too-large"
    _, few = make_server(max_pixels=100)
    with pytest.raises(client.HostError) as err:
        client.run_job(read_info(few), job(wire, w=20, h=20))
    assert "400 pixels is over the server's limit of 100" in err.value.message


def test_malformed_bodies_and_unknown_routes_get_json_errors(make_server, bridge_modules):
    client, wire = bridge_modules.client, bridge_modules.wire
    _, path = make_server()
    info = read_info(path)
    status, body = client.request(info, "POST", "/v1/jobs", b"nonsense!", wire.CONTENT_TYPE)
    assert status == 400 and "bad magic" in body["error"]
    status, body = client.request(info, "GET", "/v2/everything")
    assert status == 404 and body["kind"] == "not-found"


def _start(client, info, body, events):
    thread = threading.Thread(target=lambda: events.append(_outcome(client, info, body, events)), daemon=True)
    thread.start()
    return thread


def _outcome(client, info, body, events):
    try:
        return ("done", client.run_job(info, body, events.append))
    except client.HostError as err:
        return (err.kind, str(err))


def _wait_for(events, kind, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in list(events):
            if isinstance(e, dict) and e.get("event") == kind:
                return e
        time.sleep(0.01)
    raise AssertionError(f"no {kind!r} event in {events}")


def test_one_job_at_a_time_the_next_waits_in_the_queue(make_server, bridge_modules):
    wire, client = bridge_modules.wire, bridge_modules.client
    server, path = make_server(max_queue=1)
    info = read_info(path)
    first, second = [], []
    a = _start(client, info, job(wire, params={"steps": 10_000, "delay": 0.01}), first)  # runs until cancelled
    first_id = _wait_for(first, "started")["job"]
    b = _start(client, info, job(wire, params={"steps": 1}), second)
    assert _wait_for(second, "queued")["position"] == 1
    with pytest.raises(client.HostError) as err:  # the queue holds one: a third is refused
        client.run_job(info, job(wire))
    assert err.value.kind == "busy"
    time.sleep(0.3)
    assert not any(isinstance(e, dict) and e["event"] == "started" for e in second), "ran beside the first"
    client.request(info, "POST", f"/v1/jobs/{first_id}/cancel")
    a.join(10), b.join(10)
    assert first[-1][0] == "cancelled" and second[-1][0] == "done"
    kinds = [e["event"] for e in second if isinstance(e, dict)]
    assert kinds.index("started") > kinds.index("queued")


def test_cancel_by_job_id_stops_the_running_job(make_server, bridge_modules):
    wire, client = bridge_modules.wire, bridge_modules.client
    server, path = make_server()
    info = read_info(path)
    events = []
    thread = _start(client, info, job(wire, params={"steps": 10_000, "delay": 0.01}), events)
    job_id = _wait_for(events, "started")["job"]
    status, body = client.request(info, "POST", f"/v1/jobs/{job_id}/cancel")
    thread.join(5)
    assert status == 200 and body["cancelled"] is True
    assert events[-1][0] == "cancelled"
    assert server.worker.jobs[job_id].state == "cancelled"
    status, listing = client.request(info, "GET", "/v1/jobs")
    assert {"job": job_id, "method": "slow", "state": "cancelled"} in listing["jobs"]


def test_a_client_that_goes_away_cancels_its_job(make_server, bridge_modules):
    wire = bridge_modules.wire
    server, path = make_server()
    info = read_info(path)
    body = job(wire, params={"steps": 10_000, "delay": 0.01})
    sock = socket.create_connection(("127.0.0.1", info["port"]), timeout=5)
    sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret-token\r\n"
                 b"Content-Type: " + wire.CONTENT_TYPE.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    stream = sock.makefile("rb")
    while stream.readline() not in (b"\r\n", b""):  # status line and headers
        pass
    job_id = json.loads(stream.readline())["job"]
    stream.close()
    sock.close()  # what happens when GIMP kills a plug-in whose progress the user cancelled
    deadline = time.monotonic() + 5
    while server.worker.jobs[job_id].state != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.worker.jobs[job_id].state == "cancelled"


def test_idle_exit_stops_the_server_and_removes_its_file(toy_registry, tmp_path):
    from plugin_host.runner import Session
    from plugin_host.serve.httpd import Server, serve_forever

    server = Server(Session(toy_registry, device="cpu"), "t")
    path = tmp_path / "server.json"
    thread = threading.Thread(target=serve_forever, args=(server, path), kwargs={"idle_exit": 0.2}, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive() and not path.exists()


@pytest.mark.parametrize("threads, policy_calls", [(None, 1), (1, 0)])
def test_thread_count_is_chosen_before_each_job_unless_given(make_server, bridge_modules, monkeypatch, threads,
                                                              policy_calls):
    import plugin_host.threads

    calls = []
    monkeypatch.setattr(plugin_host.threads, "threads_for_next_job", lambda: calls.append(1) or 1)
    wire, client = bridge_modules.wire, bridge_modules.client
    _, path = make_server(threads=threads)
    client.run_job(read_info(path), job(wire, params={"steps": 1}), lambda event: None)
    assert len(calls) == policy_calls
