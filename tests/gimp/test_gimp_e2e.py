"""End to end in a real GIMP 3: install the bridge, run two methods through the PDB, check pixels.

Batch mode inside ../shared/gimp3's chroot, with this checkout's venv mounted. The server is
started by the bridge itself on the first call and reused by the next ones. AdaIN uses a tiny
random decoder contributed by a throwaway plugin (a dist-info on PYTHONPATH), so the test does
not depend on trained weights; Gatys uses the real default encoder at 32 px.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.gimp

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
W, H = 64, 48
TINY_PLUGIN = '''
from pathlib import Path
from plugin_host import UrlSource, WeightsEntry, hookimpl

FILE = Path(__file__).resolve().parent / "adain-decoder-test.pth"


@hookimpl
def register_weights(register):
    register(WeightsEntry("adain-decoder-test", FILE.name, "adain-decoder", "vgg16", "caffe",
                          UrlSource(FILE.as_uri()), None, extra={"encoder": "vgg16-caffe-hed"}))
'''
PARAMS = {"gatys": {"iterations": 2, "max-size": 32},
          "adain": {"decoder": "adain-decoder-test", "content-size": 64, "style-size": 64}}


def _tiny_plugin(folder: Path) -> Path:
    """A plugin package visible to importlib.metadata via PYTHONPATH, registering a random decoder."""
    import torch
    from plugin_host.training import export_model
    from plugin_host_adain.net import Decoder

    folder.mkdir()
    torch.manual_seed(0)
    export_model(folder / "adain-decoder-test.pth", Decoder("vgg16", width=0.25),
                 {"encoder": "vgg16-caffe-hed", "architecture": "vgg16", "width": 0.25}, dtype=torch.float32)
    (folder / "phtest_tiny_decoder.py").write_text(TINY_PLUGIN)
    info = folder / "phtest_tiny_decoder-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: phtest-tiny-decoder\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text("[plugin_host]\ntiny_decoder = phtest_tiny_decoder\n")
    return folder


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


def test_bridge_in_gimp(gimp_rig: Path, shared_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    work = tmp_path / "work"
    work.mkdir()
    plugin = _tiny_plugin(work / "testplug")
    env = dict(os.environ, PYTHONPATH=str(plugin))
    host = REPO / ".venv" / "bin" / "plugin_host"
    install = subprocess.run([str(host), "gimp", "install", "--gimp-dir", str(tmp_path / "gimp")], env=env,
                             capture_output=True, text=True, timeout=120)
    assert install.returncode == 0, install.stderr
    methods = json.loads((tmp_path / "gimp/plug-ins/plugin_host_bridge/methods.json").read_text())["methods"]
    decoders = next(p for m in methods if m["name"] == "adain" for p in m["params"] if p["name"] == "decoder")
    assert "adain-decoder-test" in decoders["choices"]
    style = Image.new("RGB", (W, H), (30, 200, 90))
    style.putdata([(30, 200, 90) if (x + y) // 5 % 2 else (250, 240, 20) for y in range(H) for x in range(W)])
    style.save(work / "style.png")  # diagonal bands: a style with some texture

    started = time.monotonic()
    run = subprocess.run(
        [str(gimp_rig / "run-in-gimp.sh"), "-p", str(tmp_path / "gimp" / "plug-ins"), "-w", str(work),
         "--venv", str(REPO / ".venv"), "--ro-bind", str(REPO), "--ro-bind", str(shared_dir),
         "-e", f"PLUGIN_HOST_WEIGHTS_PATH={shared_dir / 'weights'}", "-e", "PLUGIN_HOST_CACHE=/work/cache",
         "-e", "PLUGIN_HOST_SERVER_FILE=/work/run/server.json", "-e", "PYTHONPATH=/work/testplug",
         "-e", "PLUGIN_HOST_BRIDGE_MODE=server", "-e", "E2E_PARAMS=" + json.dumps(PARAMS),
         "-t", "600", "-f", str(HERE / "e2e_batch.py")],
        capture_output=True, text=True, timeout=700)
    elapsed = time.monotonic() - started
    log = (work / "run" / "server.log")
    detail = f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}\nserver log:\n" + (
        log.read_text()[-3000:] if log.exists() else "(none)")
    assert run.returncode == 0, f"GIMP batch failed ({run.returncode}):\n{detail}"
    report = json.loads((work / "report.json").read_text())
    print(f"GIMP e2e: {elapsed:.1f} s in GIMP; per call: {report['timings']}", file=sys.stderr)

    _check(work / "in.png", work / "out-gatys.png", _ellipse(32, 23, 20, 15), "gatys")
    _check(work / "in.png", work / "out-adain.png", _rectangle(8, 6, 30, 20), "adain")
    assert report["float_fractional"], "the high-bit-depth result was quantised to 8 bit"
