"""``plugin_host serve``: a loopback HTTP server that keeps a Session (models, weights) warm.

Every request needs ``Authorization: Bearer <token>`` (the token is in the user-only server
file). Routes (all JSON unless noted):

- ``GET /v1/health``: version, protocol, device, precision, pid, methods, whether busy.
- ``GET /v1/methods``: the method descriptions, as ``plugin_host info METHOD --json``.
- ``POST /v1/jobs``: body in the wire format (``plugin_host.serve.wire``); the answer is a
  stream of frames (accepted, queued, started, stage, progress, heartbeat, then result, error or
  cancelled). Closing the connection cancels the job.
- ``GET /v1/jobs`` (recent jobs and their states), ``GET /v1/jobs/ID``, ``POST /v1/jobs/ID/cancel``;
  ``POST /v1/shutdown``.

Errors before a job is accepted are HTTP 4xx/5xx with ``{"error", "kind", "hint"}``: 401 before
anything else without the token, 405 with ``Allow`` for a verb a route does not take, 413 for a
body over ``--max-request-bytes`` (read and dropped, so the client hears the answer), 503 when
the queue or the connections are full. A request must arrive within ``request_timeout`` seconds.

Built on the standard library's ``http.server`` on purpose: the server is loopback-only, one
request per connection, and its one hard part (a job's frames streamed from a worker thread, with
the client's disconnect cancelling the job) is plain blocking code here. A WSGI server would
buffer that stream and hide the disconnect; an ASGI one would need the stream bridged into asyncio.
"""
from __future__ import annotations

import contextlib
import hmac
import json
import math
import os
import queue
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..errors import PluginHostError
from .jobs import STOP_TIMEOUT_S, Busy, Worker, internal_error, prepare

HEARTBEAT_S = 1.0
DEFAULT_MAX_REQUEST_BYTES = 1 << 30  # a 16-megapixel float RGBA layer is 256 MiB
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_CONNECTIONS = 32  # the bridge holds one per running or queued call, and one per health check
DEFAULT_REQUEST_TIMEOUT_S = 30.0  # to send a whole request; also the longest one read or write may stall
CLOSE_WAIT_S = 3.0  # on shutdown, how long open answers get to send their last frame


def describe_methods(registry: Any) -> list[dict]:
    """Every method's JSON description, model choices filled in (what ``info --json`` prints)."""
    return [registry.describe(name) for name in sorted(registry.methods)]


def allowed_verbs(parts: list[str]) -> tuple[str, ...]:
    """The verbs a route answers to; none for a path that is no route."""
    match parts:
        case ["v1", "health"] | ["v1", "methods"] | ["v1", "jobs", _]:
            return ("GET",)
        case ["v1", "jobs"]:
            return ("GET", "POST")
        case ["v1", "jobs", _, "cancel"] | ["v1", "shutdown"]:
            return ("POST",)
    return ()


