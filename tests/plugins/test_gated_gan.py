"""Gated-GAN as a method: conformance, gates from the command line's words, tiling, models from the user's folder,
the error when none is installed, and training (losses, the identity gate, exact resume, torchrun).

A tiny random generator (ngf 4, the paper's depth) stands in where quality does not matter; training runs on
toy "collections": noise pictures tinted red or blue, which a classifier tells apart at a glance.
"""
from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
from PIL import Image

from plugin_host import UrlSource, WeightsEntry, hookimpl
from plugin_host.errors import Cancelled, ParameterError
from plugin_host.plugins import load_registry
from plugin_host.progress import CancelToken, Progress
from plugin_host.runner import Session
from plugin_host.testing import MethodConformance
from plugin_host_gated_gan.models import read_model_file
from plugin_host_gated_gan.net import Generator, from_network, init_weights, load_generator, one_hot, to_network

TEST_MODEL = "gated-gan-test"
STYLES = ("red", "blue")


def tiny_model_registry(folder: Path):
    """A registry with an extra plugin that registers a random two-style generator (ngf 4, five decoder blocks)."""
    from plugin_host.training import export_model

    path = folder / f"{TEST_MODEL}.pth"
    if not path.exists():
        torch.manual_seed(0)
        net = Generator(len(STYLES), ngf=4)
        init_weights(net)
        export_model(path, net, {**net.config, "styles": list(STYLES)}, dtype=torch.float32)
    entry = WeightsEntry(TEST_MODEL, path.name, "gated-gan", "gated-gan", "raw", UrlSource(path.as_uri()), None,
                         extra={"card": {"styles": list(STYLES)}})
    plugin = types.ModuleType("gated_gan_test_model")
    plugin.register_weights = hookimpl(lambda register: register(entry))
    # Without the shipped model: the method's style choices come from the built-in plugin's own models (shipped
    # and the user's folder), so the test model's red and blue must not meet the shipped painters' names.
    import plugin_host_gated_gan

    shipped, plugin_host_gated_gan.SHIPPED = plugin_host_gated_gan.SHIPPED, folder / "nothing-shipped"
    try:
        return load_registry(extra_plugins=[("gated_gan_test_model", plugin)])
    finally:
        plugin_host_gated_gan.SHIPPED = shipped


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("gated-gan")


@pytest.fixture(scope="module")
def registry(model_folder):
    return tiny_model_registry(model_folder)


@pytest.fixture(scope="module")
def session(registry):
    return Session(registry=registry, device="cpu", seed=0, precision="fp32")


class TestGatedGanConformance(MethodConformance):
    method_name = "gated-gan"
    params = {"model": TEST_MODEL, "style": "blue", "tile_size": 64}
    size = (80, 96)  # 64-pixel tiles: four steps, so a cancel can come between them

    def registry(self):
        import tempfile

        return tiny_model_registry(Path(tempfile.gettempdir()))


