"""Perceptual-loss networks: published checkpoint layout, sizes, strength, tiling, training, evaluation.

Tiny random networks stand in where quality does not matter; the shipped models are checked in
test_perceptual_quality.py.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from plugin_host.errors import WeightsError
from plugin_host.plugins import load_registry
from plugin_host.api import load_method
from plugin_host.runner import Session
from plugin_host.testing import MethodConformance

#: Keys and shapes of pytorch/examples' fast_neural_style checkpoints (shared/weights/MANIFEST.md).
PUBLISHED = {"conv1.conv2d.weight": (32, 3, 9, 9), "conv1.conv2d.bias": (32,), "in1.weight": (32,), "in1.bias": (32,),
             "conv2.conv2d.weight": (64, 32, 3, 3), "conv2.conv2d.bias": (64,), "in2.weight": (64,), "in2.bias": (64,),
             "conv3.conv2d.weight": (128, 64, 3, 3), "conv3.conv2d.bias": (128,), "in3.weight": (128,),
             "in3.bias": (128,),
             **{f"res{i}.{part}": shape for i in range(1, 6) for part, shape in (
                 ("conv1.conv2d.weight", (128, 128, 3, 3)), ("conv1.conv2d.bias", (128,)), ("in1.weight", (128,)),
                 ("in1.bias", (128,)), ("conv2.conv2d.weight", (128, 128, 3, 3)), ("conv2.conv2d.bias", (128,)),
                 ("in2.weight", (128,)), ("in2.bias", (128,)))},
             "deconv1.conv2d.weight": (64, 128, 3, 3), "deconv1.conv2d.bias": (64,), "in4.weight": (64,),
             "in4.bias": (64,), "deconv2.conv2d.weight": (32, 64, 3, 3), "deconv2.conv2d.bias": (32,),
             "in5.weight": (32,), "in5.bias": (32,), "deconv3.conv2d.weight": (3, 32, 9, 9),
             "deconv3.conv2d.bias": (3,)}
LEGACY = {f"{prefix}{name}.running_{stat}": (channels,) for prefix, name, channels in
          [("", "in1", 32), ("", "in2", 64), ("", "in3", 128), ("", "in4", 64), ("", "in5", 32),
           *((f"res{i}.", n, 128) for i in range(1, 6) for n in ("in1", "in2"))] for stat in ("mean", "var")}


def random_state(layout, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=gen) * 0.05 for key, shape in layout.items()}


def test_published_checkpoint_loads_with_its_legacy_keys_dropped():
    from plugin_host_perceptual.net import TransformerNet, load_transformer

    assert sum(math.prod(s) for s in PUBLISHED.values()) == 1_679_235  # the MANIFEST's parameter count
    state = {**random_state(PUBLISHED), **random_state(LEGACY)}
    net = load_transformer(state)
    assert isinstance(net, TransformerNet) and net.config == {"norm": "instance", "upsample": "nearest",
                                                              "width": "full", "downsample": "strided"}
    assert torch.equal(net.state_dict()["res3.conv2.conv2d.weight"], state["res3.conv2.conv2d.weight"])
    assert net(torch.rand(1, 3, 20, 28) * 255).shape == (1, 3, 20, 28)


@pytest.mark.parametrize("case, message", [
    ("missing", r"1 missing keys \(deconv3.conv2d.bias\)"),
    ("shape", r"wrong shapes \(in1.weight \(16,\) instead of \(32,\)"),
    ("adain", r"unexpected keys \(1.weight"),
    ("list", "expected a state dict"),
])
def test_wrong_layouts_get_a_clear_error(case, message):
    from plugin_host_perceptual.net import load_transformer

    state: object = random_state(PUBLISHED)
    if case == "missing":
        del state["deconv3.conv2d.bias"]
    elif case == "shape":
        state["in1.weight"] = torch.zeros(16)
    elif case == "adain":
        state["1.weight"] = torch.zeros(256, 512, 3, 3)
    else:
        state = [torch.zeros(3)]
    with pytest.raises(WeightsError, match=message) as info:
        load_transformer(state)
    assert "fast_neural_style" in info.value.hint


@pytest.mark.parametrize("width, upsample, norm", [("full", "nearest", "instance"), ("half", "transposed", "batch"),
                                                   ("half", "bilinear", "instance")])
@pytest.mark.parametrize("size", [(33, 47), (5, 9), (64, 64)])
def test_style_network_keeps_any_size(width, upsample, norm, size):
    from plugin_host_perceptual.net import TransformerNet

    net = TransformerNet(norm=norm, upsample=upsample, width=width).eval()
    assert net(torch.rand(1, 3, *size) * 255).shape == (1, 3, *size)


def test_blur_downsampling_keeps_any_size_and_the_published_keys():
    from plugin_host_perceptual.net import TransformerNet

    strided, blurred = TransformerNet(), TransformerNet(upsample="bilinear", downsample="blur")
    blurred.load_state_dict(strided.state_dict())  # same weights: only where the stride happens differs
    for size in [(33, 47), (5, 9)]:
        assert blurred.eval()(torch.rand(1, 3, *size) * 255).shape == (1, 3, *size)


def random_style_net(seed=0):
    """The shipped configuration with random weights, instance norms' scales and shifts included."""
    from plugin_host_perceptual.net import TransformerNet

    torch.manual_seed(seed)
    net = TransformerNet().eval().requires_grad_(False)
    for norm in (m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)):
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-0.5, 0.5)
    return net


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (1, 3, 37, 50), (2, 3, 20, 24), (1, 3, 8, 9)])
def test_channels_last_inference_equals_the_module(shape):
    net = random_style_net()
    image = torch.rand(*shape) * 255
    with torch.no_grad():
        assert net.runs_channels_last(image)
        expected, got = net(image), net.forward_channels_last(image)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4 * float(expected.abs().max()))


