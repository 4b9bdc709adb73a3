from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision.models.vgg as tv_vgg
from torch import nn

from plugin_host.encoders import VGGEncoder, build_encoder, layer_names
from plugin_host.encoders.vgg import VGG_CONFIGS, make_layers
from plugin_host.errors import WeightsError




IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
CAFFE_MEAN_BGR = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # from the weights manifest


@pytest.fixture(scope="module")
def vgg16_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    features = tv_vgg.make_layers(tv_vgg.cfgs["D"])
    return {f"features.{k}": v for k, v in features.state_dict().items()}


@pytest.fixture
def image() -> torch.Tensor:
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _convs(encoder: VGGEncoder) -> list[nn.Conv2d]:
    return [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]


class TestLayerNames:
    def test_vgg16(self) -> None:
        names = layer_names("vgg16")
        assert len(names) == 31
        assert names[:6] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1")
        assert names[-2:] == ("relu5_3", "pool5")
        assert sum(n.startswith("conv") for n in names) == 13
        assert sum(n.startswith("relu") for n in names) == 13
        assert sum(n.startswith("pool") for n in names) == 5

    def test_vgg19(self) -> None:
        names = layer_names("vgg19")
        assert len(names) == 37
        assert names[-2:] == ("relu5_4", "pool5")
        assert names.index("relu4_1") == 20

    def test_indices_match_weights_layout(self) -> None:
        names = layer_names("vgg16")
        assert tuple(i for i, n in enumerate(names) if n.startswith("conv")) == VGG16_CONV_INDICES
        assert names.index("relu4_2") == 20
        assert names.index("relu5_1") == 25

    @pytest.mark.parametrize(("arch", "key"), [("vgg16", "D"), ("vgg19", "E")])
    def test_matches_torchvision_module_types(self, arch: str, key: str) -> None:
        with torch.device("meta"):
            features = tv_vgg.make_layers(tv_vgg.cfgs[key])
        kinds = {nn.Conv2d: "conv", nn.ReLU: "relu", nn.MaxPool2d: "pool"}
        assert [kinds[type(m)] for m in features] == [n[:4] for n in layer_names(arch)]

    @pytest.mark.parametrize(("arch", "key"), [("vgg16", "D"), ("vgg19", "E")])
    def test_our_layers_equal_torchvisions(self, arch: str, key: str) -> None:
        with torch.device("meta"):
            ours, theirs = make_layers(VGG_CONFIGS[arch]), tv_vgg.make_layers(tv_vgg.cfgs[key])
        assert [repr(m) for m in ours] == [repr(m) for m in theirs]  # types, channels, kernel, padding
        assert {k: v.shape for k, v in ours.state_dict().items()} == {
            k: v.shape for k, v in theirs.state_dict().items()}

    def test_building_an_encoder_does_not_import_torchvision(self) -> None:
        code = ("import sys; from plugin_host.encoders import build_encoder; "
                "build_encoder('vgg16', None, 'caffe', ['relu5_1']); "
                "print(sorted(m for m in sys.modules if m.startswith('torchvision')))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.strip() == "[]"

    def test_unknown_architecture(self) -> None:
        with pytest.raises(ValueError, match="vgg11"):
            layer_names("vgg11")  # type: ignore[arg-type]


class TestVGGEncoder:
    def test_smoke_random_weights(self, image: torch.Tensor) -> None:
        out = VGGEncoder("vgg16", ["relu1_1"])(image)
        assert out["relu1_1"].shape == (1, 64, 32, 32)

    def test_returns_requested_layers_only(self, vgg16_state, image) -> None:
        enc = VGGEncoder("vgg16", ["relu2_1", "relu1_1", "relu2_1"], state_dict=vgg16_state)
        out = enc(image.repeat(2, 1, 1, 1))
        assert list(out) == ["relu2_1", "relu1_1"]
        assert out["relu1_1"].shape == (2, 64, 32, 32)
        assert out["relu2_1"].shape == (2, 128, 16, 16)

    def test_deep_layer_shapes(self, vgg16_state, image) -> None:
        out = VGGEncoder("vgg16", ["relu4_2", "relu5_1", "pool5"], state_dict=vgg16_state)(image)
        assert out["relu4_2"].shape == (1, 512, 4, 4)
        assert out["relu5_1"].shape == (1, 512, 2, 2)
        assert out["pool5"].shape == (1, 512, 1, 1)

    def test_truncates_after_deepest_layer(self, vgg16_state) -> None:
        enc = VGGEncoder("vgg16", ["relu1_1", "relu2_1"], state_dict=vgg16_state)
        assert len(enc.features) == layer_names("vgg16").index("relu2_1") + 1 == 7
        assert len(_convs(enc)) == 3
        assert sorted(enc.state_dict()) == sorted(
            f"features.{i}.{p}" for i in (0, 2, 5) for p in ("weight", "bias"))

    def test_truncation_at_conv_drops_its_relu(self) -> None:
        enc = VGGEncoder("vgg16", ["conv2_1"])
        assert len(enc.features) == 6 and isinstance(enc.features[-1], nn.Conv2d)

    def test_never_builds_classifier(self, vgg16_state, monkeypatch) -> None:
        def forbidden(*args, **kwargs):
            raise AssertionError("the full torchvision VGG (with its classifier) was constructed")

        monkeypatch.setattr(tv_vgg.VGG, "__init__", forbidden)
        monkeypatch.setattr(nn.Linear, "__init__", forbidden)
        enc = build_encoder("vgg16", vgg16_state, "caffe", ["relu5_1"])
        # 13 convs hold 14,714,688 params; conv5_2 and conv5_3 are not kept.
        assert sum(p.numel() for p in enc.parameters()) == 14_714_688 - 2 * (512 * 512 * 9 + 512)

    def test_avg_pooling(self, vgg16_state, image) -> None:
        avg = VGGEncoder("vgg16", ["relu2_1"], pooling="avg", state_dict=vgg16_state)
        mx = VGGEncoder("vgg16", ["relu2_1"], pooling="max", state_dict=vgg16_state)
        assert isinstance(avg.features[4], nn.AvgPool2d)
        assert not any(isinstance(m, nn.MaxPool2d) for m in avg.modules())
        assert isinstance(mx.features[4], nn.MaxPool2d)
        assert not torch.allclose(avg(image)["relu2_1"], mx(image)["relu2_1"])

    def test_relu1_1_torchvision_by_hand(self, vgg16_state, image) -> None:
        enc = VGGEncoder("vgg16", ["relu1_1"], convention="torchvision", state_dict=vgg16_state)
        x = (image - IMAGENET_MEAN) / IMAGENET_STD
        expected = F.relu(F.conv2d(x, vgg16_state["features.0.weight"],
                                   vgg16_state["features.0.bias"], padding=1))
        torch.testing.assert_close(enc(image)["relu1_1"], expected)

    def test_caffe_convention_by_hand(self, vgg16_state, image) -> None:
        caffe = VGGEncoder("vgg16", ["relu1_1"], convention="caffe", state_dict=vgg16_state)
        tv = VGGEncoder("vgg16", ["relu1_1"], convention="torchvision", state_dict=vgg16_state)
        x = image[:, [2, 1, 0]] * 255.0 - CAFFE_MEAN_BGR
        expected = F.relu(F.conv2d(x, vgg16_state["features.0.weight"],
                                   vgg16_state["features.0.bias"], padding=1))
        got = caffe(image)["relu1_1"]
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-3)
        assert not torch.allclose(got, tv(image)["relu1_1"])

    def test_raw_convention_is_identity(self, vgg16_state, image) -> None:
        enc = VGGEncoder("vgg16", ["conv1_1"], convention="raw", state_dict=vgg16_state)
        expected = F.conv2d(image, vgg16_state["features.0.weight"],
                            vgg16_state["features.0.bias"], padding=1)
        torch.testing.assert_close(enc(image)["conv1_1"], expected)

    def test_conv_output_not_overwritten_by_relu(self, vgg16_state, image) -> None:
        out = VGGEncoder("vgg16", ["conv1_1", "relu1_1"], state_dict=vgg16_state)(image)
        assert (out["conv1_1"] < 0).any()
        torch.testing.assert_close(out["relu1_1"], out["conv1_1"].clamp(min=0))

    def test_unprefixed_keys(self, vgg16_state, image) -> None:
        bare = {k.removeprefix("features."): v for k, v in vgg16_state.items()}
        a = VGGEncoder("vgg16", ["relu2_1"], state_dict=bare)(image)["relu2_1"]
        b = VGGEncoder("vgg16", ["relu2_1"], state_dict=vgg16_state)(image)["relu2_1"]
        torch.testing.assert_close(a, b)

    def test_ignores_keys_of_dropped_layers(self, vgg16_state) -> None:
        partial = {k: v for k, v in vgg16_state.items() if not k.startswith("features.28.")}
        partial["classifier.0.weight"] = torch.zeros(1)
        VGGEncoder("vgg16", ["relu5_1"], state_dict=partial)

    def test_frozen_and_eval(self, vgg16_state, image) -> None:
        enc = VGGEncoder("vgg16", ["relu2_1"], state_dict=vgg16_state)
        assert not enc.training
        assert not any(p.requires_grad for p in enc.parameters())
        enc.train()
        assert not enc.training
        image = image.clone().requires_grad_(True)
        enc(image)["relu2_1"].sum().backward()
        assert image.grad is not None and image.grad.abs().sum() > 0

    def test_description(self) -> None:
        enc = VGGEncoder("vgg19", ["relu1_1", "relu4_1"], pooling="avg", convention="caffe")
        assert enc.to_json() == {"architecture": "vgg19", "convention": "caffe",
                                 "pooling": "avg", "layers": ["relu1_1", "relu4_1"]}
        for word in ("vgg19", "caffe", "avg", "relu4_1"):
            assert word in enc.description

    def test_vgg19_deepest_layer(self, image) -> None:
        out = VGGEncoder("vgg19", ["relu5_4"])(image)
        assert out["relu5_4"].shape == (1, 512, 2, 2)

    def test_build_encoder_dtype(self, vgg16_state, image) -> None:
        enc = build_encoder("vgg16", vgg16_state, "torchvision", ["relu1_2"], dtype=torch.float64)
        assert all(p.dtype == torch.float64 for p in enc.parameters())
        assert enc(image.double())["relu1_2"].dtype == torch.float64
        assert vgg16_state["features.0.weight"].dtype == torch.float32


