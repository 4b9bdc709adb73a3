from __future__ import annotations

import math

import pytest
import torch

from plugin_host.losses import (
    content_loss,
    gram_matrix,
    gram_style_loss,
    mean_std,
    mean_std_style_loss,
    total_variation_loss,
)


def test_smoke_shapes() -> None:
    f = torch.rand(2, 8, 5, 7)
    assert gram_matrix(f).shape == (2, 8, 8)
    mean, std = mean_std(f)
    assert mean.shape == std.shape == (2, 8)
    for loss in (content_loss(f, f), gram_style_loss(f, gram_matrix(f)),
                 mean_std_style_loss(f, mean, std), total_variation_loss(f)):
        assert loss.shape == ()


class TestGram:
    def test_hand_computed(self) -> None:
        # channel 0 = [1, 2], channel 1 = [3, 4]; C*H*W = 4
        f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
        expected = torch.tensor([[[1 + 4, 3 + 8], [3 + 8, 9 + 16]]]) / 4.0
        torch.testing.assert_close(gram_matrix(f), expected)

    def test_symmetric_and_size_invariant(self) -> None:
        f = torch.rand(1, 4, 3, 3)
        g = gram_matrix(f)
        torch.testing.assert_close(g, g.transpose(1, 2))
        # tiling the image 2x2 keeps the normalised Gram unchanged
        torch.testing.assert_close(gram_matrix(f.repeat(1, 1, 2, 2)), g)

    def test_style_loss(self) -> None:
        f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
        target = torch.zeros(1, 2, 2)
        expected = ((torch.tensor([5.0, 11.0, 11.0, 25.0]) / 4) ** 2).mean()
        torch.testing.assert_close(gram_style_loss(f, target), expected)
        assert gram_style_loss(f, gram_matrix(f)) == 0

    def test_style_loss_broadcasts_target(self) -> None:
        f = torch.rand(3, 4, 5, 5)
        target = gram_matrix(f[:1])
        per_sample = torch.stack([gram_style_loss(f[i:i + 1], target) for i in range(3)])
        torch.testing.assert_close(gram_style_loss(f, target), per_sample.mean())
        torch.testing.assert_close(gram_style_loss(f, target[0]), per_sample.mean())

    def test_errors(self) -> None:
        with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
            gram_matrix(torch.rand(4, 5, 5))
        with pytest.raises(ValueError, match="target_gram"):
            gram_style_loss(torch.rand(1, 4, 5, 5), torch.rand(1, 3, 3))


class TestContent:
    def test_equal_is_zero(self) -> None:
        f = torch.rand(2, 3, 4, 4)
        assert content_loss(f, f.clone()) == 0

    def test_hand_computed(self) -> None:
        f = torch.zeros(1, 1, 2, 2)
        t = torch.tensor([[[[1.0, 2.0], [0.0, 3.0]]]])
        torch.testing.assert_close(content_loss(f, t), torch.tensor((1 + 4 + 0 + 9) / 4))

    def test_shape_mismatch(self) -> None:
        with pytest.raises(ValueError, match="target"):
            content_loss(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 5, 5))


class TestMeanStd:
    def test_hand_computed(self) -> None:
        # channel 0: [1, 3] -> mean 2, population var 1; channel 1: constant 5 -> var 0
        f = torch.tensor([[[[1.0, 3.0]], [[5.0, 5.0]]]])
        mean, std = mean_std(f, eps=0.0)
        torch.testing.assert_close(mean, torch.tensor([[2.0, 5.0]]))
        torch.testing.assert_close(std, torch.tensor([[1.0, 0.0]]))
        _, std_eps = mean_std(f)
        torch.testing.assert_close(std_eps, torch.tensor([[math.sqrt(1 + 1e-5), math.sqrt(1e-5)]]))

    def test_style_loss(self) -> None:
        f = torch.tensor([[[[1.0, 3.0]], [[5.0, 5.0]]]])
        mean, std = mean_std(f)
        assert mean_std_style_loss(f, mean, std) == 0
        # means off by (1, 0), stds off by (0, 2): 1/2 + 4/2
        loss = mean_std_style_loss(f, mean + torch.tensor([1.0, 0.0]), std + torch.tensor([0.0, 2.0]))
        torch.testing.assert_close(loss, torch.tensor(2.5))

    def test_errors(self) -> None:
        with pytest.raises(ValueError):
            mean_std(torch.rand(3, 4))
        with pytest.raises(ValueError, match="target_std"):
            mean_std_style_loss(torch.rand(1, 2, 3, 3), torch.zeros(2), torch.zeros(3))


