"""Gated-GAN's networks: what the gate does, the discriminator's two heads, and the PyTorch port's checkpoints.

Tiny random networks (ngf 4) stand in wherever the weights' values do not matter; the port checkpoint is a
synthetic state dict written key by key from the layout in ``../shared/weights/MANIFEST.md``, at its real size.
"""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from plugin_host.errors import WeightsError
from plugin_host_gated_gan.models import read_model_file
from plugin_host_gated_gan.net import Discriminator, Generator, load_generator, one_hot, style_names
from plugin_host_gated_gan.schema import PORT_STYLES, UPSAMPLES


def tiny_generator(n_styles: int = 3, **options) -> Generator:
    torch.manual_seed(0)
    return Generator(n_styles=n_styles, ngf=4, decoder_blocks=1, **options).eval()


def photo(batch: int = 1, height: int = 24, width: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.rand((batch, 3, height, width), generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("upsample", UPSAMPLES)
def test_a_one_hot_gate_equals_running_only_that_branch(upsample):
    net, image = tiny_generator(upsample=upsample), photo()
    with torch.no_grad():
        features = net.encoder(image)
        for index, branch in enumerate(net.transformer.t):  # the three styles, then the identity branch
            # float32 on the CPU takes the channels-last path with resize upsampling: equal up to rounding
            torch.testing.assert_close(net(image, one_hot(3, index)), net.decoder(branch(features)),
                                       rtol=0, atol=1e-5, msg=f"branch {index}")
    assert isinstance(net.transformer.t[net.identity], torch.nn.Identity)


def test_each_image_of_a_batch_takes_its_own_gate():
    net, images = tiny_generator(), photo(batch=3)
    gates = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0], [0, 0.3, 0.7, 0]])
    with torch.no_grad():
        together = net(images, gates)
        alone = torch.cat([net(images[i:i + 1], gates[i]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_a_soft_gate_mixes_the_branch_outputs_and_lies_between_the_two_styles():
    net, image = tiny_generator(), photo()
    with torch.no_grad():
        features = net.encoder(image)
        first, second = net.transformer.t[0](features), net.transformer.t[1](features)
        soft = net(image, torch.tensor([0.5, 0.5, 0.0, 0.0]))
        assert torch.allclose(soft, net.decoder(0.5 * first + 0.5 * second), atol=1e-5)
        style_a, style_b = net(image, one_hot(3, 0)), net(image, one_hot(3, 1))

    def distance(x: torch.Tensor, y: torch.Tensor) -> float:
        return float((x - y).square().mean())

    apart = distance(style_a, style_b)
    assert apart > 1e-4  # two different styles
    assert distance(soft, style_a) < apart and distance(soft, style_b) < apart


@pytest.mark.parametrize("blocks, affine", [(0, True), (2, True), (1, False)])
@pytest.mark.parametrize("gate", [[1.0, 0, 0, 0], [0, 0.3, 0.5, 0.2], [0, 0, 0, 0]])
def test_channels_last_inference_equals_the_modules(blocks, affine, gate):
    torch.manual_seed(0)
    net = Generator(n_styles=3, ngf=4, decoder_blocks=blocks, upsample="resize", affine=affine).eval()
    for norm in (m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d) and m.affine):
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-0.5, 0.5)
    image, gate = photo(batch=2, height=20, width=28), torch.tensor(gate)
    with torch.no_grad():
        assert net.runs_channels_last(image)
        expected = net.decoder(net.transformer(net.encoder(image), gate.expand(2, -1)))
        got = net.forward_channels_last(image, gate.expand(2, -1))
    if not gate.any():
        # no branch: flat features, whose instance norms (variance 0) magnify float rounding by 1/sqrt(eps);
        # the resize convolution rounds each of its four output phases its own way, so allow that much
        assert float(expected.std((2, 3)).max()) < 1e-5
        torch.testing.assert_close(got, expected, rtol=0, atol=5e-3)
    else:
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_channels_last_inference_only_where_it_computes_the_same():
    from plugin_host.imaging.tiling import frozen_instance_norm
    from plugin_host.precision import compute_in

    net, image = tiny_generator(upsample="resize"), photo()
    assert not net.runs_channels_last(image)  # autograd on: training
    with torch.no_grad():
        assert net.runs_channels_last(image)
        assert not tiny_generator(upsample="transposed").runs_channels_last(image)
        assert not net.runs_channels_last(photo(height=4, width=32))
        assert not compute_in(tiny_generator(upsample="resize"), torch.bfloat16, torch.float32).runs_channels_last(image)
        reference = photo(height=32, width=32, seed=5)
        with frozen_instance_norm(net, reference, run=lambda x: net(x, one_hot(3, 0))):
            assert net.runs_channels_last(image)
            shared = net(image, one_hot(3, 0))
            expected = net.decoder(net.transformer.t[0](net.encoder(image)))  # the modules, through the hooks
            with pytest.raises(RuntimeError, match="did not run on the reference"):
                net(image, one_hot(3, 1))  # a branch the reference never ran has no shared statistics
        torch.testing.assert_close(shared, expected, rtol=0, atol=1e-5)


def test_any_size_comes_back_at_its_size():
    net = tiny_generator(upsample="resize")
    with torch.no_grad():
        assert net(photo(height=17, width=30), one_hot(3, 1)).shape == (1, 3, 17, 30)


def test_a_gate_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match=r"gate: expected shape \(1, 4\)"):
        tiny_generator()(photo(), torch.ones(3))


