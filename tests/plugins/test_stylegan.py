"""The StyleGAN methods end to end: conformance, the CLI and Python API of a method without an image,
projection and restyling, training (losses, exact resume, torchrun) and KID.

A tiny random generator (tests/plugins/stylegan_fixtures.py) stands in where quality does not matter; the
encoder is the real default VGG16.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from plugin_host.cli import main
from plugin_host.runner import Session
from plugin_host.testing import MethodConformance
from stylegan_fixtures import TEST_GENERATOR, export_generator, registry_with, tiny_generator

FOLDER = Path(tempfile.gettempdir()) / "plugin_host-stylegan-tests"


def stylegan_registry():
    """The installed plugins plus the tiny generator (32 px, modulated, noise strengths 0.2), written once."""
    path = FOLDER / "stylegan-test.pth"
    if not path.exists():
        FOLDER.mkdir(exist_ok=True)
        export_generator(tiny_generator(noise=0.2), path)
    return registry_with(path)


@pytest.fixture(scope="module")
def registry():
    return stylegan_registry()


class TestRenderConformance(MethodConformance):
    method_name = "stylegan"
    params = {"generator": TEST_GENERATOR, "seeds": [1, 2]}
    bounds = {"size": (0, 48), "crossover": (1, 64)}

    def registry(self):
        return stylegan_registry()


class TestProjectConformance(MethodConformance):
    method_name = "stylegan-project"
    params = {"generator": TEST_GENERATOR, "steps": 2}
    size = (24, 40)
    bounds = {"steps": (1, 2), "style_seed": (0,), "checkpoint_size": (), "fade_in": (), "noise_regularize": (0.0,),
              "truncation_cutoff": (0,), "perceptual_weight": (0.0,), "learning_rate": (1.0,)}

    def registry(self):
        return stylegan_registry()


def run_cli(*argv, registry) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv], registry=registry)
    return code, err.getvalue()


def test_render_from_the_cli_without_an_image(tmp_path, registry):
    out = tmp_path / "seed3.png"
    threads = torch.get_num_threads()
    try:
        code, err = run_cli("run", "stylegan", "--generator", TEST_GENERATOR, "--seed", 3, "-o", out, "-q",
                            "--threads", 1, registry=registry)
        assert code == 0, err
        assert torch.get_num_threads() == 1  # the host's --threads, for every method
    finally:
        torch.set_num_threads(threads)
    from PIL import Image

    with Image.open(out) as picture:
        assert picture.size == (32, 32) and picture.mode == "RGB"
    code, _ = run_cli("run", "stylegan", "--generator", TEST_GENERATOR, "--seeds", "1,2,3", "--size", 40, "-o",
                      tmp_path / "grid.png", "-q", registry=registry)
    with Image.open(tmp_path / "grid.png") as picture:
        assert code == 0 and picture.size == (80, 80)  # 2 × 2, one cell left black
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert run_cli("run", "stylegan", "--generator", TEST_GENERATOR, "-q", registry=registry)[0] == 0
    finally:
        os.chdir(cwd)
    assert (tmp_path / "stylegan.png").is_file()


def test_the_shipped_generator_renders_by_default_and_an_unknown_one_is_one_line(tmp_path):
    out = tmp_path / "shipped.png"
    proc = subprocess.run([sys.executable, "-m", "plugin_host", "run", "stylegan", "--seed", "3", "--collection",
                           "vangogh", "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    with Image.open(out) as picture:
        assert picture.size == (128, 128)
    proc = subprocess.run([sys.executable, "-m", "plugin_host", "run", "stylegan", "--generator", "my-faces",
                           "--seed", "3", "-o", str(tmp_path / "x.png")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: --generator: unknown stylegan-generator model 'my-faces'"), lines
    assert "stylegan-paintings" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_a_run_that_finds_no_generator_says_how_to_get_one():
    from plugin_host_stylegan.models import no_generator_error

    error = no_generator_error("my-faces")
    assert "plugin_host train stylegan" in error.message and "--checkpoint FILE" in error.message


def test_python_api_renders_without_an_image_and_a_checkpoint_file_works(tmp_path, registry):
    import plugin_host
    from plugin_host.errors import InputImageError
    from stylegan_fixtures import stylegan1_state

    session = Session(registry=registry, device="cpu", seed=5)
    render = plugin_host.load_method("stylegan", session=session)
    picture = render(generator=TEST_GENERATOR, truncation=0.5)
    assert picture.size == (32, 32)
    with pytest.raises(InputImageError, match="takes no image"):
        render(torch.rand(1, 3, 8, 8), generator=TEST_GENERATOR)
    torch.save({"g_running": stylegan1_state(trained_blocks=3)}, tmp_path / "train_step-4.model")
    result = session.run("stylegan", {}, {"checkpoint": tmp_path / "train_step-4.model", "seeds": [1]})
    assert result.rgb.shape == (1, 3, 16, 16) and result.alpha is None


def test_render_options_reach_the_generator(registry):
    session = Session(registry=registry, device="cpu", seed=0, precision="fp32")

    def render(**params):
        return session.run("stylegan", {}, {"generator": TEST_GENERATOR, **params}).rgb

    average = [render(seeds=[s], truncation=0.0, truncation_cutoff=64, noise_mode="const") for s in (1, 2)]
    assert torch.equal(average[0], average[1])
    assert not torch.equal(render(seeds=[1]), render(seeds=[2]))
    assert torch.equal(render(seeds=[1], noise_mode="none", noise_seed=1), render(seeds=[1], noise_mode="none", noise_seed=2))
    assert not torch.equal(render(seeds=[1], noise_seed=1), render(seeds=[1], noise_seed=2))
    first, second = (render(seeds=[s], noise_mode="const") for s in (1, 2))
    mixed = render(seeds=[1], mix_seed=2, crossover=4, noise_mode="const")
    assert not torch.equal(mixed, first) and not torch.equal(mixed, second)
    assert torch.equal(render(seeds=[1], mix_seed=1, crossover=4, noise_mode="const"), first)
    assert torch.equal(render(seeds=[1], mix_seed=2, mix_styles="fine", noise_mode="const"), first)  # 32 px: none


def test_super_resolution_enlarges_with_more_detail_than_a_resize(registry):
    """Size 128 from the 32-px generator: two ×4 passes of perceptual-sr would overshoot, one is enough."""
    session = Session(registry=registry, device="cpu", seed=0, precision="fp32")

    def render(**params):
        return session.run("stylegan", {}, {"generator": TEST_GENERATOR, "seeds": [3], "noise_mode": "const",
                                            "size": 128, **params}).rgb

    resized, enlarged = render(), render(upscale="super-resolution")
    assert resized.shape == enlarged.shape == (1, 3, 128, 128)

    def detail(image):  # mean absolute Laplacian: what a smooth resize lacks
        return F.conv2d(image.mean(1, keepdim=True), torch.tensor([[[[0., 1, 0], [1, -4, 1], [0, 1, 0]]]])).abs().mean()

    assert detail(enlarged) > 1.2 * detail(resized)
    assert F.interpolate(enlarged, size=32, mode="area").sub(F.interpolate(resized, size=32, mode="area")).abs().mean() < 0.05


def test_projection_finds_a_generated_picture_again_and_restyles_it(tmp_path, registry):
    """A picture the generator drew is projected back (60 steps): the loss falls to under a fifth and the
    redrawn picture is at 25 dB PSNR or better (measured: loss / 12.8, 28.3 dB; the average style's picture,
    where the projection starts, is at 20.8 dB). The generator has no noise: its W+ alone makes the picture."""
    from plugin_host.sdk import DEFAULT_ENCODER
    from plugin_host_stylegan.project import PERCEPTUAL_LAYERS, project

    generator = tiny_generator()
    with torch.no_grad():
        w = generator.styles(torch.randn(1, 32, generator=torch.Generator().manual_seed(7)), psi=0.7)
        target = ((generator.synthesis(w, generator.make_noise(1, "random", seed=3)) + 1) / 2).clamp(0, 1)
        start = ((generator.synthesis(generator.average(None, 1)[:, None].repeat(1, generator.n_latent, 1), None)
                  + 1) / 2).clamp(0, 1)
    session = Session(registry=registry, device="cpu", seed=0, precision="fp32")
    encoder = session.context.load_encoder(DEFAULT_ENCODER, PERCEPTUAL_LAYERS)
    found = project(generator, target, encoder, steps=60, rng=torch.Generator().manual_seed(1))
    with torch.no_grad():
        again = ((generator.synthesis(found.w_plus, found.noise) + 1) / 2).clamp(0, 1)

    def psnr(a, b):
        return float(10 * torch.log10(1 / F.mse_loss(a, b)))

    assert found.losses[-1] < found.losses[0] / 5, found.losses[::10]
    assert psnr(again, target) >= 25 and psnr(again, target) > psnr(start, target) + 5, (psnr(again, target), psnr(start, target))

    # the method: the same picture, its latent saved, then reused without projecting; restyled from a seed
    latent = tmp_path / "latent.pt"
    params = {"generator": TEST_GENERATOR, "steps": 3}
    projected = session.run("stylegan-project", {"content": target}, {**params, "save_latent": latent}).rgb
    reused = session.run("stylegan-project", {"content": target}, {**params, "latent": latent, "steps": 1}).rgb
    assert torch.equal(projected, reused)
    with torch.no_grad():  # a script's no_grad does not stop the projection's optimisation
        assert torch.equal(session.run("stylegan-project", {"content": target}, params).rgb, projected)
    restyled = session.run("stylegan-project", {"content": target},
                           {**params, "latent": latent, "style_seed": 9, "restyle_layers": "coarse"}).rgb
    assert not torch.equal(restyled, reused)
    other = tiny_generator(resolution=16)
    export_generator(other, tmp_path / "other.pth")
    from plugin_host.errors import ParameterError

    with pytest.raises(ParameterError, match="saved for another generator"):
        session.run("stylegan-project", {"content": target},
                    {"checkpoint": tmp_path / "other.pth", "latent": latent, "steps": 1})


def test_the_sheet_script_draws_every_figure_of_a_generator_with_classes(tmp_path, monkeypatch, capsys):
    """docs/make_stylegan_sheet.py on a tiny generator with two classes: its sheets have the rows and columns
    its docstring promises (cells of 32 px, gaps of 4)."""
    import runpy

    from PIL import Image

    path = export_generator(tiny_generator(noise=0.2, classes=("photo", "monet")), tmp_path / "classes.pth")
    shared = tmp_path / "shared"  # training pictures for the measures: noisy "photos", flat "Monets"
    for folder, picture in ((shared / "datasets" / "content", lambda i: Image.effect_noise((40, 40), 40 + 20 * i)),
                            (shared / "datasets" / "style" / "monet", lambda i: Image.new("L", (40, 40), 60 * i))):
        folder.mkdir(parents=True)
        for i in range(3):
            picture(i).convert("RGB").save(folder / f"{i}.png")
    monkeypatch.setenv("PLUGIN_HOST_SHARED", str(shared))
    script = Path(__file__).resolve().parents[2] / "docs" / "make_stylegan_sheet.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--checkpoint", str(path), "--out-dir", str(tmp_path),
                                      "--side", "32", "--measure", "2"])
    runpy.run_path(str(script), run_name="__main__")
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == ["photo", "monet"]
    for name in ("photo", "monet"):
        found = report["measures"][name]
        assert found["own_class_real"] == 1.0  # the two made-up collections are easy to tell apart
        assert 0 <= found["own_class"] <= 1 and 0 <= found["peak_within_3_5"] <= 1
        assert 0 <= found["nearest_real_min"] <= found["nearest_real_median"]
        assert 0 < found["layout_change_noise"] < 1 and 0 < found["layout_change_styles"] < 1

    def cells(file):
        with Image.open(tmp_path / file) as image:
            return ((image.width + 4) // 36, (image.height + 4) // 36)

    # 8 seeds a class, then a truncation row a class; mixing: 4 destinations and the source, 3 mixed rows;
    # noise: 4 draws and their spread, then the 4 noise layer settings
    assert [cells(f) for f in ("stylegan-sheet.jpg", "stylegan-mixing.jpg", "stylegan-noise.jpg")] == \
        [(8, 4), (5, 4), (5, 2)]


# -- training ----------------------------------------------------------------------------------------

def _training_data(folder: Path) -> str:
    from PIL import Image

    for name, offset in (("dots", 0), ("flat", 1)):
        (folder / name).mkdir(parents=True)
        for i in range(4):
            picture = Image.effect_noise((24, 24), 30 + 10 * i).convert("RGB") if offset == 0 else \
                Image.new("RGB", (24, 24), (60 * i, 90, 200 - 40 * i))
            picture.save(folder / name / f"{i}.png")
    return f"{folder / 'flat'}"


TINY = {"resolution": 16, "channel_base": 128, "channel_max": 16, "z_dim": 16, "w_dim": 16, "mapping_layers": 2,
        "batch_size": 4, "r1_every": 2, "log_every": 1, "preview_every": 0, "learning_rate": 0.002, "kid_every": 0}


def _train(data, out: Path, iterations: int, precision: str = "fp32", **extra):
    session = Session(device="cpu", seed=0, precision=precision)
    method = session.method("stylegan")
    params = method.train_schema.validate({"data": data, "out": out, "iterations": iterations,
                                           "checkpoint_every": 12, **TINY, **extra},
                                          models=session.registry.model_names())
    method.resolve_train()(params, session.context)


def test_training_moves_the_losses_as_a_gan_does_and_resumes_exactly(tmp_path, default_encoder):
    from plugin_host.training import load_checkpoint
    from plugin_host_stylegan.models import read_generator_file

    data = _training_data(tmp_path)
    snapshots = {"kid_every": 12 * 4 / 1000, "kid_images": 10}  # a KID snapshot every 12 steps of 4 pictures
    _train(data, tmp_path / "a.pth", 24, **snapshots)
    _train(data, tmp_path / "b.pth", 12, **snapshots)
    _train(data, tmp_path / "b.pth", 24, **snapshots)
    straight, resumed = (load_checkpoint(tmp_path / f"{n}.pth.ckpt") for n in "ab")
    for network in ("generator", "discriminator", "generator_ema"):
        for key, value in straight["models"][network].items():
            assert torch.equal(value, resumed["models"][network][key]), (network, key)
    log = [json.loads(line) for line in (tmp_path / "a.pth.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 25))
    late = log[12:]
    # D learns first: its loss falls below log 4 (chance) and G's rises above log 2, D scores reals higher
    assert sum(r["loss_d"] for r in late) / len(late) < math.log(4)
    assert sum(r["loss_g"] for r in late) / len(late) > math.log(2)
    assert sum(r["real_logit"] - r["fake_logit"] for r in late) > 0
    assert any(r["r1"] > 0 for r in log)
    generator = read_generator_file(tmp_path / "a.pth")
    assert generator.config.resolution == 16 and generator.w_avg.abs().sum() > 0  # w_avg tracked and saved
    card = json.loads((tmp_path / "a.pth.json").read_text())
    assert card["model_kind"] == "stylegan-generator" and card["steps"] == 24
    # KID snapshots: measured on their own random numbers (the resumed run is still exact, above), logged
    # and saved beside the model, the same values for the straight and the resumed run
    kids = {n: [json.loads(line) for line in (tmp_path / f"{n}.pth.kid.jsonl").read_text().splitlines()] for n in "ab"}
    assert [(r["step"], r["kimg"]) for r in kids["a"]] == [(12, 0.048), (24, 0.096)]
    assert [r["kid"] for r in kids["a"]] == [r["kid"] for r in kids["b"]] and all(r["kid"] > 0 for r in kids["a"])
    snapshot = tmp_path / "a-snapshots" / "a-0000012.pth"
    assert json.loads(snapshot.with_name(snapshot.name + ".json").read_text())["kid"] == round(kids["a"][0]["kid"], 5)
    assert read_generator_file(snapshot).config.resolution == 16


def test_a_resumed_run_trains_at_the_learning_rate_given_now(tmp_path):
    """Adam's state holds its rate, and restoring it would silently keep the old one; a run goes on more slowly."""
    from plugin_host.training import load_checkpoint

    data = _training_data(tmp_path)
    _train(data, tmp_path / "slow.pth", 2, checkpoint_every=2)
    _train(data, tmp_path / "slow.pth", 4, checkpoint_every=2, learning_rate=0.0005)
    checkpoint = load_checkpoint(tmp_path / "slow.pth.ckpt")
    rates = {name: {group["lr"] for group in state["param_groups"]}
             for name, state in checkpoint["optimizers"].items()}
    lazy = TINY["r1_every"] / (TINY["r1_every"] + 1)  # D's rate is scaled for its lazy R1 steps
    assert checkpoint["step"] == 4 and rates == {"generator": {0.0005}, "discriminator": {0.0005 * lazy}}


