"""Arguments and handlers of ``plugin_host serve`` and ``plugin_host gimp install|uninstall|doctor``.

Kept out of :mod:`plugin_host.cli` so that module only wires them in; nothing here imports torch
until a server actually starts.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ExitCode, PluginHostError


def add_commands(commands: Any) -> None:
    from ..precision import PRECISION_CHOICES
    from .httpd import DEFAULT_MAX_PIXELS, DEFAULT_MAX_REQUEST_BYTES

    serve = commands.add_parser("serve", help="keep models warm for the GIMP bridge (loopback HTTP server)",
                                description="A local server that keeps models loaded between calls. It listens on "
                                            "127.0.0.1 only and requires the token from its user-only server file.")
    mode = serve.add_mutually_exclusive_group()
    mode.add_argument("--status", action="store_true", help="say whether a server is running, as JSON")
    mode.add_argument("--stop", action="store_true", help="stop the running server")
    mode.add_argument("--stdio", action="store_true",
                      help="run one job read from stdin, write frames to stdout (the bridge's fallback)")
    serve.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: any free port)")
    serve.add_argument("--server-file", type=Path,
                       help="where to publish port and token (default: the user's runtime folder, "
                            "or $PLUGIN_HOST_SERVER_FILE)")
    serve.add_argument("--idle-exit", type=float, default=0, metavar="SECONDS",
                       help="stop after this long without requests (default 0: never)")
    serve.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="largest image accepted, in pixels")
    serve.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES,
                       help="largest request body accepted")
    serve.add_argument("--max-queue", type=int, default=8, help="jobs that may wait behind the running one")
    serve.add_argument("--device", default="auto", help="cpu|cuda|mps|auto (default auto)")
    serve.add_argument("--seed", type=int, help="seed every job (bit-identical results on the CPU)")
    serve.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                       help="network arithmetic: auto is bf16 where the hardware runs it natively, else fp32")
    serve.add_argument("--threads", type=int,
                       help="CPU threads torch may use per job (default: before each job, the CPUs that other "
                            "programs leave free, so a busy GIMP keeps its core)")

    gimp = commands.add_parser("gimp", help="install, remove or check the GIMP 3 plug-in")
    actions = gimp.add_subparsers(dest="gimp_command", metavar="ACTION", required=True)
    for name, text in (("install", "put the bridge into GIMP's plug-ins folder and record this host command"),
                       ("uninstall", "remove the bridge from GIMP's plug-ins folder"),
                       ("doctor", "check an installed bridge and say what is wrong")):
        sub = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sub.add_argument("--gimp-dir", type=Path,
                         help="GIMP 3 profile folder holding plug-ins/ (default: $GIMP3_DIRECTORY or the "
                              "platform's GIMP/3.0 folder)")


def cmd_serve(args: argparse.Namespace, registry: Any, cancel: Any) -> int:
    from . import wire
    from .state import default_server_file, new_token, read_server_file, remove_server_file

    _check_options(args)
    path = args.server_file or default_server_file()
    if args.status or args.stop:
        info = read_server_file(path)
        answer = wire.health(info)
        if args.status:
            print(json.dumps({"running": bool(answer), "server_file": str(path), **(answer or {})}, indent=2))
            return ExitCode.OK if answer else ExitCode.USAGE
        if not answer:
            raise PluginHostError(f"no server answers at the address in {path}", hint="nothing to stop")
        wire.request(info, "POST", "/v1/shutdown")  # type: ignore[arg-type]
        print(f"stopped the server (pid {answer['pid']})")
        return ExitCode.OK

    from ..runner import Session

    if args.stdio:
        from .stdio import run_stdio

        session = Session(registry, device=args.device, seed=args.seed, precision=args.precision)
        try:
            return _leave(run_stdio(session, cancel, args.max_request_bytes, args.max_pixels, threads=args.threads))
        except KeyboardInterrupt:  # a second Ctrl-C / SIGTERM while the job was stopping
            return _leave(ExitCode.CANCELLED)

    running = wire.health(read_server_file(path))
    if running:
        raise PluginHostError(f"a server is already running (pid {running['pid']}, server file {path})",
                              hint="use it, or stop it first with `plugin_host serve --stop`")
    from .httpd import Server, serve_forever

    session = Session(registry, device=args.device, seed=args.seed, precision=args.precision)

    try:
        server = Server(session, new_token(), port=args.port, max_request_bytes=args.max_request_bytes,
                        max_pixels=args.max_pixels, max_queue=args.max_queue, threads=args.threads)
    except OSError as err:
        raise PluginHostError(f"cannot listen on 127.0.0.1:{args.port}: {err.strerror}",
                              hint="choose another --port, or 0 for any free one") from None

    def stop_on_signal() -> None:  # Ctrl-C / SIGTERM set the token: stop the server (its stop cancels the jobs)
        while not cancel.cancelled:
            time.sleep(0.1)
        server.shutdown()

    threading.Thread(target=stop_on_signal, daemon=True).start()
    print(f"plugin_host serve: listening on http://127.0.0.1:{server.port} (device {session.context.device}); "
          f"server file {path}", file=sys.stderr, flush=True)
    try:
        serve_forever(server, path, idle_exit=args.idle_exit)
    except KeyboardInterrupt:  # a second Ctrl-C / SIGTERM while stopping: leave without waiting for the job
        remove_server_file(path, os.getpid())
        return _leave(ExitCode.CANCELLED, at_once=True)
    return _leave(ExitCode.CANCELLED if cancel.cancelled else ExitCode.OK)


def _check_options(args: argparse.Namespace) -> None:
    """Refuse impossible values before anything starts: exit 2 with one line naming the option."""
    whole = (("--port", args.port, 0, 65535, "0 (any free port) to 65535"),
             ("--max-pixels", args.max_pixels, 1, None, "a whole number of pixels from 1"),
             ("--max-request-bytes", args.max_request_bytes, 1, None, "a whole number of bytes from 1"),
             ("--max-queue", args.max_queue, 0, None, "0 (no job waits behind the running one) or more"),
             ("--threads", 1 if args.threads is None else args.threads, 1, 1024, "1 to 1024 CPU threads, or leave it out to choose per job"))
    for option, value, low, high, allowed in whole:
        if value < low or (high is not None and value > high):
            raise PluginHostError(f"{option} {value} is out of range: use {allowed}")
    if not args.idle_exit >= 0:  # also refuses nan
        raise PluginHostError(f"--idle-exit {args.idle_exit:g} is out of range: use 0 (never) or more seconds")


def _leave(code: int, at_once: bool = False) -> int:
    """``code``, unless a job's thread is still inside a method that ignored its cancel, or ``at_once`` (a
    second signal, which may land while that thread is ending): the interpreter's exit could then abort
    in C++ under torch's threads (seen once in 2 CI runs under load), so leave at once instead."""
    from .jobs import WORKER_THREAD

    running = any(t.name == WORKER_THREAD and t.is_alive() for t in threading.enumerate())
    if running or at_once:
        if running:
            print("plugin_host serve: a cancelled job is still running; leaving without it", file=sys.stderr,
                  flush=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def cmd_gimp(args: argparse.Namespace, registry: Any) -> int:
    from .. import gimp_install

    folder = gimp_install.plugins_folder(args.gimp_dir)
    if args.gimp_command == "install":
        for line in gimp_install.install(folder, registry):
            print(line)
        return ExitCode.OK
    if args.gimp_command == "uninstall":
        print(gimp_install.uninstall(folder))
        return ExitCode.OK
    problems = 0
    for ok, line in gimp_install.doctor(folder, registry):
        problems += not ok
        print(("ok       " if ok else "PROBLEM  ") + line)
    print("the GIMP bridge looks fine" if not problems else f"{problems} problem(s) found")
    return ExitCode.OK if not problems else ExitCode.USAGE