class TestTotalVariation:
    def test_constant_is_zero(self) -> None:
        assert total_variation_loss(torch.full((2, 3, 8, 8), 0.7)) == 0

    def test_one_step_edge(self) -> None:
        # columns 0, 0, 1, 1 in 3 rows: 3 horizontal jumps of 1, no vertical; 12 values
        img = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).repeat(3, 1).view(1, 1, 3, 4)
        torch.testing.assert_close(total_variation_loss(img), torch.tensor(3 / 12))
        # absolute, not squared: a step of 2 doubles the loss
        torch.testing.assert_close(total_variation_loss(2 * img), torch.tensor(6 / 12))
        # the transposed edge gives the same value
        torch.testing.assert_close(total_variation_loss(img.transpose(2, 3)), torch.tensor(3 / 12))

    def test_error(self) -> None:
        with pytest.raises(ValueError, match="image"):
            total_variation_loss(torch.rand(3, 8, 8))


def test_gradients_flow() -> None:
    x = torch.rand(1, 3, 6, 6, requires_grad=True)
    target = torch.rand(1, 3, 6, 6)
    mean, std = mean_std(target)
    loss = (content_loss(x, target) + gram_style_loss(x, gram_matrix(target))
            + mean_std_style_loss(x, mean, std) + total_variation_loss(x))
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("channels_last", [False, True])
def test_gram_gradient_is_the_product_rule_s(channels_last: bool) -> None:
    features = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    if channels_last:
        features = features.contiguous(memory_format=torch.channels_last)
    weights = torch.randn(2, 5, 5, dtype=torch.float64)
    ours = features.clone().requires_grad_(True)
    (gram_matrix(ours) * weights).sum().backward()
    reference = features.clone().requires_grad_(True)
    flat = reference.reshape(2, 5, 12)
    ((flat @ flat.transpose(1, 2) / 60) * weights).sum().backward()
    torch.testing.assert_close(ours.grad, reference.grad)
    assert torch.autograd.gradcheck(gram_matrix, (features.clone().requires_grad_(True),))


def test_the_shift_loss_sees_a_pattern_locked_to_the_pixel_grid_and_not_the_picture():
    from plugin_host.losses import shift_equivariance_loss

    photos = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    lattice = (torch.cos(torch.pi / 2 * rows) + torch.cos(torch.pi / 2 * cols)) / 25.5  # ±20 grey levels, 4-px period

    def grid_locked(x):  # the picture plus a pattern fixed to the pixel grid
        return x + lattice[:x.shape[-2], :x.shape[-1]]

    for network, low, high in [(lambda x: x, 0.0, 1e-6), (grid_locked, 50.0, 1000.0)]:
        output = network(photos)
        for seed in range(8):  # shifts from (0, 1) to (3, 3)
            torch.manual_seed(seed)
            assert low <= float(shift_equivariance_loss(network, photos, output)) <= high


def test_the_shift_loss_compares_what_a_network_that_rounds_sizes_down_returns():
    from plugin_host.losses import shift_equivariance_loss

    photos = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))

    def to_multiple_of_8(x):  # as AdaIN's decoder: 61 px in, 56 px out, aligned at the top left
        return x[..., :x.shape[-2] // 8 * 8, :x.shape[-1] // 8 * 8]

    for seed in range(8):
        torch.manual_seed(seed)
        assert float(shift_equivariance_loss(to_multiple_of_8, photos, to_multiple_of_8(photos))) == 0.0