class TestVGGEncoderErrors:
    def test_wrong_shape(self, vgg16_state) -> None:
        bad = dict(vgg16_state)
        bad["features.5.weight"] = torch.zeros(128, 32, 3, 3)
        with pytest.raises(WeightsError, match=r"conv2_1.*\(128, 32, 3, 3\).*\(128, 64, 3, 3\)"):
            VGGEncoder("vgg16", ["relu2_1"], state_dict=bad)

    def test_missing_key(self, vgg16_state) -> None:
        bad = {k: v for k, v in vgg16_state.items() if k != "features.2.bias"}
        with pytest.raises(WeightsError, match=r"features\.2\.bias.*conv1_2"):
            VGGEncoder("vgg16", ["relu2_1"], state_dict=bad)

    def test_not_a_tensor(self, vgg16_state) -> None:
        bad = dict(vgg16_state, **{"features.0.bias": [0.0] * 64})
        with pytest.raises(WeightsError, match="conv1_1"):
            VGGEncoder("vgg16", ["relu1_1"], state_dict=bad)

    @pytest.mark.parametrize("shape", [(1, 4, 32, 32), (3, 32, 32), (1, 1, 32, 32)])
    def test_bad_input_shape(self, shape) -> None:
        enc = VGGEncoder("vgg16", ["relu1_1"])
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*" + str(shape).replace("(", r"\(")
                           .replace(")", r"\)")):
            enc(torch.rand(shape))

    @pytest.mark.parametrize("kwargs", [
        {"architecture": "vgg11", "layers": ["relu1_1"]},
        {"architecture": "vgg16", "layers": ["relu5_4"]},
        {"architecture": "vgg16", "layers": []},
        {"architecture": "vgg16", "layers": ["relu1_1"], "pooling": "min"},
        {"architecture": "vgg16", "layers": ["relu1_1"], "convention": "bgr"},
    ])
    def test_bad_arguments(self, kwargs) -> None:
        with pytest.raises(ValueError):
            VGGEncoder(**kwargs)


def _load_photo(path: Path, size: int = 64) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return data.view(size, size, 3).permute(2, 0, 1).unsqueeze(0).float() / 255.0


def test_real_vgg16_caffe_weights(default_encoder: Path, samples_dir: Path) -> None:
    state = torch.load(default_encoder, map_location="cpu", weights_only=True)
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
    enc = build_encoder("vgg16", state, "caffe", layers)
    photo = _load_photo(samples_dir / "lighthouse.jpg")
    other = _load_photo(samples_dir / "parrots.jpg")
    noisy = (photo + 0.02 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        feats = enc(torch.cat([photo, noisy.clamp(0, 1), other]))
    for name, f in feats.items():
        assert torch.isfinite(f).all(), name
        assert (f >= 0).all(), name
        assert f.abs().sum() > 0, name
    for name in ("relu3_1", "relu4_2", "relu5_1"):
        f = feats[name].flatten(1)
        to_noisy, to_other = (f[0] - f[1]).norm(), (f[0] - f[2]).norm()
        assert to_noisy < 0.5 * to_other, (name, float(to_noisy), float(to_other))
    # Random weights pass the checks above too; these two do not (random: ~0 and ~50 %).
    w = enc.features[0].weight
    rgb_corr = torch.corrcoef(torch.stack([w[:, 0].flatten(), w[:, 1].flatten()]))[0, 1]
    assert rgb_corr > 0.5, "trained conv1_1 filters are mostly colour-blind edge detectors"
    assert (feats["relu5_1"][0] == 0).float().mean() > 0.7, "trained relu5_1 is sparse"


def test_lean_max_pool_gives_maxpool_gradients_without_keeping_indices() -> None:
    from plugin_host.encoders.vgg import LeanMaxPool2d

    x = torch.randn(2, 8, 12, 10, dtype=torch.float64)
    weights = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    lean_in, plain_in = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    saved: list[torch.Tensor] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        lean = LeanMaxPool2d(2, 2)(lean_in)
    plain = nn.MaxPool2d(2, 2)(plain_in)
    assert torch.equal(lean, plain)
    (lean * weights).sum().backward()
    (plain * weights).sum().backward()
    assert torch.equal(lean_in.grad, plain_in.grad)
    assert [t.dtype for t in saved] == [torch.float64]  # the input only, no int64 indices


def test_encoder_max_pools_keep_no_indices_for_backward() -> None:
    encoder = VGGEncoder("vgg16", ["relu3_1"])
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        features = encoder(image)["relu3_1"]
    features.sum().backward()
    assert saved and not [t for t in saved if t.dtype == torch.int64]
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_channel_scales_average_each_channel_and_floor_dead_ones() -> None:
    from plugin_host.encoders import channel_scales, normalise

    def encode(batch: torch.Tensor) -> dict[str, torch.Tensor]:
        # channel 0 is the image, channel 1 twice it, channel 2 never fires
        return {"relu": torch.cat([batch, 2 * batch, torch.zeros_like(batch)], dim=1)}

    batches = [torch.full((2, 1, 4, 4), 1.0), torch.full((1, 1, 4, 4), 4.0)]
    scales = channel_scales(encode, batches, floor=0.1)
    # means over 3 images: (1 + 1 + 4) / 3 = 2 and 4; the dead channel gets 0.1 × mean(2, 4, 0)
    assert torch.allclose(scales["relu"], torch.tensor([2.0, 4.0, 0.2]))
    normalised = normalise(encode(batches[1]), scales)["relu"]
    assert torch.allclose(normalised[:, :2], torch.full((1, 2, 4, 4), 2.0)) and not normalised[:, 2].any()
    with pytest.raises(ValueError, match="at least one"):
        channel_scales(encode, [])


def test_encoder_keeps_pool_indices_when_memory_may_be_spent() -> None:
    encoder = VGGEncoder("vgg16", ["relu3_1"])
    encoder.keep_pool_indices(True)
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        features = encoder(image)["relu3_1"]
    features.sum().backward()
    assert len([t for t in saved if t.dtype == torch.int64]) == 2  # pool1 and pool2 keep their indices
    lean_grad = image.grad.clone()
    encoder.keep_pool_indices(False)
    image.grad = None
    encoder(image)["relu3_1"].sum().backward()
    assert torch.equal(image.grad, lean_grad)


def test_on_layer_sees_each_requested_layer_as_it_is_computed() -> None:
    encoder = VGGEncoder("vgg16", ["relu2_1", "relu1_1", "conv1_2"])
    seen: list[tuple[str, torch.Tensor]] = []
    features = encoder(torch.rand(1, 3, 32, 32), on_layer=lambda name, x: seen.append((name, x)))
    assert [name for name, _ in seen] == ["relu1_1", "conv1_2", "relu2_1"]  # network order
    assert all(x is features[name] for name, x in seen)


class _Mark(torch.autograd.Function):
    """Identity that notes in ``log`` when backward passes through it."""

    @staticmethod
    def forward(ctx, x, log, label):  # type: ignore[override]
        ctx.log, ctx.label = log, label
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        ctx.log.append(ctx.label)
        return grad, None, None


def test_a_loss_built_in_on_layer_is_differentiated_when_backward_reaches_its_layer() -> None:
    # What Gatys relies on to keep the shallow layers' gradients from being held through the whole
    # backward pass: autograd runs the most recently built ready node first.
    from plugin_host.losses import gram_matrix

    def run(losses_in_on_layer: bool) -> list[str]:
        encoder = VGGEncoder("vgg16", ["relu1_1", "relu2_1", "relu3_1"])
        log: list[str] = []
        image = torch.rand(1, 3, 32, 32, requires_grad=True)
        terms: list[torch.Tensor] = []

        def loss(name: str, x: torch.Tensor) -> None:
            x.register_hook(lambda grad, name=name: log.append(f"reached {name}"))
            terms.append(gram_matrix(_Mark.apply(x, log, f"loss {name}")).sum())

        features = encoder(image, on_layer=loss if losses_in_on_layer else None)
        if not losses_in_on_layer:
            for name, x in features.items():
                loss(name, x)
        sum(terms).backward()
        return log

    in_place = run(True)
    assert in_place.index("loss relu1_1") > in_place.index("reached relu2_1")
    afterwards = run(False)  # the contrast: all loss gradients first, while the whole graph is still held
    assert afterwards.index("loss relu1_1") < afterwards.index("reached relu2_1")
