"""Talk to the host: find or start the warm server, run a job with progress, or run it one-shot.

Standard library only (GIMP's Python has no numpy, torch or requests). Every failure becomes
a :class:`HostError` whose text is the host's own message plus its hint, ready to show the user.
"""
from __future__ import annotations

import http.client
import json
import os
import shlex
import subprocess
import tempfile
import time

import phb_wire  # the host's wire format (plugin_host/serve/wire.py), copied here by `plugin_host gimp install`

CONNECT_TIMEOUT_S = phb_wire.CONNECT_TIMEOUT_S
READ_TIMEOUT_S = 60.0  # the server sends a heartbeat every second while a job runs
#: One JSON request to the server, and its health answer: the host's, as the wire format defines them.
request, health = phb_wire.request, phb_wire.health


class HostError(Exception):
    """A failure to show the user as is: ``message``, optional ``hint``, ``kind`` from the host.

    A bad parameter also has ``param`` (its name) and ``detail`` (the message without the name), so
    the dialog can name it by its label (:func:`phb_args.error_message`).
    """

    def __init__(self, message: str, hint: str | None = None, kind: str = "error", param: str | None = None,
                 detail: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint, self.kind = message, hint, kind
        self.param, self.detail = param, detail

    def __str__(self) -> str:
        return self.message + (f"\nHint: {self.hint}" if self.hint else "")

    @classmethod
    def from_json(cls, data: dict, fallback: str = "the host failed") -> "HostError":
        param, detail = data.get("param"), data.get("detail")
        return cls(str(data.get("error") or fallback), data.get("hint"), str(data.get("kind") or "error"),
                   param if isinstance(param, str) else None, detail if isinstance(detail, str) else None)


class Cancelled(HostError):
    def __init__(self) -> None:
        super().__init__("cancelled", kind="cancelled")


def host_command(recorded: list[str] | None) -> list[str]:
    """``$PLUGIN_HOST_COMMAND`` (shell words), else the command recorded at install time."""
    override = os.environ.get("PLUGIN_HOST_COMMAND")
    command = shlex.split(override) if override else list(recorded or [])
    if not command:
        raise HostError("no plugin_host command is known to the GIMP bridge",
                        "run `plugin_host gimp install` again from the environment that has plugin_host")
    return command


def read_server_file(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        return info if isinstance(info, dict) and "port" in info and "token" in info else None
    except (OSError, ValueError):
        return None


def connect(server_file: str, command: list[str], start: bool = True, wait_s: float = 120.0,
            idle_exit_s: int = 1800) -> dict:
    """A running server's info, starting one (in the background, detached) if none answers."""
    info = read_server_file(server_file)
    answer = health(info)
    if answer:
        return dict(info, health=answer)  # type: ignore[arg-type]
    if not start:
        raise HostError("no plugin_host server is running", "start one with `plugin_host serve`")
    log_path = os.path.splitext(server_file)[0] + ".log"
    os.makedirs(os.path.dirname(server_file) or ".", mode=0o700, exist_ok=True)
    fresh = not os.path.exists(log_path) or os.path.getsize(log_path) > 1 << 20  # keep the log small
    with open(log_path, "wb" if fresh else "ab") as log:
        try:
            child = subprocess.Popen([*command, "serve", "--server-file", server_file,
                                      "--idle-exit", str(idle_exit_s)],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        except OSError as err:
            raise HostError(f"cannot start {command[0]}: {err}",
                            "check the recorded command with `plugin_host gimp doctor`") from None
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        info = read_server_file(server_file)
        answer = health(info) if info and info.get("pid") == child.pid else None
        if answer:
            return dict(info, health=answer)
        if child.poll() is not None:
            raise HostError(f"the plugin_host server exited with code {child.returncode}: {_tail(log_path)}",
                            f"its log is {log_path}")
        time.sleep(0.1)
    child.terminate()
    raise HostError(f"the plugin_host server did not answer within {wait_s:.0f} s", f"its log is {log_path}")


def run_job(info: dict, body: bytes, on_event=None) -> tuple[dict, bytes]:
    """Send a job to the server; ``on_event(event)`` sees every progress frame; returns (layout, pixels)."""
    limit = (info.get("health") or {}).get("max_request_bytes")
    if limit and len(body) > limit:  # say so before sending what the server would refuse unread
        raise HostError(f"request of {len(body)} bytes is over the server's limit of {limit}",
                        "work on a smaller selection, or restart the server with a larger --max-request-bytes",
                        "too-large")
    conn = http.client.HTTPConnection("127.0.0.1", int(info["port"]), timeout=READ_TIMEOUT_S)
    try:
        conn.request("POST", "/v1/jobs", body=body, headers={
            "Authorization": "Bearer " + str(info["token"]), "Content-Type": phb_wire.CONTENT_TYPE})
        response = conn.getresponse()
        if response.status != 200:
            data = response.read()
            try:
                raise HostError.from_json(json.loads(data))
            except ValueError:
                raise HostError(f"the server answered HTTP {response.status}: {data[:300]!r}") from None
        return finish(phb_wire.read_frames(response), on_event)
    except (OSError, http.client.HTTPException) as err:
        raise HostError(f"lost the connection to the plugin_host server: {err}",
                        "see its log next to the server file; the next call starts a new one") from None
    finally:
        conn.close()


def run_once(command: list[str], body: bytes, on_event=None, timeout_s: float | None = None) -> tuple[dict, bytes]:
    """The fallback without a server: one ``plugin_host serve --stdio`` process per call."""
    with tempfile.TemporaryFile() as errors, tempfile.TemporaryFile() as request_file:
        request_file.write(body)
        request_file.seek(0)
        try:
            child = subprocess.Popen([*command, "serve", "--stdio"], stdin=request_file, stdout=subprocess.PIPE,
                                     stderr=errors)
        except OSError as err:
            raise HostError(f"cannot start {command[0]}: {err}",
                            "check the recorded command with `plugin_host gimp doctor`") from None
        try:
            return finish(phb_wire.read_frames(child.stdout), on_event)
        except HostError as err:
            if err.kind == "protocol":
                errors.seek(0)
                err.message += ": " + errors.read()[-1500:].decode("utf-8", "replace").strip()
            raise
        finally:
            child.stdout.close()
            try:
                child.wait(timeout=timeout_s or 30)
            except subprocess.TimeoutExpired:
                child.kill()


def finish(frames, on_event=None) -> tuple[dict, bytes]:
    """Consume frames up to the last one; returns (result layout, pixels) or raises HostError."""
    try:
        for event, payload in frames:
            kind = event.get("event")
            if kind == "result":
                return event, payload or b""
            if kind == "error":
                raise HostError.from_json(event)
            if kind == "cancelled":
                raise Cancelled()
            if on_event is not None:
                on_event(event)
    except phb_wire.WireError as err:
        raise HostError(str(err), kind="protocol") from None
    raise HostError("the host stopped without a result", kind="protocol")


def _tail(path: str, size: int = 1500) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return "(no log)"
