"""One Ctrl+Z in GIMP's own GUI undoes a whole filter call (in place, and into a new layer).

GIMP has no undo in the PDB, so this runs GIMP's GUI binary on an Xvfb display (the batch script
waits while the test presses Ctrl+Z in the image window with xdotool). Needs Xvfb and xdotool on
the host (Debian: apt-get install xvfb xdotool); fails, never skips, without them.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.gimp
HERE = Path(__file__).resolve().parent
DISPLAY = ":98"


@pytest.fixture
def xvfb():
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: apt-get install xvfb xdotool", pytrace=False)
    server = subprocess.Popen(["Xvfb", DISPLAY, "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    yield DISPLAY
    server.terminate()
    server.wait(10)


def _press_undo(display: str) -> None:
    env = {"DISPLAY": display, "PATH": "/usr/bin:/bin"}
    windows = subprocess.run(["xdotool", "search", "--name", "Untitled"], env=env, capture_output=True,
                             text=True).stdout.split()
    assert windows, "GIMP's image window did not appear"
    for window in windows:  # focus the image window and press Ctrl+Z once
        subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env, capture_output=True, timeout=10)
    subprocess.run(["xdotool", "key", "ctrl+z"], env=env, check=True, timeout=10)


def test_one_undo_restores_the_original(gimp_run, xvfb) -> None:
    extra = ["--ro-bind", f"{HERE / 'gui-gimp.sh'}:/usr/bin/gimp-console-3.0", "--bind", "/tmp/.X11-unix",
             "-e", f"DISPLAY={xvfb}"]
    gimp = subprocess.Popen(gimp_run.command(HERE / "undo_batch.py", *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for step in (1, 2):
            deadline = time.monotonic() + 300
            while not (gimp_run.work / f"ready-{step}").exists():
                assert gimp.poll() is None and time.monotonic() < deadline, "GIMP stopped before the filter ran"
                time.sleep(0.2)
            time.sleep(1)  # let the display catch up
            _press_undo(xvfb)
        out, err = gimp.communicate(timeout=300)
    finally:
        if gimp.poll() is None:
            gimp.kill()
    assert gimp.returncode == 0, gimp_run.failure(subprocess.CompletedProcess(gimp.args, gimp.returncode, out, err))
    report = json.loads((gimp_run.work / "undo-report.json").read_text())
    assert report == {"changed_in_place": True, "one_undo_restores_in_place": True,
                      "new_layer_added": True, "one_undo_removes_new_layer": True}, report
