"""AdaIN: conformance, the op inside the method, blending, masks, tiling, training and resume.

A tiny random decoder (width 1/4) stands in where quality does not matter; the encoder is
the real default VGG16 (``default_encoder``: the shared weights, else the user's cache).
"""
from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

from plugin_host import UrlSource, WeightsEntry, hookimpl
from plugin_host.losses import mean_std
from plugin_host.plugins import load_registry
from plugin_host.runner import Session
from plugin_host.testing import MethodConformance

TEST_DECODER = "adain-decoder-test"


def tiny_decoder_registry(folder: Path, decoder=None):
    """A registry with an extra plugin that registers ``decoder`` (default: a random width-1/4 one) for the
    default encoder as ``TEST_DECODER``, exported in float32."""
    from plugin_host_adain.net import Decoder
    from plugin_host.training import export_model

    path = folder / "adain-decoder-test.pth"
    if decoder is not None or not path.exists():
        if decoder is None:
            torch.manual_seed(0)
            decoder = Decoder("vgg16", width=0.25)
        export_model(path, decoder, {"encoder": "vgg16-caffe-hed", **decoder.metadata()}, dtype=torch.float32)
    entry = WeightsEntry(TEST_DECODER, path.name, "adain-decoder", "vgg16", "caffe", UrlSource(path.as_uri()), None,
                         extra={"encoder": "vgg16-caffe-hed"})
    plugin = types.ModuleType("adain_test_decoder")
    plugin.register_weights = hookimpl(lambda register: register(entry))
    return load_registry(extra_plugins=[("adain_test_decoder", plugin)])


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return tiny_decoder_registry(tmp_path_factory.mktemp("adain"))


@pytest.fixture(scope="module")
def session(registry, default_encoder):
    return Session(registry=registry, device="cpu", seed=0)


class TestAdainConformance(MethodConformance):
    method_name = "adain"
    params = {"decoder": TEST_DECODER, "max_size": 64}

    def registry(self):
        import tempfile

        return tiny_decoder_registry(Path(tempfile.gettempdir()))


def test_style_statistics_are_remembered_by_the_styles_pixels_for_a_few_styles():
    from collections import OrderedDict

    from plugin_host_adain.run import STYLE_STATS_KEPT, _style_stats

    computed, remembered = [], OrderedDict()

    def compute(style):
        computed.append(style.clone())
        return style.mean(), style.std()

    style = torch.rand(1, 3, 16, 16)
    first = _style_stats(style, remembered, compute)
    assert _style_stats(style.clone(), remembered, compute) is first and len(computed) == 1
    changed = style.clone()
    changed[0, 0, 3, 3] += 1 / 255
    _style_stats(changed, remembered, compute)
    assert len(computed) == 2
    for i in range(STYLE_STATS_KEPT + 4):
        _style_stats(torch.full((1, 3, 4, 4), float(i)), remembered, compute)
    assert len(remembered) == STYLE_STATS_KEPT
    _style_stats(style, remembered, compute)  # forgotten: the least recently used went first
    assert len(computed) == 2 + STYLE_STATS_KEPT + 4 + 1


def test_a_second_run_with_the_same_style_skips_its_encoding_and_gives_the_same_picture(registry, default_encoder,
                                                                                          tiny_image, monkeypatch):
    from plugin_host_adain import run as adain_run

    session = Session(registry=registry, device="cpu", seed=0)
    images = {"content": tiny_image, "style": [tiny_image.flip(-1)]}
    first = session.run("adain", images, {"decoder": TEST_DECODER}).rgb
    calls = []
    original = adain_run.decoder_input
    monkeypatch.setattr(adain_run, "decoder_input", lambda *args: calls.append(args[2].shape) or original(*args))
    second = session.run("adain", images, {"decoder": TEST_DECODER}).rgb
    assert len(calls) == 1  # the content only
    torch.testing.assert_close(second, first, rtol=0, atol=0)


def test_global_content_statistics_override_the_tiles_own():
    from plugin_host_adain.net import adain

    torch.manual_seed(0)
    content, style = torch.randn(1, 8, 6, 10) * 3 + 1, torch.randn(1, 8, 7, 4) * 0.5 - 2
    whole = adain(content, *mean_std(style))
    left = adain(content[..., :5], *mean_std(style), content_stats=mean_std(content))
    assert torch.allclose(whole[..., :5], left, atol=1e-5)