class Server(HTTPServer):
    """One thread per connection, at most ``max_connections`` of them (more are answered 503 at once).
    A request must arrive whole within ``request_timeout`` seconds, and no read or write on a
    connection may stall longer, so a client that sends half a request and waits frees its thread."""

    allow_reuse_address = True

    def __init__(self, session: Any, token: str, port: int = 0, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_queue: int = 8,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S, threads: int | None = None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)  # loopback only, never a public interface
        self.session, self.token = session, token
        self.max_request_bytes, self.max_pixels = max_request_bytes, max_pixels
        self.max_connections, self.request_timeout = max_connections, request_timeout
        self.worker = Worker(session, max_queue=max_queue, threads=threads)
        self.last_activity = time.monotonic()
        self.active_requests = 0
        self._count_lock = threading.Lock()
        # open connection -> its thread, and when its request must have arrived (inf once it has)
        self._threads: dict[socket.socket, threading.Thread] = {}
        self._deadlines: dict[socket.socket, float] = {}

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def open_connections(self) -> int:
        with self._count_lock:
            return len(self._threads)

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

    # -- connections: a thread each, capped, with a deadline for the request ------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address),
                                  name="plugin_host-connection", daemon=True)
        with self._count_lock:
            full = len(self._threads) >= self.max_connections
            if not full:
                self._threads[request] = thread
                self._deadlines[request] = time.monotonic() + self.request_timeout
        if full:
            return self._refuse(request)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._count_lock:
                self._threads.pop(request, None)
                self._deadlines.pop(request, None)

    def _refuse(self, sock: socket.socket) -> None:
        """Answer 503 from the accepting thread, without a thread for the connection."""
        body = json.dumps({"error": f"the server already has {self.max_connections} open connections",
                           "kind": "busy", "hint": "try again in a moment"}).encode()
        head = (f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        try:
            sock.settimeout(0.05)
            try:  # the request, if it came already: read, it does not turn our answer into a reset
                sock.recv(1 << 16)
            except TimeoutError:
                pass
            sock.sendall(head + body)
        except OSError:
            pass
        self.shutdown_request(sock)

    def request_arrived(self, sock: socket.socket) -> None:
        """The whole request has been read: its deadline no longer applies (the answer may stream for long)."""
        with self._count_lock:
            if sock in self._deadlines:
                self._deadlines[sock] = math.inf

    def service_actions(self) -> None:
        """Run by ``serve_forever`` between polls: cut connections whose request is late, such as a
        client sending a byte now and then, which per-read timeouts alone would let hold a thread."""
        now = time.monotonic()
        with self._count_lock:
            late = [sock for sock, deadline in self._deadlines.items() if deadline < now]
            for sock in late:
                self._deadlines[sock] = math.inf
        for sock in late:
            _cut(sock)

    def stop(self) -> bool:
        """After ``serve_forever``: cancel the jobs and wait for the worker, let open answers send their
        last frame, cut the rest, close. Returns whether the worker ended (False: a method ignored its
        cancel for STOP_TIMEOUT_S, and the thread is still inside it)."""
        stopped = self.worker.stop(timeout=STOP_TIMEOUT_S)
        with self._count_lock:
            receiving = [sock for sock, deadline in self._deadlines.items() if deadline != math.inf]
        for sock in receiving:  # nothing accepted yet: no answer owed
            _cut(sock)
        deadline = time.monotonic() + CLOSE_WAIT_S
        for thread in self._open_threads():
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._count_lock:
            left = list(self._threads)
        for sock in left:
            _cut(sock)
        for thread in self._open_threads():
            thread.join(1.0)
        self.server_close()
        return stopped

    def _open_threads(self) -> list[threading.Thread]:
        with self._count_lock:
            return list(self._threads.values())


def _cut(sock: socket.socket) -> None:
    """End a connection from outside its thread: its blocked read returns at once."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = f"plugin_host/{__version__}"

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # applies to every read and write on the connection
        super().setup()
        self._answered = False  # status line sent: an error can no longer be answered as JSON
        self._body_done = False  # the declared body has been read (or discarded)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        if os.environ.get("PLUGIN_HOST_SERVER_LOG"):
            super().log_message(format, *args)

    def __getattr__(self, name: str) -> Callable[[], None]:
        # every verb, standard or made up, gets the same checks: the token first, then route and Allow
        if name.startswith("do_"):
            return lambda: self._dispatch(name[3:])
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (malformed request line, headers too long) as JSON too."""
        self.close_connection = True
        self._body_done = True  # the request could not even be parsed: nothing to skip
        self.request_version = "HTTP/1.0"  # a status line and headers even when the version was unreadable
        self._error(code, message or self.responses.get(code, ("error",))[0], "request")

    def _dispatch(self, verb: str) -> None:
        self.server.touch(+1)
        try:
            if self._declared_length() == 0:  # no body to wait for: the request is all here
                self._body_done = True
                self.server.request_arrived(self.connection)
            self._route(verb)
        except OSError:  # the client went away, or stalled past the timeout: nobody to answer
            self.close_connection = True
        except Exception as err:  # a bug in the server: answer it like a method's, with a log
            self.close_connection = True
            if not self._answered:
                with contextlib.suppress(OSError):
                    self._json(500, internal_error(self.server.session, "", err))
        finally:
            self.server.touch(-1)

    def _route(self, verb: str) -> None:
        if not self._authorised():
            return self._error(401, "missing or wrong token", "auth",
                               "send 'Authorization: Bearer TOKEN' with the token from the server file")
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        allowed = allowed_verbs(parts)
        if not allowed:
            return self._error(404, f"no route {verb[:20]} {self.path[:200]}", "not-found", "see GET /v1/health")
        if verb not in allowed:
            return self._error(405, f"{verb[:20]} is not allowed on {self.path[:200]}", "request",
                               f"use {' or '.join(allowed)}", headers={"Allow": ", ".join(allowed)})
        if parts == ["v1", "health"]:
            return self._json(200, self._health())
        if parts == ["v1", "methods"]:
            return self._json(200, describe_methods(self.server.session.registry))
        if parts == ["v1", "jobs"]:
            if verb == "POST":
                return self._job()
            return self._json(200, {"jobs": [{"job": j.id, "method": j.method, "state": j.state}
                                             for j in list(self.server.worker.jobs.values())]})
        if parts[:2] == ["v1", "jobs"] and len(parts) == 3:
            job = self.server.worker.jobs.get(parts[2])
            return self._json(200, {"job": job.id, "state": job.state}) if job else self._error(
                404, f"no job {parts[2][:100]!r}", "not-found")
        if parts[:2] == ["v1", "jobs"]:  # POST /v1/jobs/ID/cancel
            return self._json(200, {"job": parts[2], "cancelled": self.server.worker.cancel(parts[2])})
        self._json(200, {"stopping": True})  # POST /v1/shutdown
        self.server.shutdown_soon()

    def _authorised(self) -> bool:
        given = self.headers.get("Authorization", "")
        return given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), self.server.token.encode())

    def _declared_length(self) -> int | None:
        """The Content-Length: 0 when there is none, None when it is not a whole number of bytes."""
        text = (self.headers.get("Content-Length") or "0").strip()
        return int(text) if text.isascii() and text.isdigit() else None

    def _health(self) -> dict:
        session = self.server.session
        from .wire import PROTOCOL

        return {"ok": True, "version": __version__, "protocol": PROTOCOL, "pid": os.getpid(),
                "device": str(session.context.device),
                "precision": str(session.context.compute_dtype).removeprefix("torch."), "methods": sorted(session.registry.methods),
                "busy": self.server.worker.busy, "max_request_bytes": self.server.max_request_bytes,
                "max_pixels": self.server.max_pixels}

    def _job(self) -> None:
        from .wire import CONTENT_TYPE, WireError, decode_job, encode_frame

        length = self._declared_length()
        if length is None:
            self._body_done = True  # a body of unknown length cannot be skipped: answer and close
            self.close_connection = True
            return self._error(400, f"Content-Length must be a whole number of bytes, got "
                               f"{self.headers.get('Content-Length', '')[:40]!r}", "request")
        if "Content-Length" not in self.headers:
            return self._error(411, "the request has no Content-Length", "request")
        if length > self.server.max_request_bytes:  # answered, then read and dropped (see _discard_body)
            return self._error(413, f"request of {length} bytes is over the server's limit of "
                               f"{self.server.max_request_bytes}", "too-large",
                               "work on a smaller selection, or restart the server with a larger --max-request-bytes")
        if self.headers.get("Content-Type", "").split(";")[0].strip() != CONTENT_TYPE:
            return self._error(415, f"Content-Type must be {CONTENT_TYPE}", "request")
        body = self.rfile.read(length)
        self._body_done = True
        if len(body) < length:  # the client stopped sending (or was cut at the deadline)
            self.close_connection = True
            return self._error(400, f"the body ended after {len(body)} of {length} bytes", "request")
        self.server.request_arrived(self.connection)
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
        self._answered = True
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

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._answered = True
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()
        if not self._body_done:
            self._discard_body()

    def _error(self, status: int, message: str, kind: str, hint: str | None = None,
               headers: dict[str, str] | None = None) -> None:
        self._json(status, {"error": message, "kind": kind, "hint": hint}, headers)

    def _discard_body(self) -> None:
        """Read and drop the body of a request answered without it (too large, no token, wrong route).

        Closing a socket that still has unread data resets the connection: a client still sending
        would get a broken pipe instead of the answer waiting for it. The request's deadline bounds
        how long this may take.
        """
        self._body_done = True
        left = self._declared_length() or 0
        try:
            while left > 0:
                chunk = self.rfile.read1(min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass
        self.server.request_arrived(self.connection)


def serve_forever(server: Server, server_file: Path | None, idle_exit: float = 0) -> bool:
    """Publish the server file, serve until shutdown or ``idle_exit`` seconds without work, clean up.
    Returns whether every job's thread ended (see :meth:`Server.stop`)."""
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
        if server_file is not None:  # first, so that no new client finds a server that is stopping
            remove_server_file(server_file, os.getpid())
        stopped = server.stop()
    return stopped
