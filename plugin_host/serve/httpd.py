"""``plugin_host serve``: a loopback HTTP server that keeps a Session (models, weights) warm.

Every request needs ``Authorization: Bearer <token>`` (the token is in the user-only server
file). Routes (all JSON unless noted):

- ``GET /v1/health``: version, protocol, device, precision, pid, methods, whether busy.
- ``GET /v1/methods``: the method descriptions, as ``plugin_host info METHOD --json``.
- ``POST /v1/jobs``: body in the wire format (``plugin_host_gimp.phb_wire``); the answer is a
  stream of frames (accepted, queued, started, stage, progress, heartbeat, then result, error or
  cancelled). Closing the connection cancels the job.
- ``GET /v1/jobs`` (recent jobs and their states), ``GET /v1/jobs/ID``, ``POST /v1/jobs/ID/cancel``;
  ``POST /v1/shutdown``.

Errors before a job is accepted are HTTP 4xx/5xx with ``{"error", "kind", "hint"}``.
"""
from __future__ import annotations

import hmac
import json
import os
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import PluginHostError
from .jobs import Busy, Worker, prepare

HEARTBEAT_S = 1.0
DEFAULT_MAX_REQUEST_BYTES = 1 << 30  # a 16-megapixel float RGBA layer is 256 MiB
DEFAULT_MAX_PIXELS = 50_000_000


def describe_methods(registry: Any) -> list[dict]:
    """Every method's JSON description, model choices filled in (what ``info --json`` prints)."""
    models = registry.model_names()
    described = []
    for name in sorted(registry.methods):
        data = registry.methods[name].method.to_json()
        for param in data["params"]:
            if param["kind"] == "model":
                param["choices"] = models.get(param["model_kind"], [])
        described.append(data)
    return described


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, session: Any, token: str, port: int = 0, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_queue: int = 8) -> None:
        super().__init__(("127.0.0.1", port), _Handler)  # loopback only, never a public interface
        self.session, self.token = session, token
        self.max_request_bytes, self.max_pixels = max_request_bytes, max_pixels
        self.worker = Worker(session, max_queue=max_queue)
        self.last_activity = time.monotonic()
        self.active_requests = 0
        self._count_lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def touch(self, delta: int = 0) -> None:
        with self._count_lock:
            self.active_requests += delta
            self.last_activity = time.monotonic()

    def idle_for(self) -> float:
        if self.worker.busy or self.active_requests:
            return 0.0
        return time.monotonic() - self.last_activity

    def shutdown_soon(self) -> None:
        threading.Thread(target=self.shutdown, daemon=True).start()


