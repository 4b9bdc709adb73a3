"""Compute precision: choosing bf16, running a network in it, and the losses that read its features."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from plugin_host import precision
from plugin_host.errors import PluginHostError
from plugin_host.losses import gram_matrix
from plugin_host.precision import cast_floats, compute_in, resolve_precision
from plugin_host.runner import Session

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_hardware(monkeypatch, native):
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    assert resolve_precision("auto", CPU) == (torch.bfloat16 if native else torch.float32)
    assert resolve_precision("fp32", CPU) == torch.float32
    assert resolve_precision("bf16", CPU) == torch.bfloat16  # asked for explicitly: emulated if need be


def test_unknown_precision_and_mps_bf16_are_clear_errors():
    with pytest.raises(PluginHostError, match="unknown precision 'fp8'") as err:
        resolve_precision("fp8", CPU)
    assert "auto, fp32, bf16" in err.value.hint
    with pytest.raises(PluginHostError, match="MPS"):
        resolve_precision("bf16", torch.device("mps"))


def test_session_takes_the_precision():
    assert Session(device="cpu", precision="fp32").context.compute_dtype == torch.float32
    assert Session(device="cpu", precision="bf16").context.compute_dtype == torch.bfloat16


def test_cast_floats_walks_containers_and_leaves_integers():
    value = {"a": torch.ones(1, 2, 3, 4), "b": (torch.ones(2), torch.arange(3)), "c": "text"}
    cast = cast_floats(value, torch.bfloat16, channels_last=True)
    assert cast["a"].dtype == torch.bfloat16 and cast["a"].is_contiguous(memory_format=torch.channels_last)
    assert cast["b"][0].dtype == torch.bfloat16 and cast["b"][1].dtype == torch.int64
    assert isinstance(cast["b"], tuple) and cast["c"] == "text"


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1))


def test_compute_in_bf16_keeps_the_callers_dtype_and_gradients():
    image = torch.rand(1, 3, 24, 20)
    expected = _net()(image)
    net = compute_in(_net(), torch.bfloat16, torch.float32)
    assert all(p.dtype == torch.bfloat16 for p in net.parameters())
    leaf = image.clone().requires_grad_(True)
    out = net(leaf)
    assert out.dtype == torch.float32 and out.shape == expected.shape
    assert (out - expected).abs().max() < 0.02 * expected.abs().max()  # bf16: ~3 significant digits
    out.sum().backward()
    assert leaf.grad is not None and leaf.grad.dtype == torch.float32 and leaf.grad.abs().sum() > 0


def test_compute_in_same_dtype_changes_nothing():
    net = _net()
    assert compute_in(net, torch.float32, torch.float32) is net
    assert not net._forward_pre_hooks and not net._forward_hooks


def test_gram_matrix_reads_channels_last_and_reduced_precision():
    features = torch.rand(2, 5, 7, 6)
    expected = gram_matrix(features)
    assert torch.allclose(gram_matrix(features.contiguous(memory_format=torch.channels_last)), expected,
                          atol=1e-6)
    reduced = gram_matrix(features.to(torch.bfloat16))
    assert reduced.dtype == torch.float32
    assert torch.allclose(reduced, expected, rtol=1e-2)


@pytest.mark.parametrize("name", ["bf16", "fp32"])
def test_autocast_trains_in_the_compute_dtype_and_keeps_fp32_weights(name):
    context = Session(device="cpu", precision=name).context
    net = _net()
    image = torch.rand(1, 3, 16, 16)
    with context.autocast():
        out = net(image)
    assert out.dtype == context.compute_dtype
    out.float().square().mean().backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in net.parameters())
    if name == "bf16":
        assert not torch.equal(out.float(), net(image))  # really rounded, not just relabelled


def _saved_tensors(fn):
    """Every tensor autograd keeps for the backward pass of ``fn()``, deduplicated by storage."""
    saved: dict[int, torch.Tensor] = {}

    def pack(tensor):
        saved[tensor.untyped_storage().data_ptr()] = tensor
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = fn()
    return result, list(saved.values())


@pytest.mark.parametrize("channels_last", [False, True])
def test_bf16_gram_gradient_matches_fp32_and_keeps_no_fp32_copy(channels_last):
    features = torch.randn(2, 16, 24, 20)
    if channels_last:
        features = features.contiguous(memory_format=torch.channels_last)
    weights = torch.randn(2, 16, 16)
    reduced = features.to(torch.bfloat16).requires_grad_(True)
    exact = reduced.detach().float().requires_grad_(True)
    gram, saved = _saved_tensors(lambda: gram_matrix(reduced))
    (gram * weights).sum().backward()
    (gram_matrix(exact) * weights).sum().backward()
    assert all(t.dtype == torch.bfloat16 for t in saved), [(t.dtype, tuple(t.shape)) for t in saved]
    assert reduced.grad.dtype == torch.bfloat16 and reduced.grad.shape == features.shape
    assert reduced.grad.is_contiguous(memory_format=torch.channels_last) == channels_last
    error = (reduced.grad.float() - exact.grad).norm() / exact.grad.norm()
    assert error < 0.01, error  # bf16 keeps ~3 significant digits


def test_prepare_can_hand_back_compute_dtype_features_for_losses_that_upcast():
    from plugin_host.encoders.vgg import build_encoder
    from plugin_host.losses import content_loss

    context = Session(device="cpu", precision="bf16").context
    encoder = context.prepare(build_encoder("vgg16", None, "torchvision", ["relu1_1"]), cast_outputs=False)
    features = encoder(torch.rand(1, 3, 16, 16))["relu1_1"]
    assert features.dtype == torch.bfloat16
    loss = content_loss(features, torch.zeros(1, 64, 16, 16))
    assert loss.dtype == torch.float32
    assert torch.isclose(loss, features.float().square().mean())
