"""AdaIN networks: the AdaIN operation, decoder layouts, the published encoder, loading errors."""
from __future__ import annotations

import pytest
import torch

from plugin_host.encoders import VGGEncoder
from plugin_host.errors import WeightsError
from plugin_host.losses import mean_std
from plugin_host_adain.net import (
    ENCODER_LAYERS,
    AdainVGGEncoder,
    Decoder,
    adain,
    blend_stats,
    decoder_config,
    encode,
    load_adain_encoder,
    load_decoder,
)

# Layouts of the published files, copied from shared/weights/MANIFEST.md.
PUBLISHED_DECODER = {
    "1.weight": (256, 512, 3, 3), "1.bias": (256,),
    "5.weight": (256, 256, 3, 3), "5.bias": (256,),
    "8.weight": (256, 256, 3, 3), "8.bias": (256,),
    "11.weight": (256, 256, 3, 3), "11.bias": (256,),
    "14.weight": (128, 256, 3, 3), "14.bias": (128,),
    "18.weight": (128, 128, 3, 3), "18.bias": (128,),
    "21.weight": (64, 128, 3, 3), "21.bias": (64,),
    "25.weight": (64, 64, 3, 3), "25.bias": (64,),
    "28.weight": (3, 64, 3, 3), "28.bias": (3,),
}
PUBLISHED_VGG = {
    "0.weight": (3, 3, 1, 1), "0.bias": (3,),
    "2.weight": (64, 3, 3, 3), "2.bias": (64,),
    "5.weight": (64, 64, 3, 3), "5.bias": (64,),
    "9.weight": (128, 64, 3, 3), "9.bias": (128,),
    "12.weight": (128, 128, 3, 3), "12.bias": (128,),
    "16.weight": (256, 128, 3, 3), "16.bias": (256,),
    "19.weight": (256, 256, 3, 3), "19.bias": (256,),
    "22.weight": (256, 256, 3, 3), "22.bias": (256,),
    "25.weight": (256, 256, 3, 3), "25.bias": (256,),
    "29.weight": (512, 256, 3, 3), "29.bias": (512,),
    **{key: shape for index in (32, 35, 38, 42, 45, 48, 51)
       for key, shape in ((f"{index}.weight", (512, 512, 3, 3)), (f"{index}.bias", (512,)))},
}
JOHNSON = {
    "conv1.conv2d.weight": (32, 3, 9, 9), "conv1.conv2d.bias": (32,),
    "in1.weight": (32,), "in1.bias": (32,),
    "conv2.conv2d.weight": (64, 32, 3, 3), "conv2.conv2d.bias": (64,),
    "deconv3.conv2d.weight": (3, 32, 9, 9), "deconv3.conv2d.bias": (3,),
}


def random_state(layout: dict[str, tuple[int, ...]], skip_from: int = 10**9) -> dict[str, torch.Tensor]:
    """Random tensors of the layout's shapes; zeros (cheap) for modules at index >= ``skip_from``."""
    return {key: (torch.zeros(shape) if int(key.split(".")[0]) >= skip_from
                  else torch.randn(shape) * 0.05)
            for key, shape in layout.items()}


# --------------------------------------------------------------------------- AdaIN operation