def test_channels_last_inference_is_taken_only_where_it_computes_the_same():
    from plugin_host.imaging.tiling import frozen_instance_norm
    from plugin_host.precision import compute_in
    from plugin_host_perceptual.net import TransformerNet, apply_net

    net, image = random_style_net(), torch.rand(1, 3, 32, 32)
    calls = []
    net.forward_channels_last = lambda x: calls.append(x.shape) or TransformerNet.forward_channels_last(net, x)
    with torch.no_grad():
        apply_net(net, image)
        assert calls == [(1, 3, 32, 32)] and net.runs_channels_last(image)
        assert not net.runs_channels_last(torch.rand(1, 3, 7, 32))  # below the networks' minimum side
        assert not TransformerNet(upsample="bilinear").eval().runs_channels_last(image)
        with frozen_instance_norm(net, image):  # the hooks of shared statistics: applied by the path itself
            assert net.runs_channels_last(image)
        net.in3.register_forward_hook(lambda *args: None)  # any other hook: the module path
        assert not net.runs_channels_last(image)
    assert not random_style_net().runs_channels_last(image)  # autograd on: training
    with torch.no_grad():
        assert not compute_in(random_style_net(), torch.bfloat16, torch.float32).runs_channels_last(image)


def test_channels_last_inference_uses_the_statistics_tiles_share():
    from plugin_host.imaging.tiling import frozen_instance_norm

    net, image = random_style_net(), torch.rand(1, 3, 48, 40) * 255
    reference = torch.rand(1, 3, 64, 64) * 255  # other statistics than the image's own
    with torch.no_grad(), frozen_instance_norm(net, reference):
        expected, got = net(image), net.forward_channels_last(image)
    own = net.forward_channels_last(image)  # outside the block: the image's own statistics again
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4 * float(expected.abs().max()))
    assert (own - got).abs().max() > 100 * (got - expected).abs().max()


@pytest.mark.parametrize("scale", [4, 8])
def test_sr_network_scales_odd_sizes(scale):
    from plugin_host_perceptual.net import SuperResolutionNet

    net = SuperResolutionNet(scale=scale, channels=8, blocks=1).eval()
    assert net(torch.rand(1, 3, 13, 7)).shape == (1, 3, 13 * scale, 7 * scale)
    bare = SuperResolutionNet(scale=scale, channels=8, blocks=1, residual=False).eval()
    assert bare(torch.rand(1, 3, 5, 6)).shape == (1, 3, 5 * scale, 6 * scale)


# --- the methods, with tiny models installed in a temporary models folder ---------------------

def tiny_models(folder: Path) -> None:
    """A half-width random style model and a small ×4 SR model, as `train` would install them."""
    from plugin_host.training import export_model
    from plugin_host.weights.user_models import write_card
    from plugin_host_perceptual.net import SuperResolutionNet, TransformerNet

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for name, net, card in (
            ("tiny-style", TransformerNet(width="half"), {"model_kind": "perceptual-style", "kind": "style"}),
            ("tiny-sr", SuperResolutionNet(scale=4, channels=8, blocks=1, norm="instance"),
             {"model_kind": "perceptual-sr", "kind": "sr"})):
        metadata = {**card, **net.config}
        export_model(folder / f"{name}.pth", net, metadata, dtype=torch.float32)
        write_card(folder / f"{name}.pth", {"name": name, **metadata})


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    import os

    folder = Path(os.environ["PLUGIN_HOST_MODELS"])
    tiny_models(folder)
    return Session(device="cpu", seed=0)


class TestPerceptualConformance(MethodConformance):
    method_name = "perceptual"
    params = {"model": "tiny-style", "tile_size": 32}  # tiles: several steps, so a cancel can come between

    def registry(self):
        import os

        tiny_models(Path(os.environ["PLUGIN_HOST_MODELS"]))
        return load_registry()


