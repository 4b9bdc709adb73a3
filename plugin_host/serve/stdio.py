"""``plugin_host serve --stdio``: one job from stdin, frames to stdout, then exit.

The GIMP bridge's fallback when no server can run: the same wire format as ``POST /v1/jobs``,
without a socket, at the cost of loading torch and the models for every call.
"""
from __future__ import annotations

import queue
import sys
from typing import IO, Any

from ..errors import ExitCode, PluginHostError
from ..progress import CancelToken


def run_stdio(session: Any, cancel: CancelToken, max_request_bytes: int, max_pixels: int,
              stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None, threads: int | None = None) -> int:
    from .wire import WireError, decode_job, encode_frame

    from .httpd import HEARTBEAT_S
    from .jobs import STOP_TIMEOUT_S, Worker, prepare

    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer

    def send(event: dict, payload: Any = None) -> None:
        stdout.write(encode_frame(event if payload is None else dict(event, bytes=len(payload))))
        if payload is not None:
            stdout.write(payload)
        stdout.flush()

    body = stdin.read(max_request_bytes + 1)
    try:
        if len(body) > max_request_bytes:
            raise WireError(f"request is over the limit of {max_request_bytes} bytes")
        job = prepare(session, *decode_job(body), max_pixels)
    except WireError as err:
        send({"event": "error", "error": str(err), "kind": "request", "hint": None})
        return ExitCode.USAGE
    except PluginHostError as err:
        send({"event": "error", **err.to_json()})
        return ExitCode.USAGE
    job.cancel = cancel  # Ctrl-C / SIGTERM reach the job
    worker = Worker(session, max_queue=1, threads=threads)
    worker.submit(job)
    send({"event": "accepted", "job": job.id})
    try:
        while True:
            try:
                event, payload = job.events.get(timeout=HEARTBEAT_S)
            except queue.Empty:  # a heartbeat also notices a caller that went away (GIMP killed it)
                event, payload = {"event": "heartbeat", "job": job.id, "state": job.state}, None
            send(event, payload)
            if event["event"] in ("result", "error", "cancelled"):
                break
    except (BrokenPipeError, OSError):  # the caller went away: stop the job
        cancel.cancel()
        return ExitCode.CANCELLED
    finally:
        worker.stop(timeout=STOP_TIMEOUT_S)  # joined: a thread left inside torch at exit aborts the process
    return {"result": ExitCode.OK, "cancelled": ExitCode.CANCELLED}.get(event["event"], ExitCode.USAGE)

