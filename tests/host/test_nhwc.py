"""plugin_host.nhwc: each channels-last building block against the torch layer it replaces."""
import pytest
import torch
import torch.nn.functional as F

from plugin_host import nhwc


def nhwc_of(x):
    return x.permute(0, 2, 3, 1).contiguous()


def nchw_of(x):
    return x.permute(0, 3, 1, 2)


@pytest.mark.parametrize("pad, size", [(1, (5, 7)), (4, (9, 6)), (4, (5, 5))])
def test_reflected_border_equals_reflection_padding(pad, size):
    x = torch.rand(2, 3, *size)
    torch.testing.assert_close(nchw_of(nhwc.pad_reflect(nhwc_of(x), pad)), F.pad(x, (pad,) * 4, mode="reflect"),
                               rtol=0, atol=0)


def test_reflection_needs_a_picture_wider_than_the_border():
    with pytest.raises(ValueError, match="larger than 4 px"):
        nhwc.pad_reflect(torch.rand(1, 4, 9, 3), 4)


def test_nearest_upsampling_into_a_padded_buffer():
    x = torch.rand(1, 5, 6, 4)
    buffer = nhwc.padded(10, 12, 1, x)
    nhwc.upsample_nearest_into(x, nhwc.interior(buffer, 1))
    torch.testing.assert_close(nchw_of(nhwc.interior(buffer, 1)), F.interpolate(nchw_of(x), scale_factor=2),
                               rtol=0, atol=0)


@pytest.mark.parametrize("affine", [True, False])
def test_instance_norm_into_with_relu_and_residual(affine):
    torch.manual_seed(0)
    norm = torch.nn.InstanceNorm2d(6, affine=affine)
    if affine:
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 6, 9, 11) * 20 + 300  # a large mean: the variance must not cancel
    residual = torch.randn(2, 9, 11, 6)
    with torch.no_grad():
        expected = norm(x)
        for relu, res in [(False, None), (True, None), (False, residual)]:
            out = torch.empty(2, 9, 11, 6)
            nhwc.instance_norm_into(nhwc_of(x), norm, out, relu=relu, residual=res)
            want = expected.clamp_min(0) if relu else expected
            want = want + nchw_of(res) if res is not None else want
            torch.testing.assert_close(nchw_of(out), want, rtol=0, atol=1e-4)


def test_conv_reads_the_buffer_channels_last_and_returns_nhwc():
    layer = torch.nn.Conv2d(4, 8, 3, stride=2)
    x = torch.rand(1, 4, 11, 13)
    with torch.no_grad():
        got = nhwc.conv(nhwc.pad_reflect(nhwc_of(x), 1), layer)
        expected = layer(F.pad(x, (1,) * 4, mode="reflect"))
    assert got.is_contiguous()
    torch.testing.assert_close(nchw_of(got), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size, kernel, outputs, factor", [
    ((40, 37), 9, 3, 2), ((17, 20), 7, 3, 2), ((26, 26), 9, 1, 4), ((30, 31), (7, 9), 2, 3), ((9, 12), 9, 3, 2)])
@pytest.mark.parametrize("bias", [True, False])
def test_a_convolution_in_phases_equals_the_convolution(size, kernel, outputs, factor, bias):
    torch.manual_seed(0)
    layer = torch.nn.Conv2d(5, outputs, kernel, bias=bias)
    x = torch.randn(2, *size, 5)
    with torch.no_grad():
        got = nhwc.conv_in_phases(x, layer, factor)
        want = F.conv2d(nchw_of(x), layer.weight, layer.bias)
    assert got.is_contiguous()
    torch.testing.assert_close(nchw_of(got), want, rtol=1e-5, atol=1e-5)


