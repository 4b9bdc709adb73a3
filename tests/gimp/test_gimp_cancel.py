"""Cancelling in GIMP stops the host's job.

When the user cancels a plug-in's progress, GIMP kills the plug-in (app/plug-in/gimpplugin-progress.c:
``gimp_plug_in_close (plug_in, TRUE)``). The test does the same to the bridge mid-job and checks that the
warm server marks the job cancelled instead of computing on for nobody.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.gimp
HERE = Path(__file__).resolve().parent
BRIDGE = HERE.parents[1] / "gimp_bridge" / "plugin_host_bridge"


def _descendants(root: int) -> list[int]:
    """Process ids below ``root`` (from /proc; the GIMP run's own processes only)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid]
        found += children
        frontier += children
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _jobs(client, info) -> list[dict]:
    try:
        return client.request(info, "GET", "/v1/jobs")[1]["jobs"]
    except (OSError, KeyError, TypeError):
        return []


def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_killing_the_plug_in_cancels_the_host_job(gimp_run) -> None:
    from plugin_host.serve import wire

    sys.path.insert(0, str(BRIDGE))
    sys.modules.setdefault("phb_wire", wire)  # gimp install copies it beside the bridge
    try:
        import phb_client
    finally:
        sys.path.remove(str(BRIDGE))
    gimp = subprocess.Popen(gimp_run.command(HERE / "cancel_batch.py"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        server_file = gimp_run.work / "run" / "server.json"
        info = _until(lambda: server_file.exists() and json.loads(server_file.read_text()), 300, "the server")
        job = _until(lambda: next((j for j in _jobs(phb_client, info) if j["state"] == "running"), None), 300,
                     "the Gatys job to run")
        bridge = [pid for pid in _descendants(gimp.pid) if "plugin_host_bridge.py" in _cmdline(pid)]
        assert bridge, "the bridge's plug-in process was not found"
        for pid in bridge:
            os.kill(pid, signal.SIGKILL)
        try:
            final = _until(lambda: next((j for j in _jobs(phb_client, info) if j["job"] == job["job"]
                                         and j["state"] != "running"), None), 10, "the job to stop")
        finally:
            (gimp_run.work / "done").touch()  # lets the batch end
        out, err = gimp.communicate(timeout=300)
    finally:
        if gimp.poll() is None:
            gimp.kill()
    assert final["state"] == "cancelled", final
    assert gimp.returncode == 0 and "cancel: the call ended with" in out, gimp_run.failure(
        subprocess.CompletedProcess(gimp.args, gimp.returncode, out, err))