def test_blend_weights_one_zero_equal_the_single_style(session, tiny_image):
    other = tiny_image.flip(-1) * 0.5
    raw = {"decoder": TEST_DECODER}
    single = session.run("adain", {"content": tiny_image, "style": [tiny_image.flip(-2)]}, raw).rgb
    blended = session.run("adain", {"content": tiny_image, "style": [tiny_image.flip(-2), other]}, raw,
                          blend_weights={"style": (1.0, 0.0)}).rgb
    assert torch.allclose(single, blended, atol=1e-6)


def test_strength_zero_is_the_decoders_reconstruction_of_the_content(session, tiny_image):
    from plugin_host_adain.models import load_models
    from plugin_host_adain.net import encode

    raw = {"decoder": TEST_DECODER, "strength": 0.0, "max_size": 0}
    a = session.run("adain", {"content": tiny_image, "style": [tiny_image.flip(-1)]}, raw).rgb
    b = session.run("adain", {"content": tiny_image, "style": [torch.rand_like(tiny_image)]}, raw).rgb
    assert torch.allclose(a, b, atol=1e-6)
    ctx = session.context
    encoder, decoder = load_models(ctx, TEST_DECODER)
    with torch.no_grad():
        features = encode(encoder, tiny_image.to(ctx.device, ctx.dtype))["relu4_1"]
        reconstruction = decoder(features).clamp(0, 1).float()
    torch.testing.assert_close(a, reconstruction[..., :a.shape[-2], :a.shape[-1]], atol=1e-6, rtol=0)


def test_former_names_alpha_and_content_size_still_work_with_a_warning(session, registry, tiny_image, tmp_path,
                                                                      capsys):
    from PIL import Image

    from plugin_host.api import MethodHandle
    from plugin_host.cli import main

    images = {"content": tiny_image, "style": [tiny_image.flip(-1)]}
    new = session.run("adain", images, {"decoder": TEST_DECODER, "strength": 0.5, "max_size": 16}).rgb
    assert max(new.shape[-2:]) == 16
    with pytest.warns(DeprecationWarning) as caught:
        old = session.run("adain", images, {"decoder": TEST_DECODER, "alpha": 0.5, "content_size": 16}).rgb
    assert sorted(str(w.message).split(":")[-1] for w in caught) == [" use 'max_size'", " use 'strength'"]
    torch.testing.assert_close(old, new, atol=1e-6, rtol=0)
    with pytest.warns(DeprecationWarning, match="'alpha' is deprecated"):
        python = MethodHandle(session, "adain")(tiny_image, style=tiny_image.flip(-1), decoder=TEST_DECODER,
                                                alpha=0.5, max_size=16)
    torch.testing.assert_close(python, new, atol=1e-6, rtol=0)

    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.new("RGB", (40, 20), (200, 100, 50)).save(content)
    Image.new("RGB", (20, 20), (20, 120, 220)).save(style)
    outputs = {}
    for label, flags in (("old", ["--alpha", "0.5", "--content-size", "16"]),
                         ("new", ["--strength", "0.5", "--max-size", "16"])):
        out = tmp_path / f"{label}.png"
        code = main(["run", "adain", str(content), "--style", str(style), "--decoder", TEST_DECODER, *flags,
                     "-o", str(out), "-q", "--device", "cpu", "--seed", "0"], registry=registry)
        err = capsys.readouterr().err
        assert code == 0, err
        outputs[label] = Image.open(out)
        if label == "old":
            assert err.splitlines() == [
                "warning: --alpha is deprecated and will be removed in the next release: use --strength",
                "warning: --content-size is deprecated and will be removed in the next release: use --max-size"]
        else:
            assert "deprecated" not in err
    assert outputs["old"].size == outputs["new"].size == (16, 8)
    assert outputs["old"].tobytes() == outputs["new"].tobytes()