def test_conv_takes_the_phases_for_large_kernels_with_few_outputs_only():
    x = torch.randn(1, 24, 24, 8)
    taken = []
    original = nhwc.conv_in_phases
    try:
        nhwc.conv_in_phases = lambda *args: taken.append(args[1]) or original(*args)
        for layer in (torch.nn.Conv2d(8, 3, 9), torch.nn.Conv2d(8, 3, 3), torch.nn.Conv2d(8, 16, 9),
                      torch.nn.Conv2d(8, 3, 9, stride=2), torch.nn.Conv2d(8, 3, 9, padding=4)):
            with torch.no_grad():
                got = nhwc.conv(x, layer)
                want = F.conv2d(nchw_of(x), layer.weight, layer.bias, layer.stride, layer.padding)
            torch.testing.assert_close(nchw_of(got), want, rtol=1e-5, atol=1e-5)
    finally:
        nhwc.conv_in_phases = original
    assert [(t.out_channels, t.kernel_size, t.stride, t.padding) for t in taken] == [(3, (9, 9), (1, 1), (0, 0))]


def test_the_phase_kernel_follows_new_weights():
    layer = torch.nn.Conv2d(4, 3, 7)
    x = torch.randn(1, 20, 20, 4)
    with torch.no_grad():
        first = nhwc.conv_in_phases(x, layer)
        layer.weight.mul_(2)
        layer.bias.zero_()
        second = nhwc.conv_in_phases(x, layer)
        want = F.conv2d(nchw_of(x), layer.weight)
    torch.testing.assert_close(nchw_of(second), want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(first, second, atol=1e-3)


def test_instance_norm_into_a_buffer_that_also_holds_the_residual():
    # the squares for the variance must not be written over the residual before it is added
    torch.manual_seed(0)
    norm = torch.nn.InstanceNorm2d(4, affine=True)
    y = torch.randn(1, 6, 6, 4)
    storage = torch.randn(1, 12, 6, 4)
    out, residual = storage[:, 6:], storage[:, :6]
    want = nhwc_of(F.instance_norm(nchw_of(y), weight=norm.weight, bias=norm.bias, eps=norm.eps)) + residual.clone()
    with torch.no_grad():
        want = want.detach()
        nhwc.instance_norm_into(y.clone(), norm, out, residual=residual)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)


def resize_conv(x, layer):
    """The layers upsample_conv replaces: nearest ×2, reflection padding 1, the convolution (NCHW)."""
    return layer(F.pad(F.interpolate(x, scale_factor=2), (1,) * 4, mode="reflect"))


@pytest.mark.parametrize("size, inputs, outputs", [((6, 9), 5, 7), ((1, 4), 3, 2), ((13, 1), 8, 16)])
def test_a_resize_convolution_on_the_small_grid_equals_upsampling_then_convolving(size, inputs, outputs):
    torch.manual_seed(0)
    layer = torch.nn.Conv2d(inputs, outputs, 3)
    x = torch.randn(2, inputs, *size)
    with torch.no_grad():
        got = nhwc.upsample_conv(nhwc_of(x), layer)
        want = resize_conv(x, layer)
    assert got.is_contiguous() and got.shape == (2, 2 * size[0], 2 * size[1], outputs)
    torch.testing.assert_close(nchw_of(got), want, rtol=1e-5, atol=1e-5)


def test_a_resize_convolution_with_joined_channels_at_the_large_size():
    torch.manual_seed(0)
    layer = torch.nn.Conv2d(4 + 3, 6, 3)
    x, joined = torch.randn(1, 4, 5, 7), torch.randn(1, 3, 10, 14)
    with torch.no_grad():
        got = nhwc.upsample_conv(nhwc_of(x), layer, joined=nhwc_of(joined))
        want = layer(F.pad(torch.cat([F.interpolate(x, scale_factor=2), joined], 1), (1,) * 4, mode="reflect"))
        torch.testing.assert_close(nchw_of(got), want, rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="takes 7 inputs, got 4 \\+ 0 joined"):
            nhwc.upsample_conv(nhwc_of(x), layer)


def test_the_resize_kernel_follows_new_weights():
    layer = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        first = nhwc.upsample_conv(nhwc_of(x), layer)
        layer.weight.mul_(-1)
        second = nhwc.upsample_conv(nhwc_of(x), layer)
        torch.testing.assert_close(nchw_of(second), resize_conv(x, layer), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(first, second, atol=1e-3)
