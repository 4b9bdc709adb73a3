"""Device selection."""
from __future__ import annotations

import importlib
import sys

import pytest
import torch

from plugin_host.devices import select_device
from plugin_host.errors import PluginHostError


def test_unknown_device_names_the_choices():
    with pytest.raises(PluginHostError, match="unknown device 'gpu'") as err:
        select_device("gpu")
    assert "auto, cpu, cuda, mps" in err.value.hint


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_without_a_gpu_auto_is_cpu_cuda_is_a_clear_error_and_triton_is_not_loaded(monkeypatch):
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    assert select_device("auto") == torch.device("cpu")
    with pytest.raises(PluginHostError, match="no CUDA GPU"):
        select_device("cuda")
    # torch.optim imports torch._dynamo, which would import Triton (~80 MiB) for nothing.
    with pytest.raises(ImportError):
        importlib.import_module("triton")