def test_training_with_classes_from_sub_folders(tmp_path):
    from plugin_host_stylegan.models import read_generator_file

    _training_data(tmp_path / "data")
    _train(str(tmp_path / "data"), tmp_path / "c.pth", 2, class_folders=True, style_op="adain", preview_every=2)
    generator = read_generator_file(tmp_path / "c.pth")
    assert generator.config.classes == ("dots", "flat") and generator.config.style_op == "adain"
    assert generator.w_avg.shape == (2, 16) and not torch.equal(generator.w_avg[0], generator.w_avg[1])
    assert (tmp_path / "c-preview-0000002.png").is_file()


def test_fine_tuning_starts_from_a_generator_and_trains_only_the_classes_given(tmp_path):
    from plugin_host.sdk import ParameterError
    from plugin_host_stylegan.evaluate import generated_pictures
    from plugin_host_stylegan.models import read_generator_file

    _training_data(tmp_path / "data")
    _train(str(tmp_path / "data"), tmp_path / "start.pth", 4, class_folders=True)
    flat = f"flat={tmp_path / 'data' / 'flat'}"
    # the options of a new network (resolution 32 here) give way to the starting generator's own
    _train([flat], tmp_path / "tuned.pth", 2, init=str(tmp_path / "start.pth"), learning_rate=1e-6, resolution=32)
    _train([flat], tmp_path / "fresh.pth", 2, learning_rate=1e-6, resolution=32)
    start, tuned, fresh = (read_generator_file(tmp_path / f"{n}.pth") for n in ("start", "tuned", "fresh"))
    assert tuned.config == start.config and tuned.config.classes == ("dots", "flat")
    pictures = {n: next(generated_pictures(g, 4, 1)) for n, g in (("start", start), ("tuned", tuned))}
    assert (pictures["tuned"] - pictures["start"]).abs().mean() < 0.01  # two tiny steps from where it began
    assert fresh.config.resolution == 32
    # only the class trained moves its average style
    assert torch.equal(tuned.w_avg[0], start.w_avg[0]) and not torch.equal(tuned.w_avg[1], start.w_avg[1])
    # a discriminator warm-up as long as the run leaves the generator where it started, and trains D
    _train([flat], tmp_path / "warm.pth", 2, init=str(tmp_path / "start.pth"), d_warmup=2 * 4 / 1000)
    assert torch.equal(next(generated_pictures(read_generator_file(tmp_path / "warm.pth"), 4, 1)), pictures["start"])
    log = [json.loads(line) for line in (tmp_path / "warm.pth.log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and log[0]["loss_d"] != log[1]["loss_d"]
    with pytest.raises(ParameterError, match="init.*does not have the classes.*paper"):
        _train([f"paper={tmp_path / 'data' / 'flat'}"], tmp_path / "x.pth", 1, init=str(tmp_path / "start.pth"))
    assert not (tmp_path / "x.pth").exists()


def test_training_honours_the_precision(tmp_path):
    """bf16 runs the networks' passes in bfloat16 (the weights and Adam stay float32): same seed, other numbers."""
    data = _training_data(tmp_path)
    _train(data, tmp_path / "fp32.pth", 4)
    _train(data, tmp_path / "bf16.pth", 4, precision="bf16")
    logs = {n: [json.loads(line) for line in (tmp_path / f"{n}.pth.log.jsonl").read_text().splitlines()]
            for n in ("fp32", "bf16")}
    assert all(math.isfinite(r[key]) for r in logs["bf16"] for key in ("loss_d", "loss_g", "r1"))
    # the first D loss comes from the same pictures and weights: close, but not equal
    assert logs["bf16"][0]["loss_d"] == pytest.approx(logs["fp32"][0]["loss_d"], rel=0.05)
    assert logs["bf16"][0]["loss_d"] != logs["fp32"][0]["loss_d"]
    weights = torch.load(tmp_path / "bf16.pth.ckpt", weights_only=True)["models"]["generator"]
    assert all(value.dtype == torch.float32 for value in weights.values() if value.is_floating_point())


def test_torchrun_trains_with_two_processes(tmp_path):
    """`torchrun --nproc-per-node 2 -m plugin_host train stylegan` with gloo: one log, one model."""
    data = _training_data(tmp_path)
    out = tmp_path / "ddp.pth"
    flags = [x for k, v in TINY.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "plugin_host",
         "train", "stylegan", "--device", "cpu", "--precision", "fp32", "--data", data, "--out", str(out),
         "--iterations", "2", "--checkpoint-every", "2", *flags, "--quiet"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (tmp_path / "ddp.pth.log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
    assert json.loads(lines[-1])["kimg"] == pytest.approx(0.016)  # 2 steps × 4 images × 2 processes
    assert out.exists()


def test_kid_is_small_for_the_same_pictures_and_large_for_others(default_encoder, registry):
    from plugin_host.sdk import DEFAULT_ENCODER
    from plugin_host_stylegan.evaluate import (FEATURE_LAYERS, PooledFeatures, kernel_distance,
                                               nearest_real_distance, relative_spread)

    session = Session(registry=registry, device="cpu", seed=0, precision="fp32")
    features = PooledFeatures(session.context.load_encoder(DEFAULT_ENCODER, FEATURE_LAYERS), side=64)
    gen = torch.Generator().manual_seed(0)
    smooth = [F.interpolate(torch.rand(12, 3, 4, 4, generator=gen), size=32, mode="bilinear") for _ in range(2)]
    noisy = [torch.rand(12, 3, 32, 32, generator=gen)]
    same = kernel_distance(smooth[:1], smooth[1:], features, subset_size=12, subsets=20)
    other = kernel_distance(smooth[:1], noisy, features, subset_size=12, subsets=20)
    assert same == kernel_distance(smooth[:1], smooth[1:], features, subset_size=12, subsets=20)  # repeatable
    assert abs(same[0]) < 0.3 and other[0] > 2 and other[0] > 20 * abs(same[0])  # measured -0.1..0 and 4.1-4.7
    nearest = nearest_real_distance(smooth[:1], [smooth[0][:2], noisy[0][:2]], features)
    assert bool((nearest[:2] < 1e-3).all()) and bool((nearest[2:] > 1).all())
    assert relative_spread(smooth[:1], smooth[:1], features) == pytest.approx(1)
    assert relative_spread(smooth[:1], [smooth[0][:1].repeat(12, 1, 1, 1)], features) < 1e-3  # one picture, again


def test_the_bar_wants_a_margin_beyond_the_kids_own_spread():
    from plugin_host_stylegan.quality import well_below

    assert well_below({"kid": 0.27, "kid_std": 0.05, "baseline_kid": 0.34})
    assert not well_below({"kid": 0.32, "kid_std": 0.07, "baseline_kid": 0.34})  # below, but within the noise
    assert not well_below({"kid": 0.40, "kid_std": 0.01, "baseline_kid": 0.34})
    assert well_below({"kid": 0.9, "kid_std": 0.1})  # the photos themselves have no baseline


def test_the_evaluation_command_passes_a_generator_only_where_it_beats_the_photos(tmp_path, capsys,
                                                                                   default_encoder):
    """`plugin_host stylegan-eval`: a class whose "paintings" are the generator's own pictures (other seeds) is
    far closer to them than noisy "photos" are, so it meets the bar; the same generator measured against the
    photos themselves as paintings does not. A wrong class list is a one-line error (and its hint), exit 2."""
    from plugin_host.imaging.io import to_pil
    from plugin_host_stylegan.evaluate import generated_pictures

    generator = tiny_generator(noise=0.2, classes=("photo", "monet"))
    path = export_generator(generator, tmp_path / "classes.pth")
    photos, monets = tmp_path / "photos", tmp_path / "monets"
    photos.mkdir(), monets.mkdir()
    gen = torch.Generator().manual_seed(1)
    for index in range(16):
        to_pil(torch.rand(1, 3, 32, 32, generator=gen)).save(photos / f"{index}.png")
    for index, picture in enumerate(next(generated_pictures(generator, 16, 1, seed=99))):
        to_pil(picture[None]).save(monets / f"{index}.png")

    def evaluate(monet_folder: Path) -> dict:
        assert main(["stylegan-eval", "--checkpoint", str(path), "--data", f"photo={photos},monet={monet_folder}",
                     "--images", "16", "--device", "cpu", "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    report = evaluate(monets)
    monet = report["classes"]["monet"]
    assert "baseline_kid" not in report["classes"]["photo"]
    assert 0.3 < monet["spread"] < 3, monet  # other draws of the same generator vary about as much
    assert monet["kid"] < 0.2 * monet["baseline_kid"], monet
    assert report["meets_bar"] is (report["classes"]["photo"]["peak_ok_share"] >= 0.9 and monet["peak_ok_share"] >= 0.9)
    against_photos = evaluate(photos)["classes"]["monet"]
    assert against_photos["kid"] > against_photos["baseline_kid"] and abs(against_photos["baseline_kid"]) < 0.2
    plain = export_generator(tiny_generator(noise=0.2), tmp_path / "plain.pth")
    assert main(["stylegan-eval", "--checkpoint", str(plain), "--data", str(monets), "--images", "16",
                 "--device", "cpu", "--json"]) == 0
    unconditional = json.loads(capsys.readouterr().out)
    assert list(unconditional["classes"]) == ["all"] and unconditional["baseline"] is None
    code, err = run_cli("stylegan-eval", "--checkpoint", path, "--data", f"photo={photos}", registry=None)
    assert code == 2 and err.startswith("error: parameter 'data'") and "Traceback" not in err, err