def test_the_discriminator_has_a_patch_realness_head_and_a_separate_style_head():
    torch.manual_seed(0)
    net = Discriminator(n_styles=4, ndf=8)
    realness, logits = net(photo(batch=2, height=128, width=128))
    assert realness.shape == (2, 1, 19, 19)  # the 70×70 PatchGAN's grid for a 128 px crop
    assert logits.shape == (2, 4, 19, 19)
    assert net.adversarial is not net.classifier
    assert not {id(p) for p in net.adversarial.parameters()} & {id(p) for p in net.classifier.parameters()}


# -- the PyTorch port's generator checkpoints ---------------------------------------------------------

def port_state_dict(n_styles: int = 4, ngf: int = 64) -> OrderedDict:
    """Random tensors in the key layout of colemiller94/gatedgan's Generator (non-affine norms: convs only)."""
    gen = torch.Generator().manual_seed(0)
    shapes: list[tuple[str, tuple[int, ...]]] = [
        ("encoder.model.1", (ngf, 3, 7, 7)), ("encoder.model.4", (2 * ngf, ngf, 3, 3)),
        ("encoder.model.7", (4 * ngf, 2 * ngf, 3, 3))]
    block = (4 * ngf, 4 * ngf, 3, 3)
    for prefix in [f"transformer.t.{k}" for k in range(n_styles)] + [f"decoder.model.{k}" for k in range(5)]:
        shapes += [(f"{prefix}.conv_block.1", block), (f"{prefix}.conv_block.5", block)]
    shapes += [("decoder.model.5", (4 * ngf, 2 * ngf, 3, 3)), ("decoder.model.8", (2 * ngf, ngf, 3, 3)),
               ("decoder.model.12", (3, ngf, 7, 7))]
    state = OrderedDict()
    for name, shape in shapes:
        out_channels = shape[1] if name in ("decoder.model.5", "decoder.model.8") else shape[0]  # (in, out, k, k)
        state[f"{name}.weight"] = torch.randn(shape, generator=gen) * 0.02
        state[f"{name}.bias"] = torch.randn(out_channels, generator=gen) * 0.02
    return state


def test_a_port_checkpoint_loads_as_it_is(tmp_path):
    state = port_state_dict()
    assert len(state) == 48 and sum(v.numel() for v in state.values()) == 11_378_179  # the MANIFEST's figures
    path = tmp_path / "netG.pth"
    torch.save(state, path)
    loaded, metadata = read_model_file(path)
    assert metadata == {}
    net = load_generator(loaded)
    assert net.config == {"n_styles": 4, "ngf": 64, "decoder_blocks": 5, "upsample": "transposed", "affine": False}
    assert all(torch.equal(net.state_dict()[key], value) for key, value in state.items())
    assert style_names({}, net.n_styles) == PORT_STYLES  # the port's gate order: sorted folder names
    with torch.no_grad():
        out = net(photo(height=32, width=32), one_hot(4, 3))
    assert out.shape == (1, 3, 32, 32) and float(out.abs().max()) <= 1


def _drop(state, key):
    del state[key]


def _reshape(state, key):
    state[key] = torch.zeros(128, 32, 3, 3)


@pytest.mark.parametrize("change, message", [
    (lambda s: _drop(s, "transformer.t.2.conv_block.5.bias"),
     r"1 missing keys \(transformer\.t\.2\.conv_block\.5\.bias\)"),
    (lambda s: _reshape(s, "decoder.model.8.weight"),
     r"wrong shapes \(decoder\.model\.8\.weight \(128, 32, 3, 3\) instead of \(128, 64, 3, 3\)\)"),
    (lambda s: s.__setitem__("encoder.model.2.weight", torch.ones(64)),
     r"1 unexpected keys \(encoder\.model\.2\.weight\)"),
    (lambda s: (s.clear(), s.__setitem__("conv1.conv2d.weight", torch.zeros(32, 3, 9, 9))),
     r"no encoder\.model\.1\.weight"),
], ids=["missing", "wrong-shape", "affine-norm-key", "another-network"])
def test_a_wrong_layout_is_refused_naming_the_mismatch(change, message):
    state = port_state_dict(ngf=64)
    change(state)
    with pytest.raises(WeightsError, match=message) as caught:
        load_generator(state)
    assert "colemiller94/gatedgan" in caught.value.hint


def test_a_file_holding_no_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(WeightsError, match="not a Gated-GAN model file"):
        read_model_file(path)