def test_masks_give_each_region_its_own_style_statistics():
    """Left half takes style A, right half style B. The halves' content differs (bright and spread on the
    left, dark and flat on the right), so each region must be normalised with its own statistics for its
    targets to have exactly its style's mean and std."""
    from plugin_host_adain.run import _transfer

    torch.manual_seed(0)
    features = torch.rand(1, 512, 8, 16) * 0.1
    features[..., :8] = torch.rand(1, 512, 8, 8) * 2 + 3
    style_a = torch.randn(1, 512, 8, 8) * 2 + torch.linspace(0, 4, 512)[None, :, None, None]
    style_b = torch.randn(1, 512, 8, 8) * 0.3 - torch.linspace(0, 4, 512)[None, :, None, None]
    stats = [mean_std(style_a), mean_std(style_b)]
    masks = torch.zeros(1, 2, 8, 16)
    masks[:, 0, :, :8], masks[:, 1, :, 8:] = 1, 1
    target = _transfer(features, stats, torch.tensor([0.5, 0.5]), None, masks)
    for half, (style_mean, style_std) in ((target[..., :8], stats[0]), (target[..., 8:], stats[1])):
        mean, std = mean_std(half)
        torch.testing.assert_close(mean, style_mean, atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(std, style_std, atol=1e-3, rtol=2e-2)  # eps in the content's variance
    masks[:, 1] = 0  # nothing covers the right half any more: it keeps the content's features
    target = _transfer(features, stats, torch.tensor([0.5, 0.5]), None, masks)
    assert torch.allclose(target[..., 10:], features[..., 10:])


@pytest.mark.slow
@pytest.mark.parametrize("masked", [False, True], ids=["one-style", "two-masks"])
def test_tiled_matches_untiled_and_seams_are_invisible(session, samples_dir, masked):
    """The shipped decoder on a 896×512 photo (the bundled lighthouse, enlarged): two 512-px tiles sharing
    the smallest overlap (128 px) against one piece. Seam figure: the mean step between neighbouring
    columns across the cross-fade, tiled over untiled (1.0 = no seam)."""
    from plugin_host.imaging.io import load_image
    from plugin_host.imaging.resize import resize_to

    content = resize_to(load_image(samples_dir / "lighthouse.jpg").rgb, (512, 896))
    styles = [load_image(samples_dir / name).rgb for name in ("great_wave.jpg", "starry_night.jpg")]
    inputs = {"content": content, "style": styles[:1]}
    if masked:  # left takes the wave, right the starry night, the border inside the overlap
        left = torch.zeros(1, 3, 512, 896)
        left[..., :440] = 1
        inputs = {"content": content, "style": styles, "mask": [left, 1 - left]}
    raw = {"max_size": 0, "style_size": 256}
    whole = session.run("adain", inputs, {**raw, "tile_size": 0}).rgb
    tiled = session.run("adain", inputs, {**raw, "tile_size": 512}).rgb
    difference = (whole - tiled).abs()
    # in 8-bit levels: measured 0.006 and 0.0001 (masks)
    assert difference.mean() < 0.1 / 255, float(difference.mean())
    assert difference.max() < 3 / 255, float(difference.max())  # measured 1.01 and 0.03
    band = slice(384 + 32, 512 - 32)  # the cross-fade: the overlap less its ignored outer quarters

    def steps(image):
        return (image[..., 1:] - image[..., :-1]).abs().mean((0, 1, 2))[band]

    seam = float(steps(tiled).mean() / steps(whole).mean())
    assert 0.99 < seam < 1.01, seam  # measured 0.99999 and 1.00000


# The AdaIN paper's loss alone, no extra decoder inputs: what each case below adds to (the defaults are the recipe
# that trained the shipped decoder, with all of these on).
PAPER_LOSSES = {"style_weight": 10.0, "identity_weight": 0.0, "reconstruction_steps": 0, "shift_weight": 0.0,
                "colour_path": False, "detail_path": False}


def test_training_defaults_are_the_shipped_decoders_recipe(registry):
    """``train adain`` with no options trains what the shipped decoder's card says it was trained with."""
    import json

    from plugin_host_adain import SHIPPED

    method = Session(registry=registry, device="cpu", seed=0).method("adain")
    defaults = {param.name: param.default for param in method.train_schema.params}
    card = json.loads((SHIPPED / "adain-decoder-vgg16-hed.pth.json").read_text())
    recipe = ("crop", "style_weight", "identity_weight", "reconstruction_steps", "shift_weight", "colour_path",
              "detail_path", "normalize_features", "width")
    assert {key: defaults[key] for key in recipe} == {key: card[key] for key in recipe}


@pytest.mark.parametrize("losses", [{}, {"identity_weight": 20.0, "normalize_features": False},
                                    {"reconstruction_steps": 3}, {"shift_weight": 0.05},
                                    {"colour_path": True, "identity_weight": 20.0, "shift_weight": 0.05},
                                    {"colour_path": True, "detail_path": True, "reconstruction_steps": 2}],
                         ids=["paper-normalised", "identity-raw", "reconstruction-first", "shift", "colour-path",
                              "detail-path"])
def test_training_lowers_the_loss_and_resumes_exactly(tmp_path, default_encoder, registry, losses):
    from PIL import Image

    from plugin_host.training import load_checkpoint

    for folder, seed in (("photos", 1), ("paintings", 2)):
        (tmp_path / folder).mkdir()
        gen = torch.Generator().manual_seed(seed)
        for i in range(4):
            pixels = (torch.rand(48, 48, 3, generator=gen) * 255).byte().numpy()
            Image.fromarray(pixels).save(tmp_path / folder / f"{i}.png")
    method = Session(registry=registry, device="cpu", seed=0).method("adain")

    def train(iterations: int, out: Path, resume: bool = True):
        session = Session(registry=registry, device="cpu", seed=0)
        params = method.train_schema.validate({
            "content_dir": tmp_path / "photos", "style_dir": tmp_path / "paintings", "out": out,
            "iterations": iterations, "batch_size": 2, "crop": 32, "resize_short": 0, "width": 0.25,
            "checkpoint_every": 3, "log_every": 1, "preview_every": 0, "learning_rate": 1e-3, "resume": resume,
            **PAPER_LOSSES, **losses}, models=registry.model_names())
        method.resolve_train()(params, session.context)
        return load_checkpoint(out.with_name(out.name + ".ckpt"))

    straight = train(6, tmp_path / "a.pth")
    train(3, tmp_path / "b.pth")
    resumed = train(6, tmp_path / "b.pth")
    for key, value in straight["models"]["decoder"].items():
        assert torch.equal(value, resumed["models"]["decoder"][key]), key
    import json

    log = [json.loads(line) for line in (tmp_path / "a.pth.log.jsonl").read_text().splitlines()]
    phases = ["pixel" if "pixel" in record else "style" for record in log]
    assert phases == ["pixel"] * losses.get("reconstruction_steps", 0) + ["style"] * (6 - losses.get("reconstruction_steps", 0))
    assert len(log) == 6, log
    if "reconstruction_steps" not in losses:  # the two phases' losses are not comparable
        assert log[-1]["loss"] < log[0]["loss"], log
    assert ("identity" in log[-1]) == ("identity_weight" in losses)
    assert ("shift" in log[-1]) == ("shift_weight" in losses)


def test_training_can_start_from_a_decoder_of_the_same_shape(tmp_path, default_encoder, registry):
    from PIL import Image

    from plugin_host.errors import ParameterError
    from plugin_host.training import load_checkpoint
    from plugin_host_adain.models import read_decoder_file

    for folder in ("photos", "paintings"):
        (tmp_path / folder).mkdir()
        for i in range(2):
            Image.new("RGB", (40, 40), (60 * i, 90, 200 - 50 * i)).save(tmp_path / folder / f"{i}.png")
    method = Session(registry=registry, device="cpu", seed=0).method("adain")

    def train(out: Path, **extra):
        session = Session(registry=registry, device="cpu", seed=0)
        params = method.train_schema.validate({
            "content_dir": tmp_path / "photos", "style_dir": tmp_path / "paintings", "out": out, "iterations": 1,
            "batch_size": 1, "crop": 32, "resize_short": 0, "width": 0.25, "preview_every": 0, **PAPER_LOSSES,
            **extra},
            models=registry.model_names())
        method.resolve_train()(params, session.context)

    train(tmp_path / "first.pth")
    train(tmp_path / "second.pth", start_from=str(tmp_path / "first.pth"), learning_rate=1e-7)
    first, _ = read_decoder_file(tmp_path / "first.pth")
    second = load_checkpoint(tmp_path / "second.pth.ckpt")["models"]["decoder"]
    for key, value in first.items():  # one step at lr 1e-7 away from where it started
        assert torch.allclose(value.float(), second[key], atol=1e-3), key
    with pytest.raises(ParameterError, match="width 0.25"):
        train(tmp_path / "third.pth", start_from=str(tmp_path / "first.pth"), width=0.5)
    with pytest.raises(ParameterError, match="neither an installed decoder nor a file"):
        train(tmp_path / "fourth.pth", start_from="no-such-decoder")
    train(tmp_path / "colour.pth", start_from=str(tmp_path / "first.pth"), colour_path=True, learning_rate=1e-7)
    colour, metadata = read_decoder_file(tmp_path / "colour.pth")
    assert metadata["colour_path"] and colour["1.weight"].shape[1] == 515
    torch.testing.assert_close(colour["1.weight"][:, :512].float(), first["1.weight"].float(), atol=1e-3, rtol=0)
    with pytest.raises(ParameterError, match="colour path"):
        train(tmp_path / "fifth.pth", start_from=str(tmp_path / "colour.pth"))
    with pytest.raises(ParameterError, match="lacks the detail path"):
        train(tmp_path / "sixth.pth", start_from=str(tmp_path / "first.pth"), detail_path=True)


def test_the_colour_path_starts_from_the_enlarged_block_colours_and_tiles_without_seams(
        tmp_path, default_encoder, samples_dir):
    """A decoder given the colour path by ``with_colour_path`` gives back the picture's 8×8 block colours
    enlarged (its strength-0 result, a blurred photo: far above the plain decoder's); and the whole run with
    such a decoder, tiled and untiled, agree."""
    from plugin_host.imaging.io import load_image
    from plugin_host.imaging.resize import resize_to
    from plugin_host_adain.net import Decoder, load_decoder
    from plugin_host_adain.train import with_colour_path

    torch.manual_seed(0)
    decoder = load_decoder(with_colour_path(Decoder("vgg16", width=0.25).state_dict()),
                           {"architecture": "vgg16", "width": 0.25, "colour_path": True})
    session = Session(registry=tiny_decoder_registry(tmp_path, decoder), device="cpu", seed=0)
    photo = resize_to(load_image(samples_dir / "lighthouse.jpg").rgb, (256, 448))
    raw = {"decoder": TEST_DECODER, "max_size": 0, "strength": 0.0}
    back = session.run("adain", {"content": photo, "style": [photo]}, {**raw, "tile_size": 0}).rgb
    blocks = torch.nn.functional.avg_pool2d(photo, 8)
    enlarged = torch.nn.functional.interpolate(blocks, size=photo.shape[-2:], mode="bilinear", align_corners=False)
    torch.testing.assert_close(back, enlarged.clamp(0, 1), atol=2 / 255, rtol=0)  # bf16 on this CPU: 1.5 levels
    psnr = float(10 * torch.log10(1 / (back - photo).square().mean()))
    assert psnr > 18, psnr  # the bar for strength 0; the relu4_1-only decoders reach 10-14 dB
    style = load_image(samples_dir / "starry_night.jpg").rgb
    styled = {**raw, "strength": 1.0, "style_size": 128}
    whole = session.run("adain", {"content": photo, "style": [style]}, {**styled, "tile_size": 0}).rgb
    tiled = session.run("adain", {"content": photo, "style": [style]}, {**styled, "tile_size": 256}).rgb
    assert float((whole - tiled).abs().max()) < 2 / 255


def test_a_detail_path_decoder_runs_tiled_as_untiled(tmp_path, default_encoder, samples_dir):
    """The detail path's relu3_1 rides on relu4_1's grid, so tiles, masks and strength handle it like relu4_1:
    a random decoder with both paths gives the same picture whole and in tiles."""
    from plugin_host.imaging.io import load_image
    from plugin_host.imaging.resize import resize_to
    from plugin_host_adain.net import Decoder

    torch.manual_seed(0)
    decoder = Decoder("vgg16", width=0.25, colour_path=True, detail_path=True)
    session = Session(registry=tiny_decoder_registry(tmp_path, decoder), device="cpu", seed=0)
    photo = resize_to(load_image(samples_dir / "lighthouse.jpg").rgb, (256, 448))
    style = load_image(samples_dir / "starry_night.jpg").rgb
    raw = {"decoder": TEST_DECODER, "max_size": 0, "strength": 0.8, "style_size": 128}
    whole = session.run("adain", {"content": photo, "style": [style]}, {**raw, "tile_size": 0}).rgb
    tiled = session.run("adain", {"content": photo, "style": [style]}, {**raw, "tile_size": 256}).rgb
    assert float(whole.std()) > 0.01  # a picture, not a constant
    assert float((whole - tiled).abs().max()) < 2 / 255


@pytest.mark.slow
def test_torchrun_ddp_training_on_cpu_with_two_processes(tmp_path, default_encoder):
    """`torchrun --nproc-per-node 2 -m plugin_host train adain` with gloo: one log, one model, both ranks stepped."""
    import json
    import os
    import subprocess
    import sys

    from PIL import Image

    for folder in ("photos", "paintings"):
        (tmp_path / folder).mkdir()
        for i in range(4):
            Image.effect_noise((40, 40), 40 + 10 * i).convert("RGB").save(tmp_path / folder / f"{i}.png")
    out = tmp_path / "ddp.pth"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "plugin_host", "train", "adain", "--device", "cpu", "--content", tmp_path / "photos",
         "--style", tmp_path / "paintings", "--out", out, "--iterations", "2", "--batch-size", "1",
         "--crop", "32", "--resize-short", "0", "--width", "0.25", "--checkpoint-every", "2", "--log-every", "1",
         "--preview-every", "0", "--quiet"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (tmp_path / "ddp.pth.log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]  # rank 0 alone writes the log
    assert out.exists() and (tmp_path / "ddp.pth.ckpt").exists()
