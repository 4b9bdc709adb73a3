import kornia.color
import pytest
import torch

from plugin_host.imaging import (COLOR_MODES, match_color_statistics, match_histograms, preserve_colors,
                                 preserve_luminance, rgb_to_ycbcr, ycbcr_to_rgb)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _mid(generator, *shape, spread=0.1) -> torch.Tensor:
    """Mid-grey images with small variation: every luminance/chroma mix stays in gamut."""
    return 0.5 + spread * (torch.rand(*shape, generator=generator) - 0.5)


def _correlated(generator, n, matrix, mean) -> torch.Tensor:
    noise = torch.rand(1, 3, n, n, generator=generator) - 0.5
    return (torch.tensor(matrix) @ noise.flatten(2) + torch.tensor(mean).view(1, 3, 1)).view(1, 3, n, n)


def _mean_cov(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = image.flatten(2)[0].double()
    mean = pixels.mean(-1, keepdim=True)
    return mean.flatten(), (pixels - mean) @ (pixels - mean).T / pixels.shape[-1]


class TestYCbCr:
    def test_matches_kornia(self, generator, assert_close):
        image = torch.rand(2, 3, 5, 6, generator=generator)
        assert_close(rgb_to_ycbcr(image), kornia.color.rgb_to_ycbcr(image))

    def test_hand_computed_and_round_trip(self, generator, assert_close):
        grey = torch.full((1, 3, 1, 1), 0.4)
        assert_close(rgb_to_ycbcr(grey).flatten(), torch.tensor([0.4, 0.5, 0.5]))
        image = torch.rand(1, 3, 8, 8, generator=generator)
        assert_close(ycbcr_to_rgb(rgb_to_ycbcr(image)), image, atol=1e-5, rtol=0)

    def test_bad_shape(self):
        with pytest.raises(ValueError, match="3 channels"):
            rgb_to_ycbcr(torch.rand(1, 4, 2, 2))


class TestPreserveLuminance:
    def test_y_from_stylised_chroma_from_content(self, generator, assert_close):
        stylised, content = _mid(generator, 2, 3, 16, 16), _mid(generator, 2, 3, 16, 16)
        stylised[:, 0] += 0.05  # give both some colour of their own
        content[:, 2] -= 0.05
        out = preserve_luminance(stylised, content)
        assert out.shape == stylised.shape
        got, want_s, want_c = rgb_to_ycbcr(out), rgb_to_ycbcr(stylised), rgb_to_ycbcr(content)
        assert_close(got[:, :1], want_s[:, :1], atol=1e-3, rtol=0)
        assert_close(got[:, 1:], want_c[:, 1:], atol=1e-3, rtol=0)

    def test_content_resized_and_batch_broadcast(self, generator, assert_close):
        stylised, content = _mid(generator, 3, 3, 12, 20), torch.zeros(1, 3, 30, 50)
        content[:, 0] = 0.6
        content[:, 1:] = 0.4
        out = preserve_luminance(stylised, content)
        assert out.shape == (3, 3, 12, 20)
        expected_chroma = rgb_to_ycbcr(content[:, :, :1, :1])[:, 1:].expand(3, 2, 12, 20)
        assert_close(rgb_to_ycbcr(out)[:, 1:], expected_chroma, atol=1e-3, rtol=0)

    def test_lab(self, generator, assert_close):
        stylised, content = _mid(generator, 1, 3, 8, 8), _mid(generator, 1, 3, 8, 8)
        out = preserve_luminance(stylised, content, space="lab")
        got, want_s, want_c = (kornia.color.rgb_to_lab(x) for x in (out, stylised, content))
        assert_close(got[:, :1], want_s[:, :1], atol=0.05, rtol=0)  # L in 0..100
        assert_close(got[:, 1:], want_c[:, 1:], atol=0.05, rtol=0)

    def test_clamped(self, generator):
        stylised = torch.ones(1, 3, 4, 4)
        content = torch.zeros(1, 3, 4, 4)
        content[:, 0] = 1.0  # saturated red chroma with white luminance: out of gamut
        out = preserve_luminance(stylised, content)
        assert out.min() >= 0 and out.max() <= 1

    def test_exceptions(self, generator):
        image = torch.rand(1, 3, 4, 4, generator=generator)
        with pytest.raises(ValueError, match="space"):
            preserve_luminance(image, image, space="hsv")
        with pytest.raises(ValueError, match="content"):
            preserve_luminance(image, torch.rand(1, 1, 4, 4))
        with pytest.raises(ValueError, match="batch size"):
            preserve_luminance(torch.rand(2, 3, 4, 4), torch.rand(3, 3, 4, 4))


class TestMatchColorStatistics:
    def test_mean_and_covariance_match_target(self, generator, assert_close):
        source = _correlated(generator, 48, [[0.3, 0.1, 0.0], [0.1, 0.2, 0.05], [0.0, 0.05, 0.4]],
                             [0.5, 0.4, 0.6])
        target = _correlated(generator, 40, [[0.2, -0.1, 0.0], [0.0, 0.3, 0.0], [0.1, 0.0, 0.1]],
                             [0.4, 0.5, 0.45])
        out = match_color_statistics(source, target, eps=1e-12, clamp=False)
        assert out.shape == source.shape
        (mean_o, cov_o), (mean_t, cov_t) = _mean_cov(out), _mean_cov(target)
        assert_close(mean_o, mean_t, atol=1e-5, rtol=0)
        assert_close(cov_o, cov_t, atol=1e-6, rtol=1e-3)
        # The default eps shrinks only the weakest colour direction, and slightly.
        cov_default = _mean_cov(match_color_statistics(source, target, clamp=False))[1]
        assert_close(cov_default, cov_t, atol=1e-4, rtol=0)

    def test_clamped_output_close_when_in_range(self, generator, assert_close):
        source, target = _mid(generator, 1, 3, 32, 32, spread=0.6), _mid(generator, 1, 3, 32, 32, spread=0.2)
        out = match_color_statistics(source, target)
        assert out.min() >= 0 and out.max() <= 1
        assert_close(_mean_cov(out)[0], _mean_cov(target)[0], atol=1e-4, rtol=0)

    def test_symmetric_map_keeps_identity(self, generator, assert_close):
        image = torch.rand(1, 3, 16, 16, generator=generator)
        assert_close(match_color_statistics(image, image, eps=0.0), image, atol=1e-5, rtol=0)

    def test_flat_source_becomes_target_mean(self, generator, assert_close):
        target = torch.rand(1, 3, 8, 8, generator=generator)
        out = match_color_statistics(torch.full((1, 3, 8, 8), 0.3), target)
        assert torch.isfinite(out).all()
        assert_close(out[0, :, 0, 0], target.mean((0, 2, 3)), atol=1e-5, rtol=0)

    def test_batch(self, generator, assert_close):
        source = torch.rand(2, 3, 8, 8, generator=generator)
        target = torch.rand(2, 3, 8, 8, generator=generator) * 0.5
        out = match_color_statistics(source, target, eps=1e-12, clamp=False)
        for i in range(2):
            assert_close(_mean_cov(out[i:i + 1])[1], _mean_cov(target[i:i + 1])[1],
                                       atol=1e-5, rtol=1e-3)

    def test_exceptions(self):
        with pytest.raises(ValueError, match="target"):
            match_color_statistics(torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 4))
        with pytest.raises(ValueError, match="eps"):
            match_color_statistics(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), eps=-1)