class TestSuperResolutionConformance(MethodConformance):
    method_name = "perceptual-sr"
    params = {"model": "tiny-sr"}
    size = (12, 16)

    def registry(self):
        import os

        tiny_models(Path(os.environ["PLUGIN_HOST_MODELS"]))
        return load_registry()


def test_installed_models_are_choices_of_the_method(session, capsys):
    from plugin_host.cli import main

    names = session.registry.model_names()
    assert "tiny-style" in names["perceptual-style"] and "tiny-sr" in names["perceptual-sr"]
    assert "tiny-sr" not in names["perceptual-style"]
    assert main(["info", "perceptual", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    model = next(p for p in info["params"] if p["name"] == "model")
    assert "tiny-style" in model["choices"] and "fast-neural-style-candy" in model["choices"]


def test_strength_zero_returns_the_input_and_strength_blends(session, tiny_image):
    method = load_method("perceptual", session=session)
    assert torch.equal(method(tiny_image, model="tiny-style", strength=0.0), tiny_image)
    full = method(tiny_image, model="tiny-style", strength=1.0)
    half = method(tiny_image, model="tiny-style", strength=0.5)
    assert torch.allclose(half, (tiny_image + full) / 2, atol=1e-5)


def test_tiled_equals_untiled(session):
    gen = torch.Generator().manual_seed(3)
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 24, 32, generator=gen), size=(96, 128),
                                            mode="bilinear")
    method = load_method("perceptual", session=session)
    whole = method(image, model="tiny-style", tile_size=0)
    tiled = method(image, model="tiny-style", tile_size=64)
    assert (whole - tiled).abs().max() < 4 / 255
    sr = load_method("perceptual-sr", session=session)
    small = image[..., :64, :80]  # tile_size counts output pixels: tiles of 64 input pixels here
    assert (sr(small, model="tiny-sr", tile_size=0) - sr(small, model="tiny-sr", tile_size=256)).abs().max() < 2 / 255


def test_frozen_instance_norm_makes_tiles_share_statistics():
    from plugin_host.imaging.tiling import frozen_instance_norm

    norm = torch.nn.InstanceNorm2d(2, affine=True)
    image = torch.rand(1, 2, 8, 8) * 10
    with frozen_instance_norm(norm, image):
        left, right = norm(image[..., :4]), norm(image[..., 4:])
    assert torch.allclose(torch.cat([left, right], -1), norm(image), atol=1e-5)
    assert not torch.allclose(torch.cat([norm(image[..., :4]), norm(image[..., 4:])], -1), norm(image), atol=1e-3)


def _photos(folder: Path, count: int = 4, size: int = 48) -> Path:
    from PIL import Image

    folder.mkdir()
    gen = torch.Generator().manual_seed(1)
    for i in range(count):
        smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=gen), size=(size, size),
                                                 mode="bicubic").clamp(0, 1)[0]
        Image.fromarray((smooth.permute(1, 2, 0) * 255).byte().numpy()).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("method_name", ["perceptual", "perceptual-sr"])
def test_tiny_training_lowers_the_loss_and_resumes_exactly(tmp_path, samples_dir, default_encoder, method_name):
    from plugin_host.training import load_checkpoint

    photos = _photos(tmp_path / "photos")
    style = samples_dir / "starry_night.jpg"
    registry = load_registry()
    method = Session(registry=registry, device="cpu").method(method_name)

    def train(iterations: int, out: Path, resume: bool = True):
        session = Session(registry=registry, device="cpu", seed=0)
        values = {"content_dir": photos, "out": out, "iterations": iterations, "batch_size": 2, "crop": 32,
                  "checkpoint_every": 3, "log_every": 1, "preview_every": 0, "resume": resume,
                  "learning_rate": 1e-3}
        values.update({"style": style, "style_size": 64, "width": "half", "downsample": "blur", "upsample": "bilinear",
                       "shift_weight": 1.0, "shift_start": 4} if method_name == "perceptual"
                      else {"loss": "feature"})
        params = method.train_schema.validate(values, models=registry.model_names())
        method.resolve_train()(params, session.context)
        return load_checkpoint(out.with_name(out.name + ".ckpt"))

    straight = train(8, tmp_path / "a.pth")
    train(3, tmp_path / "b.pth")
    resumed = train(8, tmp_path / "b.pth")
    for key, value in straight["models"]["net"].items():
        assert torch.equal(value, resumed["models"]["net"][key]), key
    log = [json.loads(line) for line in (tmp_path / "a.pth.log.jsonl").read_text().splitlines()]
    losses = [record["loss"] for record in log]
    assert len(losses) == 8 and min(losses[:4]) < losses[0], losses  # before the shift loss joins
    if method_name == "perceptual":  # the shift loss starts at step 5 (index 4), after the resume at 3
        assert ["shift" in record for record in log] == [False] * 4 + [True] * 4
    card = json.loads((tmp_path / "a.pth.json").read_text())
    assert card["steps"] == 8 and card["model_kind"].startswith("perceptual")
    if method_name == "perceptual":
        assert card["style_name"] == style.stem and len(card["thumbnail"]) > 100


