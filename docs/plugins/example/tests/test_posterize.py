"""Tests of the posterize example: the host's conformance checks, then what the method promises."""
import torch

import plugin_host_posterize
from plugin_host.sdk import MethodConformance, Session, load_registry


def posterize_registry():
    # Only this plugin, found without installing it. Once installed (`pip install -e .`),
    # MethodConformance finds it among the installed plugins and this override is optional.
    return load_registry(entry_points=[], extra_plugins=[("posterize", plugin_host_posterize)])


class TestPosterizeConformance(MethodConformance):
    method_name = "posterize"
    params = {"levels": 3, "smooth": True}

    def registry(self):
        return posterize_registry()


def test_two_levels_leave_at_most_two_values_per_channel():
    session = Session(registry=posterize_registry(), device="cpu", seed=0)
    image = torch.rand((1, 3, 30, 40), generator=torch.Generator().manual_seed(0))
    out = session.run("posterize", {"content": image}, {"levels": 2}).rgb
    assert out.shape == image.shape
    for channel in out[0]:
        assert len(torch.unique(channel)) <= 2


def test_zero_strength_returns_the_input():
    session = Session(registry=posterize_registry(), device="cpu", seed=0)
    image = torch.rand((1, 3, 30, 40), generator=torch.Generator().manual_seed(0))
    out = session.run("posterize", {"content": image}, {"strength": 0}).rgb
    assert torch.allclose(out, image)