def test_adain_gives_content_the_style_statistics():
    torch.manual_seed(0)
    content = torch.randn(2, 8, 9, 7) * 3 + 1
    style = torch.randn(2, 8, 5, 6) * torch.rand(1, 8, 1, 1) * 4 - 2
    style_mean, style_std = mean_std(style)
    out = adain(content, style_mean, style_std)
    assert out.shape == content.shape
    out_mean, out_std = mean_std(out)
    torch.testing.assert_close(out_mean, style_mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(out_std, style_std, atol=1e-4, rtol=0)
    # shared (C,) statistics broadcast over the batch
    assert adain(content, style_mean[0], style_std[0]).shape == content.shape
    with pytest.raises(ValueError, match="style_mean"):
        adain(content, torch.zeros(2, 5), style_std)


def test_blend_stats():
    torch.manual_seed(0)
    content = torch.randn(1, 4, 6, 6)
    first = mean_std(torch.randn(1, 4, 5, 5))
    second = mean_std(torch.randn(1, 4, 5, 5) * 2 + 1)
    mean, std = blend_stats([first, second], (1.0, 0.0))
    torch.testing.assert_close(mean, first[0])
    torch.testing.assert_close(std, first[1])
    # weights are normalised, and AdaIN with blended stats = blend of the AdaIN outputs
    mean, std = blend_stats([first, second], (3.0, 1.0))
    expected = 0.75 * adain(content, *first) + 0.25 * adain(content, *second)
    torch.testing.assert_close(adain(content, mean, std), expected)
    with pytest.raises(ValueError):
        blend_stats([first, second], (1.0,))
    with pytest.raises(ValueError):
        blend_stats([first], (0.0,))


# --------------------------------------------------------------------------- decoder

def test_vgg19_decoder_reproduces_the_published_layout():
    decoder = Decoder("vgg19")
    assert len(decoder) == 29
    assert {k: tuple(v.shape) for k, v in decoder.state_dict().items()} == PUBLISHED_DECODER
    assert [i for i, m in enumerate(decoder) if isinstance(m, torch.nn.Upsample)] == [3, 16, 23]
    assert not isinstance(decoder[-1], torch.nn.ReLU)
    assert decoder_config("adain-vgg19") == decoder_config("vgg19")
    assert decoder.metadata() == {"architecture": "vgg19", "width": 1.0}
    with torch.no_grad():
        assert decoder(torch.randn(1, 512, 8, 8)).shape == (1, 3, 64, 64)


def test_vgg16_and_narrow_decoders():
    decoder = Decoder("vgg16")
    convs = [m for m in decoder if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 8
    assert convs[0].in_channels == 512 and convs[-1].out_channels == 3
    tiny = Decoder("vgg16", width=0.25)
    convs = [m for m in tiny if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 64, 32, 32, 16, 16, 3]
    assert convs[0].in_channels == 512
    with torch.no_grad():
        assert tiny(torch.randn(2, 512, 4, 5)).shape == (2, 3, 32, 40)
    with pytest.raises(ValueError, match="architecture"):
        Decoder("resnet")


def test_published_decoder_loads_without_metadata():
    state = random_state(PUBLISHED_DECODER)
    decoder = load_decoder(state)
    assert decoder.architecture == "vgg19" and decoder.width == 1.0
    torch.testing.assert_close(decoder[28].weight, state["28.weight"])


def test_trained_decoder_round_trips_with_metadata():
    source = Decoder("vgg16", width=0.25)
    loaded = load_decoder(source.state_dict(), source.metadata())
    assert loaded.metadata() == {"architecture": "vgg16", "width": 0.25}
    # a narrow decoder without metadata is recognised too
    assert load_decoder(source.state_dict()).metadata() == source.metadata()
    with pytest.raises(WeightsError, match="metadata"):
        load_decoder(source.state_dict(), {"architecture": "resnet"})


@pytest.mark.parametrize("case", ["missing", "shape", "johnson", "not a dict"])
def test_wrong_decoder_layouts_raise_weights_error(case):
    state: object = random_state(PUBLISHED_DECODER)
    if case == "missing":
        del state["14.weight"]
        expected = r"for vgg19: 1 missing keys \(14.weight\)"
    elif case == "shape":
        state["1.weight"] = torch.zeros(256, 256, 3, 3)
        expected = r"wrong shapes \(1.weight \(256, 256, 3, 3\) instead of \(256, 512, 3, 3\)"
    elif case == "johnson":
        state = {key: torch.zeros(shape) for key, shape in JOHNSON.items()}
        expected = r"missing keys \(1.weight.*unexpected keys \(conv1.conv2d.weight"
    else:
        state = [torch.zeros(3)]
        expected = "expected a state dict"
    with pytest.raises(WeightsError, match=f"not an AdaIN decoder.*{expected}") as info:
        load_decoder(state)
    assert "decoder.pth" in str(info.value)  # the hint names the expected file


# --------------------------------------------------------------------------- published encoder

def test_published_vgg_normalised_layout_loads():
    state = random_state(PUBLISHED_VGG, skip_from=31)
    encoder = load_adain_encoder(state)
    assert not encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())
    assert len(encoder.net) == 31
    torch.testing.assert_close(encoder.net[29].weight, state["29.weight"])
    with torch.no_grad():
        feats = encoder(torch.rand(1, 3, 32, 32))
        odd = encoder(torch.rand(1, 3, 33, 33))
    assert list(feats) == list(ENCODER_LAYERS)
    assert [tuple(f.shape[1:]) for f in feats.values()] == [
        (64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]
    # ceil-mode pooling: 33 -> 17 -> 9 -> 5 (floor would give 16, 8, 4)
    assert [tuple(f.shape[2:]) for f in odd.values()] == [(33, 33), (17, 17), (9, 9), (5, 5)]


def test_wrong_encoder_layouts_raise_weights_error():
    state = random_state(PUBLISHED_VGG, skip_from=31)
    state["9.weight"] = torch.zeros(128, 128, 3, 3)
    del state["0.bias"]
    with pytest.raises(WeightsError, match=r"normalised VGG19.*missing keys \(0\.bias.*wrong shapes \(9\.weight"):
        load_adain_encoder(state)
    with pytest.raises(WeightsError, match=r"unexpected keys \(features.0.weight"):
        load_adain_encoder({"features.0.weight": torch.zeros(64, 3, 3, 3)})


# --------------------------------------------------------------------------- encode

@pytest.mark.parametrize("kind", ["vgg16", "adain"])
def test_encode_works_with_both_encoders(kind):
    torch.manual_seed(0)
    encoder = VGGEncoder("vgg16", layers=ENCODER_LAYERS) if kind == "vgg16" else AdainVGGEncoder()
    with torch.no_grad():
        feats = encode(encoder, torch.rand(1, 3, 32, 32))
    assert list(feats) == list(ENCODER_LAYERS)
    assert [f.shape[1] for f in feats.values()] == [64, 128, 256, 512]
    assert feats["relu4_1"].shape[-2:] == (4, 4)


def test_encode_rejects_an_encoder_without_the_layers():
    with pytest.raises(ValueError, match="relu4_1"):
        encode(VGGEncoder("vgg16", layers=["relu1_1"]), torch.rand(1, 3, 16, 16))


@pytest.mark.parametrize("architecture, paths", [("vgg16", {}), ("vgg19", {}), ("vgg16", {"colour_path": True}),
                                                 ("vgg16", {"detail_path": True}),
                                                 ("vgg19", {"colour_path": True, "detail_path": True})])
@pytest.mark.parametrize("size", [(9, 7), (2, 3)])
def test_channels_last_decoding_equals_the_sequential(architecture, paths, size):
    torch.manual_seed(0)
    decoder = Decoder(architecture, width=0.25, **paths).eval()
    features = torch.rand(2, decoder.input_channels, *size)
    expected = decoder(features).detach()  # autograd on: the layers one by one
    assert expected.shape == (2, 3, 8 * size[0], 8 * size[1])
    with torch.no_grad():
        assert decoder.runs_channels_last(features)
        got = decoder(features)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5 * float(expected.abs().max()))


def test_the_detail_path_packs_relu3_1_onto_relu4_1s_grid_and_joins_after_the_first_upsampling():
    from plugin_host_adain.net import DETAIL_SCALE, decoder_input

    torch.manual_seed(0)
    decoder = Decoder("vgg16", width=0.25, colour_path=True, detail_path=True)
    encoder = VGGEncoder("vgg16", layers=ENCODER_LAYERS)
    image = torch.rand(1, 3, 48, 64)
    given = decoder_input(encoder, decoder, image)
    assert given.shape == (1, 512 + 3 + 1024, 6, 8) == (1, decoder.input_channels, 6, 8)
    relu3_1 = encode(encoder, image)["relu3_1"]
    torch.testing.assert_close(torch.nn.functional.pixel_shuffle(given[:, 515:], 2), relu3_1 * DETAIL_SCALE)
    joined = decoder.index_after_first_upsampling() + 2  # its padding, then the convolution
    assert decoder[joined].in_channels == Decoder("vgg16", width=0.25)[joined].in_channels + 256
    # an odd side: relu3_1 is cropped or its edge repeated to twice relu4_1's grid
    assert decoder_input(encoder, decoder, torch.rand(1, 3, 61, 67)).shape[-2:] == (7, 8)
    with pytest.raises(ValueError, match="1539 channels, got 515"):
        decoder(given[:, :515])
    for metadata in (decoder.metadata(), None):  # recorded, or recognised from the joining convolution
        loaded = load_decoder(decoder.state_dict(), metadata)
        assert loaded.detail_path and loaded.colour_path
    assert not load_decoder(Decoder("vgg16", width=0.25).state_dict()).detail_path


def test_channels_last_decoding_only_where_it_computes_the_same():
    from plugin_host.precision import compute_in

    decoder, features = Decoder("vgg16", width=0.25).eval(), torch.rand(1, 512, 4, 4)
    assert not decoder.runs_channels_last(features)  # autograd on: training
    with torch.no_grad():
        assert decoder.runs_channels_last(features)
        assert not decoder.runs_channels_last(torch.rand(1, 512, 1, 4))  # reflection needs 2 px
        assert not compute_in(Decoder("vgg16", width=0.25), torch.bfloat16, torch.float32).runs_channels_last(features)
        upsample = next(i for i, m in enumerate(decoder) if isinstance(m, torch.nn.Upsample))
        decoder[upsample] = torch.nn.Upsample(scale_factor=2, mode="bilinear")  # a setting it does not know
        assert not decoder.runs_channels_last(features)
