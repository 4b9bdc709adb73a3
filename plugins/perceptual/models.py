"""Loading perceptual-loss networks once per process (through the run context's cache).

A model file is our export (``{"state_dict": fp16 tensors, "metadata": {...}}``, the metadata
giving the network's shape) or a published pytorch/examples checkpoint (a plain state dict).
"""
from __future__ import annotations

from typing import Any

import torch

from plugin_host.sdk import RunContext, WeightsError, load_model_export

from .net import load_transformer


def read_model_file(path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    return load_model_export(path, "a perceptual-loss model file",
                             hint="expected a plugin_host export or a fast_neural_style state dict")


def load_model(ctx: RunContext, name: str, kind: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network registered as ``name`` on the run's device, and its metadata."""
    def create() -> tuple[torch.nn.Module, dict[str, Any]]:
        state, metadata = read_model_file(ctx.weights.path(name, progress=ctx.progress, cancel=ctx.cancel))
        found = metadata.get("kind", "style")
        if found != kind:
            raise WeightsError(f"model {name!r} is a {found} network, not a {kind} one",
                               hint="pick a model of the right kind; `plugin_host info METHOD` lists them")
        net = load_transformer(state, metadata or None)
        return ctx.prepare(net), metadata

    return ctx.cache.get(("perceptual", name, *ctx.placement), create)
