import pytest
import torch


def _assert_close(actual: torch.Tensor, expected, atol: float = 1e-5, rtol: float = 1.3e-6) -> None:
    expected = torch.as_tensor(expected, dtype=actual.dtype, device=actual.device)
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    excess = (actual - expected).abs() - (atol + rtol * expected.abs())
    assert not excess.isnan().any(), "NaN where a number was expected"
    assert excess.max().item() <= 0, (f"max |difference| {(actual - expected).abs().max().item():.3g} "
                                      f"exceeds atol={atol:g}, rtol={rtol:g}")


@pytest.fixture
def assert_close():
    """``torch.testing.assert_close`` (shapes and values) without its first call's cost: in torch
    2.14 that imports torch.distributed, about 1.5 s, a sixth of this suite's budget."""
    return _assert_close
