from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F

from plugin_host.errors import Cancelled
from plugin_host.imaging import tile_grid, tiled_apply
from plugin_host.progress import CancelToken, Progress

TOLERANCE = 1 / 255


def box_blur(x: torch.Tensor) -> torch.Tensor:
    """5x5 mean filter, reflect padding: receptive field radius 2."""
    b, c, h, w = x.shape
    padded = F.pad(x.reshape(b * c, 1, h, w), (2, 2, 2, 2), mode="reflect")
    return F.conv2d(padded, torch.full((1, 1, 5, 5), 1 / 25, dtype=x.dtype)).view(b, c, h, w)


def upscale2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class RecordingProgress(Progress):
    def __init__(self) -> None:
        super().__init__()
        self.stages: list[tuple[str, int | None]] = []

    def _on_stage(self) -> None:
        self.stages.append((self.stage_name, self.total))


class TestTileGrid:
    def test_non_multiple_size(self):
        grid = tile_grid(100, 77, tile=32, overlap=8)
        rows = sorted({ys.start for ys, _ in grid})
        cols = sorted({xs.start for _, xs in grid})
        assert rows == [0, 24, 48, 68] and cols == [0, 24, 45]
        assert len(grid) == 12
        assert all(ys.stop - ys.start == 32 and xs.stop - xs.start == 32 for ys, xs in grid)

    @pytest.mark.parametrize(("height", "width"), [(100, 77), (33, 33), (64, 200), (57, 40)])
    def test_covers_with_overlap(self, height, width):
        grid = tile_grid(height, width, tile=32, overlap=8)
        covered = torch.zeros(height, width, dtype=torch.int64)
        for ys, xs in grid:
            covered[ys, xs] += 1
        assert covered.min() >= 1
        for starts in ({ys.start for ys, _ in grid}, {xs.start for _, xs in grid}):
            assert all(b - a <= 32 - 8 for a, b in pairwise(sorted(starts)))  # neighbours share >= 8 px
        assert max(ys.stop for ys, _ in grid) == height and max(xs.stop for _, xs in grid) == width

    def test_small_image_is_one_tile(self):
        assert tile_grid(20, 31, tile=32, overlap=8) == [(slice(0, 20), slice(0, 31))]

    @pytest.mark.parametrize(("tile", "overlap", "match"), [(0, 0, "tile"), (32, 16, "overlap"),
                                                            (32, -1, "overlap"), (32, 2.0, "overlap")])
    def test_bad_arguments(self, tile, overlap, match):
        with pytest.raises(ValueError, match=match):
            tile_grid(64, 64, tile, overlap)


class TestTiledApply:
    @pytest.mark.parametrize(("height", "width"), [(100, 77), (77, 100), (33, 65), (64, 64)])
    @pytest.mark.parametrize(("fn", "factor"), [(lambda x: x, 1), (box_blur, 1), (upscale2, 2)],
                             ids=["identity", "box_blur", "upscale2"])
    def test_equals_untiled(self, height, width, fn, factor):
        image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(height * width))
        out = tiled_apply(image, fn, tile=32, overlap=8, scale=factor)
        expected = fn(image)
        assert out.shape == expected.shape == (1, 3, height * factor, width * factor)
        assert (out - expected).abs().max() < TOLERANCE

    def test_identity_is_near_exact(self, assert_close):
        image = torch.rand(2, 3, 50, 70)
        assert_close(tiled_apply(image, lambda x: x, tile=16, overlap=4), image)

    def test_channels_may_change(self, assert_close):
        image = torch.rand(1, 3, 40, 40)
        out = tiled_apply(image, lambda x: x.mean(1, keepdim=True), tile=16, overlap=4)
        assert_close(out, image.mean(1, keepdim=True))

    def test_small_image_single_call(self, assert_close):
        calls = []

        def fn(x):
            calls.append(tuple(x.shape))
            return x * 2

        image = torch.rand(1, 3, 20, 30)
        out = tiled_apply(image, fn, tile=32, overlap=8)
        assert calls == [(1, 3, 20, 30)]
        assert_close(out, image * 2)

    def test_output_dtype_follows_fn(self):
        out = tiled_apply(torch.rand(1, 3, 40, 40), lambda x: x.double(), tile=16, overlap=4)
        assert out.dtype == torch.float64

    def test_cancel_stops_midway(self):
        token, calls = CancelToken(), []

        def fn(x):
            calls.append(1)
            if len(calls) == 3:
                token.cancel()
            return x

        with pytest.raises(Cancelled):
            tiled_apply(torch.rand(1, 3, 100, 77), fn, tile=32, overlap=8, cancel=token)
        assert len(calls) == 3  # checked before each tile: the fourth never ran

    def test_cancelled_before_start(self):
        token = CancelToken()
        token.cancel()
        with pytest.raises(Cancelled):
            tiled_apply(torch.rand(1, 3, 8, 8), lambda x: pytest.fail("fn ran"), cancel=token)

    def test_progress_once_per_tile(self):
        progress = RecordingProgress()
        tiled_apply(torch.rand(1, 3, 100, 77), lambda x: x, tile=32, overlap=8, progress=progress)
        assert progress.stages == [("tiles", 12)] and progress.step == 12
        small = RecordingProgress()
        tiled_apply(torch.rand(1, 3, 8, 8), lambda x: x, tile=32, overlap=8, progress=small, stage="upscale")
        assert small.stages == [("upscale", 1)] and small.step == 1

    def test_bad_fn_output(self):
        with pytest.raises(ValueError, match="fn: expected an output of shape"):
            tiled_apply(torch.rand(1, 3, 40, 40), lambda x: x, tile=16, overlap=4, scale=2)
        with pytest.raises(ValueError, match="fn"):
            tiled_apply(torch.rand(1, 3, 40, 40), lambda x: x[0], tile=16, overlap=4)
        with pytest.raises(ValueError, match="fn"):
            tiled_apply(torch.rand(1, 3, 8, 8), lambda x: None)

    def test_channel_count_must_not_vary(self):
        sizes = iter([3, 1] * 10)
        with pytest.raises(ValueError, match="fn"):
            tiled_apply(torch.rand(1, 3, 40, 40), lambda x: x[:, :next(sizes)], tile=16, overlap=4)

    @pytest.mark.parametrize(("kwargs", "match"), [({"tile": 0}, "tile"), ({"tile": 16, "overlap": 8}, "overlap"),
                                                   ({"scale": 0}, "scale"), ({"scale": 1.5}, "scale")])
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            tiled_apply(torch.rand(1, 3, 40, 40), lambda x: x, **kwargs)
        with pytest.raises(ValueError, match="fn"):
            tiled_apply(torch.rand(1, 3, 40, 40), "not callable")
