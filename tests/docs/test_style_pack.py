"""The style pack of the plugin docs (docs/plugins/style-pack): built by its script, installed by pip, used.

The pack is copied to a temporary folder, its ``make_models.sh`` trains and packages its stand-in model
there, and pip installs it into a folder on ``PYTHONPATH`` of the ``plugin_host`` commands run here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "docs" / "plugins" / "style-pack"
SAMPLES = REPO / "docs" / "samples"


@pytest.fixture(scope="module")
def installed_pack(tmp_path_factory, default_encoder):
    """``(site, env)``: the pack built and installed into ``site``; ``env`` runs plugin_host with it."""
    root = tmp_path_factory.mktemp("style-pack")
    source, site = root / "source", root / "site"
    shutil.copytree(PACK, source, ignore=shutil.ignore_patterns("models", "build", "*.egg-info"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1"}
    built = subprocess.run(["sh", "make_models.sh", str(SAMPLES / "great_wave.jpg"), str(SAMPLES)], cwd=source,
                           env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(source)], check=True, capture_output=True, env=env)
    return site, {**env, "PYTHONPATH": str(site)}


def plugin_host(env, *args):
    return subprocess.run([sys.executable, "-m", "plugin_host", *args], env=env, capture_output=True, text=True)


def test_the_installed_pack_is_a_weights_only_plugin_that_plugins_lists(installed_pack):
    site, env = installed_pack
    assert sorted(p.name for p in (site / "plugin_host_example_styles" / "models").iterdir()) == [
        "example-wave.pth", "example-wave.pth.json"]  # the package data made it into the install
    listed = plugin_host(env, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["plugin"]: row for row in json.loads(listed.stdout)["plugins"]}
    assert rows["example-styles"] == {
        "plugin": "example-styles", "distribution": "plugin-host-example-styles", "version": "0.1.0",
        "builtin": False, "module": "plugin_host_example_styles", "status": "ok", "methods": [],
        "weights": ["example-wave"], "commands": [], "failures": []}
    assert all(row["status"] == "ok" for row in rows.values())
    weights = {row["name"]: row for row in json.loads(plugin_host(env, "weights", "list", "--json").stdout)}
    assert weights["example-wave"]["plugin"] == "example-styles" and weights["example-wave"]["kind"] == \
        "perceptual-style"
    assert "example-wave" in plugin_host(env, "weights", "verify", "example-wave").stdout.split()


def tiny_photo(folder: Path) -> Path:
    from PIL import Image

    Image.open(SAMPLES / "parrots.jpg").convert("RGB").resize((48, 32)).save(folder / "in.png")
    return folder / "in.png"


def test_its_model_is_a_choice_of_the_method_and_runs(installed_pack, tmp_path):
    from PIL import Image

    _, env = installed_pack
    info = json.loads(plugin_host(env, "info", "perceptual", "--json").stdout)
    assert "example-wave" in next(p for p in info["params"] if p["name"] == "model")["choices"]  # CLI, GIMP
    ran = plugin_host(env, "run", "perceptual", str(tiny_photo(tmp_path)), "--model", "example-wave",
                      "-o", str(tmp_path / "out.png"), "--quiet")
    assert ran.returncode == 0, ran.stderr
    assert Image.open(tmp_path / "out.png").size == (48, 32)


def test_a_changed_model_file_is_refused(installed_pack, tmp_path, monkeypatch, tiny_image):
    """In this process, through the pack's installed entry point (torch is imported here already)."""
    import importlib.metadata as md

    from plugin_host.plugins import builtin_entry_points
    from plugin_host.sdk import Session, WeightsError, load_registry

    site, _ = installed_pack
    pack = tmp_path / "site"
    shutil.copytree(site, pack)
    model = pack / "plugin_host_example_styles" / "models" / "example-wave.pth"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(data)
    monkeypatch.syspath_prepend(str(pack))
    monkeypatch.delitem(sys.modules, "plugin_host_example_styles", raising=False)
    [dist_info] = pack.glob("*.dist-info")
    registry = load_registry(entry_points=[*builtin_entry_points(), *md.PathDistribution(dist_info).entry_points],
                             disabled=[])
    assert registry.weights_plugin["example-wave"].name == "example-styles"
    with pytest.raises(WeightsError, match="is wrong or damaged: sha256"):
        Session(registry, device="cpu").run("perceptual", {"content": tiny_image}, {"model": "example-wave"})


def test_a_packaged_model_without_its_digest_fails_the_pack_with_the_fix(tmp_path):
    from plugin_host.sdk import hookimpl, load_registry, packaged_models, write_card

    (tmp_path / "ink.pth").write_bytes(b"weights")
    write_card(tmp_path / "ink.pth", {"name": "ink", "model_kind": "perceptual-style"})  # no sha256, no size

    class Pack:
        @hookimpl
        def register_weights(self, register):
            for entry in packaged_models(tmp_path):
                register(entry)

    registry = load_registry(entry_points=[], extra_plugins=[("ink-pack", Pack())], disabled=[])
    [row] = registry.report()
    assert row.status == "failed" and row.weights == ()
    assert "packaged model" in row.failures[0] and "lacks sha256, size" in row.failures[0]
    assert "plugin_host weights package MODEL --into" in row.failures[0]