class TestMatchHistograms:
    def test_sorted_values_equal_target(self, generator, assert_close):
        source = torch.rand(2, 3, 10, 12, generator=generator)
        target = torch.rand(2, 3, 12, 10, generator=generator) ** 3
        out = match_histograms(source, target)
        assert out.shape == source.shape
        assert_close(out.flatten(2).sort(-1).values, target.flatten(2).sort(-1).values)
        # Ranks are kept: the output orders pixels exactly as the source does.
        assert torch.equal(out.flatten(2).argsort(-1), source.flatten(2).argsort(-1))

    def test_hand_computed(self):
        source = torch.tensor([0.9, 0.1, 0.5]).view(1, 1, 1, 3)
        target = torch.tensor([10.0, 30.0, 20.0]).view(1, 1, 3, 1)
        assert match_histograms(source, target).flatten().tolist() == [30.0, 10.0, 20.0]

    def test_different_sizes_interpolate_quantiles(self):
        source = torch.tensor([0.3, 0.1, 0.2]).view(1, 1, 1, 3)
        target = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]).view(1, 1, 1, 5)
        assert match_histograms(source, target).flatten().tolist() == [4.0, 0.0, 2.0]

    def test_exceptions(self):
        with pytest.raises(ValueError, match="channels"):
            match_histograms(torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 4))


class TestPreserveColors:
    def test_modes(self, generator, assert_close):
        stylised, content = torch.rand(1, 3, 8, 8, generator=generator), torch.rand(1, 3, 8, 8, generator=generator)
        assert COLOR_MODES == ("none", "luminance", "histogram")
        assert preserve_colors(stylised, content, "none") is stylised
        assert_close(preserve_colors(stylised, content, "luminance"),
                                   preserve_luminance(stylised, content))
        assert_close(preserve_colors(stylised, content, "histogram"),
                                   match_color_statistics(stylised, content))

    def test_unknown_mode(self):
        with pytest.raises(ValueError, match="none, luminance, histogram"):
            preserve_colors(torch.rand(1, 3, 2, 2), torch.rand(1, 3, 2, 2), "lab")
