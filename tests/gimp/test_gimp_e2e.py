"""End to end in a real GIMP 3: install the bridge, run two methods through the PDB, check pixels.

Batch mode inside ../shared/gimp3's chroot, with the venv running pytest mounted. The server is
started by the bridge itself on the first call and reused by the next ones. Gatys uses the real
default encoder at 32 px; AdaIN the tiny decoder from conftest.py.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.gimp

HERE = Path(__file__).resolve().parent
W, H = 64, 48


def _rgba(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        assert im.mode == "RGBA", f"{path.name} was exported as {im.mode}"
        return im.load()


def _check(before: Path, after: Path, inside, name: str) -> None:
    """Outside the selection (and its anti-aliased edge): unchanged; inside: changed; alpha: kept."""
    a, b = _rgba(before), _rgba(after)
    changed_in = total_in = 0
    for y in range(H):
        for x in range(W):
            where = inside(x + 0.5, y + 0.5)
            assert a[x, y][3] == b[x, y][3], f"{name}: alpha changed at {(x, y)}: {a[x, y]} -> {b[x, y]}"
            if where == "out":
                assert a[x, y] == b[x, y], f"{name}: pixel {(x, y)} outside the selection changed"
            elif where == "in":
                total_in += 1
                changed_in += max(abs(p - q) for p, q in zip(a[x, y][:3], b[x, y][:3])) > 2
    assert changed_in > 0.8 * total_in, f"{name}: only {changed_in}/{total_in} pixels inside changed"


def _ellipse(cx, cy, rx, ry):
    def inside(x, y):
        r = math.hypot((x - cx) / rx, (y - cy) / ry)
        return "in" if r < 0.9 else "out" if r > 1.1 else "edge"
    return inside


def _rectangle(x0, y0, w, h):
    def inside(x, y):
        return "in" if x0 < x < x0 + w and y0 < y < y0 + h else "out"
    return inside


def test_bridge_in_gimp(gimp_run) -> None:
    from PIL import Image

    work = gimp_run.work
    methods = json.loads((gimp_run.gimp_dir / "plug-ins/plugin_host_bridge/methods.json").read_text())["methods"]
    decoders = next(p for m in methods if m["name"] == "adain" for p in m["params"] if p["name"] == "decoder")
    assert "adain-decoder-test" in decoders["choices"]
    style = Image.new("RGB", (W, H))
    style.putdata([(30, 200, 90) if (x + y) // 5 % 2 else (250, 240, 20) for y in range(H) for x in range(W)])
    style.save(work / "style.png")  # diagonal bands: a style with some texture

    started = time.monotonic()
    run = subprocess.run(gimp_run.command(HERE / "e2e_batch.py"), capture_output=True, text=True, timeout=700)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, gimp_run.failure(run)
    report = json.loads((work / "report.json").read_text())
    print(f"GIMP e2e: {elapsed:.1f} s in GIMP; per call: {report['timings']}", file=sys.stderr)

    _check(work / "in.png", work / "out-gatys.png", _ellipse(32, 23, 20, 15), "gatys")
    _check(work / "in.png", work / "out-adain.png", _rectangle(8, 6, 30, 20), "adain")
    assert report["float_fractional"], "the high-bit-depth result was quantised to 8 bit"
    with Image.open(work / "in.png") as before, Image.open(work / "out-masks.png") as after:
        assert after.mode == "RGB"  # a layer without alpha stays without alpha
        a, b = before.convert("RGB").load(), after.load()
        inside = [_rectangle(16, 12, 32, 24)(x + 0.5, y + 0.5) == "in" for y in range(H) for x in range(W)]
        changed = [max(abs(p - q) for p, q in zip(a[x, y], b[x, y])) > 2 for y in range(H) for x in range(W)]
        for where in (True, False):  # two styles split by the selection: both parts restyled
            part = [c for c, i in zip(changed, inside) if i == where]
            assert sum(part) > 0.8 * len(part), f"masks from the selection: {'inside' if where else 'outside'}"


def test_one_shot_fallback_and_errors_in_gimp(gimp_run) -> None:
    """Without a server (forced here), one ``plugin_host serve --stdio`` per call; errors carry the host's text."""
    run = subprocess.run(gimp_run.command(HERE / "oneshot_batch.py", mode="oneshot"), capture_output=True,
                         text=True, timeout=700)
    assert run.returncode == 0, gimp_run.failure(run)
    assert "oneshot: ok" in run.stdout