class _Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = f"plugin_host/{__version__}"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        if os.environ.get("PLUGIN_HOST_SERVER_LOG"):
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, verb: str) -> None:
        self.server.touch(+1)
        try:
            if not self._authorised():
                return self._error(401, "missing or wrong token", "auth",
                                   "send 'Authorization: Bearer TOKEN' with the token from the server file")
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            route = (verb, *parts)
            if route == ("GET", "v1", "health"):
                return self._json(200, self._health())
            if route == ("GET", "v1", "methods"):
                return self._json(200, describe_methods(self.server.session.registry))
            if route == ("POST", "v1", "jobs"):
                return self._job()
            if route == ("GET", "v1", "jobs"):
                return self._json(200, {"jobs": [{"job": j.id, "method": j.method, "state": j.state}
                                                 for j in list(self.server.worker.jobs.values())]})
            if len(parts) == 3 and parts[:2] == ["v1", "jobs"] and verb == "GET":
                job = self.server.worker.jobs.get(parts[2])
                return self._json(200, {"job": job.id, "state": job.state}) if job else self._error(
                    404, f"no job {parts[2]!r}", "not-found")
            if len(parts) == 4 and parts[:2] == ["v1", "jobs"] and parts[3] == "cancel" and verb == "POST":
                ok = self.server.worker.cancel(parts[2])
                return self._json(200, {"job": parts[2], "cancelled": ok})
            if route == ("POST", "v1", "shutdown"):
                self._json(200, {"stopping": True})
                return self.server.shutdown_soon()
            self._error(404, f"no route {verb} {self.path}", "not-found", "see GET /v1/health")
        finally:
            self.server.touch(-1)

    def _authorised(self) -> bool:
        given = self.headers.get("Authorization", "")
        return given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), self.server.token.encode())

    def _health(self) -> dict:
        session = self.server.session
        from plugin_host_gimp.phb_wire import PROTOCOL

        return {"ok": True, "version": __version__, "protocol": PROTOCOL, "pid": os.getpid(),
                "device": str(session.context.device),
                "precision": str(session.context.compute_dtype).removeprefix("torch."), "methods": sorted(session.registry.methods),
                "busy": self.server.worker.busy, "max_request_bytes": self.server.max_request_bytes,
                "max_pixels": self.server.max_pixels}

    def _job(self) -> None:
        from plugin_host_gimp.phb_wire import CONTENT_TYPE, WireError, decode_job, encode_frame

        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._error(411, "the request has no Content-Length", "request")
        if length > self.server.max_request_bytes:
            self.close_connection = True  # do not read a body we refuse
            return self._error(413, f"request of {length} bytes is over the server's limit of "
                               f"{self.server.max_request_bytes}", "too-large",
                               "work on a smaller selection, or restart the server with a larger --max-request-bytes")
        if self.headers.get("Content-Type", "").split(";")[0].strip() != CONTENT_TYPE:
            return self._error(415, f"Content-Type must be {CONTENT_TYPE}", "request")
        body = self.rfile.read(length)
        try:
            header, buffers = decode_job(body)
            job = prepare(self.server.session, header, buffers, self.server.max_pixels)
            worker = self.server.worker
            worker.submit(job)
        except WireError as err:
            return self._error(400, str(err), "request")
        except Busy as err:
            return self._json(503, err.to_json())
        except PluginHostError as err:
            return self._json(400, err.to_json())
        self.send_response(200)
        self.send_header("Content-Type", "application/x-plugin-host-frames")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.close_connection = True  # the stream ends when the connection does
        try:
            self._write(encode_frame({"event": "accepted", "job": job.id}))
            while True:
                try:
                    event, payload = job.events.get(timeout=HEARTBEAT_S)
                except queue.Empty:  # also how a vanished client is noticed: the write fails
                    event, payload = {"event": "heartbeat", "job": job.id, "state": job.state,
                                      "position": worker.position(job)}, None
                self._write(encode_frame(event if payload is None else dict(event, bytes=len(payload))))
                if payload is not None:
                    self._write(payload)  # written as is: no 16 MiB concatenation
                if event["event"] in ("result", "error", "cancelled"):
                    return
        except OSError:  # the client went away (e.g. GIMP closed the plug-in): stop its job
            job.cancel.cancel()

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, kind: str, hint: str | None = None) -> None:
        self._json(status, {"error": message, "kind": kind, "hint": hint})


def serve_forever(server: Server, server_file: Path | None, idle_exit: float = 0) -> None:
    """Publish the server file, serve until shutdown or ``idle_exit`` seconds without work, clean up."""
    from .state import remove_server_file, write_server_file

    if server_file is not None:
        write_server_file(server_file, {"url": f"http://127.0.0.1:{server.port}", "port": server.port,
                                        "token": server.token, "pid": os.getpid(), "version": __version__,
                                        "device": str(server.session.context.device)})
    if idle_exit > 0:
        def watch() -> None:
            while True:
                time.sleep(min(idle_exit, 5.0))
                if server.idle_for() >= idle_exit:
                    return server.shutdown()
        threading.Thread(target=watch, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.worker.stop()
        server.server_close()
        if server_file is not None:
            remove_server_file(server_file, os.getpid())
