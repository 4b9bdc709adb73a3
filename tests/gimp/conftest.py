"""The GIMP 3 rig (../shared/gimp3): opt-in locally with ``-m gimp``, a separate step in CI.

When the rig cannot start (no shared folder included), these tests fail with the reason; they never
skip. GIMP runs the host from the virtual environment running pytest (``sys.prefix``), wherever it is. AdaIN runs with a
tiny random decoder contributed by a throwaway plugin (a dist-info on PYTHONPATH, seen by the
install and by the server GIMP starts), so the tests do not depend on trained weights.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_PLUGIN = '''
from pathlib import Path
from plugin_host import UrlSource, WeightsEntry, hookimpl

FILE = Path(__file__).resolve().parent / "adain-decoder-test.pth"


@hookimpl
def register_weights(register):
    register(WeightsEntry("adain-decoder-test", FILE.name, "adain-decoder", "vgg16", "caffe",
                          UrlSource(FILE.as_uri()), None, extra={"encoder": "vgg16-caffe-hed"}))
'''
#: Tiny settings so a call takes a second or two on 2 CPU cores (argument names as in the PDB).
PARAMS = {"gatys": {"iterations": 2, "max-size": 32},
          "adain": {"decoder": "adain-decoder-test", "max-size": 64, "style-size": 64},
          "gated-gan": {"model": "gated-gan-mine"}, "stylegan": {"generator": "stylegan-mine"},
          "stylegan-project": {"generator": "stylegan-mine", "steps": 2}}
#: A user's own Gated-GAN model (as ``train gated-gan`` leaves it in the models folder): its styles must
#: become the dialog's blend sliders.
USER_STYLES = ("ink", "sun")


@pytest.fixture(scope="session")
def gimp_rig() -> Path:
    """The folder holding run-in-gimp.sh, with the chroot built (setup-chroot.sh is idempotent)."""
    shared = Path(os.environ.get("PLUGIN_HOST_SHARED") or REPO.parent / "shared")
    rig = shared / "gimp3"
    if not (rig / "run-in-gimp.sh").is_file():
        pytest.fail(f"no GIMP rig at {rig}: the shared folder must hold gimp3/run-in-gimp.sh", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("the GIMP rig needs root (debootstrap, mount, chroot): run this step as root", pytrace=False)
    setup = subprocess.run([str(rig / "setup-chroot.sh")], capture_output=True, text=True, timeout=900)
    if setup.returncode != 0:
        pytest.fail(f"setup-chroot.sh failed ({setup.returncode}):\n{setup.stderr[-3000:]}", pytrace=False)
    return rig


@dataclass
class GimpRun:
    """A temporary GIMP profile with the bridge installed, and a work folder mounted at /work."""

    rig: Path
    shared: Path
    gimp_dir: Path
    work: Path

    def command(self, batch_file: Path, *extra: str, mode: str = "server") -> list[str]:
        return [str(self.rig / "run-in-gimp.sh"), "-p", str(self.gimp_dir / "plug-ins"), "-w", str(self.work),
                "--venv", sys.prefix, "--ro-bind", str(REPO), "--ro-bind", str(self.shared),
                "-e", f"PLUGIN_HOST_WEIGHTS_PATH={self.shared / 'weights'}", "-e", "PLUGIN_HOST_CACHE=/work/cache",
                "-e", "PLUGIN_HOST_SERVER_FILE=/work/run/server.json", "-e", "PYTHONPATH=/work/testplug",
                "-e", f"PLUGIN_HOST_BRIDGE_MODE={mode}", "-e", "PLUGIN_HOST_MODELS=/work/models", "-e", "E2E_PARAMS=" + json.dumps(PARAMS),
                "-t", "600", *extra, "-f", str(batch_file)]

    def failure(self, run: subprocess.CompletedProcess) -> str:
        log = self.work / "run" / "server.log"
        return (f"GIMP batch failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}\nserver log:\n"
                + (log.read_text()[-3000:] if log.exists() else "(none)"))


@pytest.fixture
def gimp_run(gimp_rig: Path, tmp_path: Path) -> GimpRun:
    if sys.prefix == sys.base_prefix:
        pytest.fail(f"the GIMP rig runs the host from a virtual environment; {sys.executable} is not in one: "
                    "run pytest with the venv's python", pytrace=False)
    work = tmp_path / "work"
    work.mkdir()
    plugin = _tiny_plugin(work / "testplug")
    _user_model(work / "models")
    install = subprocess.run([sys.executable, "-m", "plugin_host", "gimp", "install", "--gimp-dir",
                              str(tmp_path / "gimp")],
                             env=dict(os.environ, PYTHONPATH=str(plugin), PLUGIN_HOST_MODELS=str(work / "models")),
                             capture_output=True, text=True, timeout=120)
    assert install.returncode == 0, install.stderr
    return GimpRun(gimp_rig, gimp_rig.parent, tmp_path / "gimp", work)


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


def _user_model(folder: Path) -> None:
    """A random two-style Gated-GAN generator with its card, where a user's training puts it."""
    import torch
    from plugin_host.sdk import write_card
    from plugin_host.training import export_model
    from plugin_host_gated_gan.net import Generator, init_weights

    folder.mkdir()
    torch.manual_seed(0)
    net = Generator(len(USER_STYLES), ngf=4)
    init_weights(net)
    path = folder / "gated-gan-mine.pth"
    export_model(path, net, {**net.config, "styles": list(USER_STYLES)}, dtype=torch.float32)
    write_card(path, {"name": "gated-gan-mine", "model_kind": "gated-gan", "architecture": "gated-gan",
                      "input_convention": "raw", "styles": list(USER_STYLES)})
    _user_generator(folder)


def _user_generator(folder: Path) -> None:
    """A random 32-px StyleGAN generator with its card, as ``train stylegan`` leaves one."""
    import torch
    from plugin_host.sdk import write_card
    from plugin_host.training import export_model
    from plugin_host_stylegan.net import Generator, GeneratorConfig, widths_for

    torch.manual_seed(0)
    config = GeneratorConfig(resolution=32, widths=widths_for(32, 256, 16), z_dim=16, w_dim=16, mapping_layers=2)
    path = folder / "stylegan-mine.pth"
    export_model(path, Generator(config), {"generator": config.to_json()}, dtype=torch.float32)
    write_card(path, {"name": "stylegan-mine", "model_kind": "stylegan-generator", "resolution": 32, "classes": []})