def test_training_starts_from_a_given_network_and_refuses_one_of_another_shape(tmp_path, samples_dir,
                                                                               default_encoder):
    from plugin_host.sdk import ParameterError, load_model_export
    from plugin_host.training import export_model
    from plugin_host_perceptual.net import TransformerNet

    photos = _photos(tmp_path / "photos")
    start = TransformerNet(width="half")
    export_model(tmp_path / "start.pth", start, {"kind": "style", **start.config})
    registry = load_registry()
    method = Session(registry=registry, device="cpu").method("perceptual")

    def train(**values):
        session = Session(registry=registry, device="cpu", seed=0, precision="fp32")
        values = {"content_dir": photos, "style": samples_dir / "starry_night.jpg", "style_size": 64, "crop": 32,
                  "batch_size": 1, "iterations": 1, "preview_every": 0, "width": "half", "learning_rate": 1e-7,
                  **values}
        method.resolve_train()(method.train_schema.validate(values, models=registry.model_names()), session.context)

    train(out=tmp_path / "a.pth", start_from=str(tmp_path / "start.pth"))
    trained, _ = load_model_export(tmp_path / "a.pth", "m", "")
    for key, value in start.state_dict().items():  # one step at lr 1e-7: the starting weights, to fp16 precision
        assert torch.allclose(trained[key].float(), value, atol=1e-2, rtol=1e-2), key
    with pytest.raises(ParameterError, match="another shape"):
        train(out=tmp_path / "b.pth", start_from=str(tmp_path / "start.pth"), width="full")
    with pytest.raises(ParameterError, match="neither an installed style model nor a file"):
        train(out=tmp_path / "c.pth", start_from=str(tmp_path / "missing.pth"))


def test_sr_eval_psnr_matches_a_hand_computation():
    from plugin_host_perceptual.evaluate import y_metrics

    reference = torch.zeros(1, 3, 24, 24)
    output = reference.clone()
    output[0, :, 5, 5] = 10 / 255  # one pixel off by 10 in every channel
    # Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for R, G, B in 0..255: grey +10 moves Y by 8.588
    step = (65.481 + 128.553 + 24.966) * 10 / 255
    border = 2
    mse = step ** 2 / (20 * 20)
    psnr, ssim = y_metrics(output, reference, border=border)
    assert psnr == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-6)
    assert ssim < 1
    assert y_metrics(reference, reference, border=border)[1] == pytest.approx(1.0)


def test_degrade_blurs_then_downsamples():
    from plugin_host_perceptual.degrade import degrade

    image = torch.rand(1, 3, 32, 24)
    low = degrade(image, 4, sigma=1.0)
    assert low.shape == (1, 3, 8, 6)
    assert low.std() < image.std()  # blurred and averaged
    assert torch.allclose(degrade(torch.full((1, 3, 16, 16), 0.3), 4), torch.full((1, 3, 4, 4), 0.3), atol=1e-5)


@pytest.mark.slow
def test_torchrun_ddp_style_training_on_cpu_with_two_processes(tmp_path, samples_dir, default_encoder):
    """`torchrun --nproc-per-node 2 -m plugin_host train perceptual` with gloo: one log, one model."""
    import os
    import subprocess
    import sys

    photos = _photos(tmp_path / "photos")
    style = samples_dir / "starry_night.jpg"
    out = tmp_path / "ddp.pth"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "plugin_host", "train", "perceptual", "--device", "cpu", "--style", style, "--style-size", "64",
         "--content-dir", photos, "--out", out, "--iterations", "2", "--batch-size", "1", "--crop", "32",
         "--width", "half", "--shift-weight", "1", "--shift-start", "0", "--checkpoint-every", "2", "--log-every", "1", "--preview-every", "0",
         "--quiet"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (tmp_path / "ddp.pth.log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]  # rank 0 alone writes the log
    assert out.exists() and json.loads((tmp_path / "ddp.pth.json").read_text())["steps"] == 2


@pytest.mark.parametrize("method", ["perceptual", "perceptual-sr"])
def test_train_takes_content_for_content_dir_as_adain_does(method, tmp_path):
    from plugin_host.cli import build_parser

    parser = build_parser(load_registry())
    for flag in ("--content", "--content-dir"):
        args = parser.parse_args(["train", method, flag, str(tmp_path), "--out", str(tmp_path / "m.pth")])
        assert args.content_dir == str(tmp_path), flag