def smooth_image(height: int, width: int, seed: int) -> torch.Tensor:
    coarse = torch.rand((1, 3, height // 8, width // 8), generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


def test_tiled_equals_untiled_within_one_level(session):
    image = smooth_image(320, 384, seed=3)
    whole = session.run("gated-gan", {"content": image}, {"model": TEST_MODEL, "tile_size": 0}).rgb
    tiled = session.run("gated-gan", {"content": image}, {"model": TEST_MODEL, "tile_size": 300}).rgb  # 4 tiles
    assert float((whole - tiled).abs().max()) <= 1 / 255


def test_styles_blends_and_strength_become_the_gate(session, model_folder):
    state, metadata = read_model_file(model_folder / f"{TEST_MODEL}.pth")
    net = load_generator(state, metadata)
    image = smooth_image(48, 64, seed=4)

    def direct(gate: list[float]) -> torch.Tensor:
        with torch.no_grad():
            return from_network(net(to_network(image), torch.tensor(gate))).clamp(0, 1)

    def run(**params) -> torch.Tensor:
        return session.run("gated-gan", {"content": image}, {"model": TEST_MODEL, **params}).rgb

    cases = [({}, [1, 0, 0]), ({"style": "blue"}, [0, 1, 0]), ({"style_blend": "red=3, blue=1"}, [0.75, 0.25, 0]),
             ({"style": "blue", "strength": 0.25}, [0, 0.25, 0.75]), ({"strength": 0}, [0, 0, 1])]
    for params, gate in cases:
        assert torch.allclose(run(**params), direct(gate), atol=1e-5), params


def test_a_style_the_model_lacks_is_refused_naming_its_styles(session):
    image = smooth_image(32, 32, seed=5)
    with pytest.raises(ParameterError, match="has no style 'green'") as caught:
        session.run("gated-gan", {"content": image}, {"model": TEST_MODEL, "style_blend": "red=1,green=1"})
    assert caught.value.hint == "its styles: red, blue"
    with pytest.raises(ParameterError, match="NAME=WEIGHT"):
        session.validate(session.method("gated-gan"), {"style_blend": "red:1"})


def write_card(path: Path, card: dict) -> None:
    path.with_name(path.name + ".json").write_text(json.dumps(card))


def test_the_users_models_give_the_choices_and_a_port_checkpoint_runs(model_folder, tmp_path, monkeypatch, capsys):
    """A model trained here and a PyTorch-port checkpoint in the models folder: their styles join the shipped
    model's as the choices of --style (the port's card names none: its four collections, the shipped model's
    too), the shipped model stays the default, and the port file runs as it is."""
    from plugin_host.cli import main

    from test_gated_gan_net import port_state_dict

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "mine.pth").write_bytes((model_folder / f"{TEST_MODEL}.pth").read_bytes())
    write_card(folder / "mine.pth", {"name": "mine", "model_kind": "gated-gan", "styles": ["red", "blue"]})
    torch.save(port_state_dict(ngf=8), folder / "port.pth")
    write_card(folder / "port.pth", {"name": "port", "model_kind": "gated-gan"})
    monkeypatch.setenv("PLUGIN_HOST_MODELS", str(folder))
    schema = load_registry().method("gated-gan").schema
    assert schema.get("style").choices == ("cezanne", "monet", "ukiyoe", "vangogh", "red", "blue")
    assert schema.get("model").default == "gated-gan-painters"
    assert set(load_registry().model_names()["gated-gan"]) == {"gated-gan-painters", "mine", "port"}

    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (200, 120, 40)).save(photo)
    code = main(["run", "gated-gan", str(photo), "-o", str(tmp_path / "out.png"), "--model", "port",
                 "--style-blend", "monet=0.6,ukiyoe=0.4", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert Image.open(tmp_path / "out.png").size == (40, 30)

    state = port_state_dict(ngf=8)
    state["decoder.model.12.weight"] = torch.zeros(3, 8, 5, 5)
    torch.save(state, folder / "port.pth")
    code = main(["run", "gated-gan", str(photo), "-o", str(tmp_path / "bad.png"), "--model", "port", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "decoder.model.12.weight (3, 8, 5, 5) instead of (3, 8, 7, 7)" in err, err
    assert not (tmp_path / "bad.png").exists()


def test_without_a_model_a_run_says_how_to_get_one_and_list_works(tmp_path, monkeypatch, capsys):
    import plugin_host_gated_gan
    from plugin_host.cli import main

    monkeypatch.setattr(plugin_host_gated_gan, "SHIPPED", tmp_path / "nothing-shipped")  # as a pack without weights
    monkeypatch.setenv("PLUGIN_HOST_MODELS", str(tmp_path / "empty"))
    photo = tmp_path / "photo.png"
    Image.new("RGB", (20, 20)).save(photo)
    assert main(["run", "gated-gan", str(photo), "-o", str(tmp_path / "out.png"), "--style", "monet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Gated-GAN model 'gated-gan-painters' is installed")
    assert "plugin_host train gated-gan" in lines[0] and str(tmp_path / "empty") in lines[0]
    assert main(["list"]) == 0
    assert "gated-gan" in capsys.readouterr().out


# -- training ----------------------------------------------------------------------------------------

def write_toy_data(root: Path) -> tuple[Path, Path]:
    """Six smooth noise photos; two collections, the same kind of pictures tinted red or blue."""
    tints = {"red": (1.0, 0.15, 0.1), "blue": (0.1, 0.25, 1.0)}
    for index in range(6):
        write_png(root / "photos" / f"{index}.png", smooth_image(48, 48, seed=index))
    for name, tint in tints.items():
        for index in range(4):
            picture = smooth_image(48, 48, seed=100 + index) * 0.4 + torch.tensor(tint).view(1, 3, 1, 1) * 0.6
            write_png(root / "styles" / name / f"{index}.png", picture)
    return root / "photos", root / "styles"


def write_png(path: Path, image: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((image[0].clamp(0, 1).permute(1, 2, 0) * 255).round().byte().numpy()).save(path)


#: A training that takes seconds: 32-pixel crops, narrow networks, a fast learning rate.
TINY_TRAINING = {"crop": 32, "resize_short": 0, "batch_size": 2, "ngf": 8, "ndf": 8, "decoder_blocks": 1,
                 "learning_rate": 2e-3, "pool_size": 4, "log_every": 1, "preview_every": 0}


def train(photos: Path, styles: Path, out: Path, progress: Progress | None = None, cancel: CancelToken | None = None,
          **settings) -> Path:
    registry = load_registry()
    method = registry.method("gated-gan")
    session = Session(registry=registry, device="cpu", seed=1, precision="fp32")
    session.context.progress = progress or Progress()
    session.context.cancel = cancel or CancelToken()
    params = method.train_schema.validate({"content_dir": photos, "styles_dir": styles, "out": out,
                                           **TINY_TRAINING, **settings}, models=registry.model_names())
    return method.resolve_train()(params, session.context)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A toy model trained for 120 steps: (its file, its log)."""
    root = tmp_path_factory.mktemp("gated-gan-training")
    photos, styles = write_toy_data(root)
    out = train(photos, styles, root / "toy.pth", iterations=120, checkpoint_every=120, preview_every=120)
    log = [json.loads(line) for line in out.with_name(out.name + ".log.jsonl").read_text().splitlines()]
    return out, log


def test_training_writes_a_model_whose_card_names_the_collections(trained):
    out, log = trained
    assert [record["step"] for record in log] == list(range(1, 121))
    card = json.loads(out.with_name(out.name + ".json").read_text())
    assert card["styles"] == ["blue", "red"] and card["model_kind"] == "gated-gan" and card["steps"] == 120
    _, metadata = read_model_file(out)
    assert metadata["styles"] == ["blue", "red"] and metadata["identity"] == 2
    preview = Image.open(out.with_name("toy-preview-0000120.png"))
    assert preview.size == (4 * 34 + 2, 3 * 34 + 2)  # columns: photo, blue, red, identity; one row per photo


def test_the_auxiliary_classifier_learns_the_collections(trained):
    _, log = trained
    first, last = (sum(r["d_class"] for r in part) / len(part) for part in (log[:10], log[-10:]))
    assert first > 0.5 and last < 0.5 * first, (first, last)  # chance is ln 2 = 0.69


def test_the_identity_gate_reconstructs_better_than_any_style_gate_and_styles_take_their_tint(trained):
    out, _ = trained
    state, metadata = read_model_file(out)
    net = load_generator(state, metadata)
    photo = smooth_image(48, 48, seed=50)  # not a training photo
    with torch.no_grad():
        outputs = [from_network(net(to_network(photo), one_hot(2, k))).clamp(0, 1) for k in range(3)]
    errors = [float((output - photo).abs().mean()) for output in outputs]
    assert errors[2] < min(errors[:2]), errors
    blueness = [float(output[0, 2].mean() - output[0, 0].mean()) for output in outputs]
    assert blueness[0] > blueness[1], blueness  # gate 0 is "blue", gate 1 "red"


def test_the_evaluation_command_gives_the_quality_bars_figures(trained, tmp_path, monkeypatch, capsys,
                                                               default_encoder):
    import shutil

    from plugin_host.cli import main

    out, _ = trained
    models = tmp_path / "models"
    models.mkdir()
    for suffix in ("", ".json"):
        shutil.copy(out.with_name(out.name + suffix), models / f"toy.pth{suffix}")
    for index in range(3):
        write_png(tmp_path / "held-out" / f"{index}.png", smooth_image(48, 48, seed=60 + index))
    monkeypatch.setenv("PLUGIN_HOST_MODELS", str(models))
    assert main(["gated-gan-eval", "toy", "--photos", str(tmp_path / "held-out"), "--collections",
                 str(out.parent / "styles"), "--size", "48", "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["photos"] == 3 and report["styles"] == ["blue", "red"]
    assert report["per_style"] == {"blue": 1.0, "red": 1.0}  # each gate's output lands on its own tint
    assert 0 < report["content_ratio_median"] and 0 <= report["peak_ok_share"] <= 1
    assert report["identity_psnr_mean"] > 15


def test_collections_are_the_sub_folders_or_those_named(tmp_path):
    from plugin_host.errors import InputImageError
    from plugin_host_gated_gan.train import Collections

    _, styles = write_toy_data(tmp_path)
    everything = Collections(styles, crop=32, resize_short=None)
    assert everything.names == ("blue", "red") and len(everything) == 8
    image, label = everything[(3, 7)]
    assert image.shape == (3, 32, 32) and label == 1  # index 3: collection 3 mod 2, its painting 3 div 2
    assert Collections(styles, 32, None, ("red",)).names == ("red",)
    with pytest.raises(InputImageError, match="no collection 'green'"):
        Collections(styles, 32, None, ("red", "green"))


class _CancelAfter(Progress):
    def __init__(self, token: CancelToken, step: int) -> None:
        super().__init__()
        self.token, self.at = token, step

    def _on_advance(self, n: int, info: dict) -> None:
        if self.step == self.at:
            self.token.cancel()


def test_training_cancelled_midway_resumes_bit_identically(tmp_path, default_encoder):
    from plugin_host.training import load_checkpoint

    photos, styles = write_toy_data(tmp_path)
    settings = {"iterations": 6, "checkpoint_every": 4, "content_weight": 1.0, "shift_weight": 1.0}  # optional losses too
    train(photos, styles, tmp_path / "straight.pth", **settings)
    token = CancelToken()
    with pytest.raises(Cancelled):
        train(photos, styles, tmp_path / "resumed.pth", _CancelAfter(token, 3), token, **settings)
    assert load_checkpoint(tmp_path / "resumed.pth.ckpt")["step"] == 3
    train(photos, styles, tmp_path / "resumed.pth", **settings)
    straight, resumed = (load_checkpoint(tmp_path / f"{name}.pth.ckpt") for name in ("straight", "resumed"))
    assert straight["step"] == resumed["step"] == 6
    for group in ("models", "optimizers", "schedulers"):
        assert_equal_trees(straight[group], resumed[group], group)
    logs = [(tmp_path / f"{name}.pth.log.jsonl").read_text().splitlines() for name in ("straight", "resumed")]
    assert [strip_time(line) for line in logs[0]] == [strip_time(line) for line in logs[1]]
    assert "content" in strip_time(logs[0][-1])


def strip_time(line: str) -> dict:
    record = json.loads(line)
    record.pop("time")
    return record


def assert_equal_trees(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_equal_trees(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_equal_trees(x, y, f"{where}[{index}]")
    else:
        assert a == b, where


@pytest.mark.slow
def test_torchrun_ddp_training_on_cpu_with_two_processes(tmp_path):
    """`torchrun --nproc-per-node 2 -m plugin_host train gated-gan` (gloo): one log, one model, both ranks stepped."""
    import os
    import subprocess
    import sys

    photos, styles = write_toy_data(tmp_path)
    out = tmp_path / "ddp.pth"
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in TINY_TRAINING.items()]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "plugin_host", "train", "gated-gan", "--device", "cpu", "--content", str(photos), "--styles",
         str(styles), "--out", str(out), "--iterations", "2", "--checkpoint-every", "2", *flags, "--quiet"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (tmp_path / "ddp.pth.log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]  # rank 0 alone writes the log
    assert out.exists() and (tmp_path / "ddp.pth.ckpt").exists()
    assert json.loads((tmp_path / "ddp.pth.json").read_text())["styles"] == ["blue", "red"]
