"""The command line, driven in a subprocess like a user would (exit codes, stderr, files)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from plugin_host.cli import main

FAST = ["--iterations", "2", "--max-size", "32", "--content-layers", "relu2_1", "--style-layers", "relu1_1"]


def cli(*args, check=False):
    """Run the CLI in-process (importing torch once per suite, not per call)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse usage errors and --version
            code = exit_.code
    proc = subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def pictures(tmp_path):
    content, style = tmp_path / "photo.png", tmp_path / "paint.jpg"
    Image.new("RGBA", (40, 30), (200, 40, 10, 128)).save(content)
    Image.effect_noise((40, 40), 60).convert("RGB").save(style)
    return content, style


def test_list_shows_builtins_with_their_distribution():
    out = cli("list", "--json", check=True)
    listing = json.loads(out.stdout)
    gatys = next(m for m in listing["methods"] if m["method"] == "gatys")
    assert gatys["plugin"] == "gatys" and gatys["distribution"] == "plugin_host" and gatys["status"] == "ok"
    assert "--style-weight" in cli("run", "gatys", "--help").stdout


def test_help_does_not_import_torch():
    code = "import sys; from plugin_host.cli import main\ntry: main(['run', 'gatys', '--help'])\n" \
           "except SystemExit: pass\nassert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_info_json_describes_parameters():
    info = json.loads(cli("info", "gatys", "--json", check=True).stdout)
    params = {p["name"]: p for p in info["params"]}
    assert params["iterations"]["min"] == 1 and params["optimizer"]["choices"] == ["lbfgs", "adam"]
    assert "vgg16-caffe-hed" in params["encoder"]["choices"]
    assert [i["name"] for i in info["inputs"]] == ["content", "style"]


def test_run_writes_output_and_keeps_alpha(pictures, tmp_path, default_encoder):
    content, style = pictures
    out = tmp_path / "result.png"
    proc = cli("run", "gatys", content, "--style", style, "-o", out, "--seed", "1", "--progress", "json", *FAST)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert any(e["event"] == "progress" and e["step"] == e["total"] == 2 for e in events)
    image = Image.open(out)
    assert image.mode == "RGBA" and image.size == (32, 24)
    assert abs(image.getchannel("A").getextrema()[0] - 128) <= 1
    assert not list(tmp_path.glob("*.part"))


def test_batch_folder_writes_one_output_each(pictures, tmp_path, default_encoder):
    content, style = pictures
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(content.read_bytes())
    out = tmp_path / "out"
    cli("run", "gatys", folder, "--style", style, "-o", out, *FAST, check=True)
    assert sorted(p.name for p in out.iterdir()) == ["a-gatys.png", "b-gatys.png"]


def test_user_errors_are_one_line_without_traceback(pictures, tmp_path):
    content, style = pictures
    cases = [
        (["run", "gatys", content, "--style", style, "--iterations", "0"], "iterations"),
        (["run", "gatys", content, "--style", style, "--optimizer", "lbgfs"], "did you mean 'lbfgs'"),
        (["run", "gatys", tmp_path / "missing.png", "--style", style], "no such file"),
        (["run", "gatys", content, "--style", style, "-o", style], "overwrite"),
        (["info", "gatsy"], "did you mean 'gatys'"),
        (["weights", "fetch", "nope"], "nope"),
    ]
    for args, words in cases:
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("error:") and words in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_sigterm_stops_cleanly_without_output(pictures, tmp_path, default_encoder):
    content, style = pictures
    out = tmp_path / "never.png"
    proc = subprocess.Popen([sys.executable, "-m", "plugin_host", "run", "gatys", str(content), "--style", str(style),
                             "-o", str(out), "--progress", "json", "--iterations", "5000", "--max-size", "32",
                             "--content-layers", "relu2_1", "--style-layers", "relu1_1"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stderr:  # wait until the optimisation runs
        if '"event": "progress"' in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, rest
    assert "cancelled" in rest and not out.exists() and not list(Path(tmp_path).glob(".*part"))


def test_python_module_entry_point_works():
    proc = subprocess.run([sys.executable, "-m", "plugin_host", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("plugin_host ")


def test_weights_list_prints_every_entry_with_its_kind_plugin_and_location(default_encoder):
    proc = cli("weights", "list", check=True)
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()}
    assert rows["vgg16-caffe-hed"][1:3] == ["encoder", "encoders"]  # kind, the plugin that registered it
    assert rows["vgg16-caffe-hed"][3].endswith("vgg16-caffe-hed.pth")  # found via PLUGIN_HOST_WEIGHTS_PATH
    assert rows["vgg19-torchvision"][1:] == ["encoder", "encoders", "not", "installed"]
    assert rows["perceptual-mosaic"][2] == "perceptual"


def test_schema_cli_aliases_name_the_same_parameter():
    """`train adain --content DIR --style DIR` (the short spelling) fills content_dir and style_dir."""
    from plugin_host.cli import build_parser
    from plugin_host.plugins import load_registry

    parser = build_parser(load_registry())
    short = parser.parse_args(["train", "adain", "--content", "photos", "--style", "paintings", "--out", "d.pth"])
    long = parser.parse_args(["train", "adain", "--content-dir", "photos", "--style-dir", "paintings", "--out", "d.pth"])
    assert (short.content_dir, short.style_dir) == (long.content_dir, long.style_dir) == ("photos", "paintings")
