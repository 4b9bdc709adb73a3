"""Loading Gated-GAN generators once per process (through the run context's cache).

A model file is our export (``{"state_dict": fp16 tensors, "metadata": {...}}``, the metadata giving the
network's shape and its style names) or a generator checkpoint of the PyTorch port as it is (a plain
state dict; its style names come from its card, else the port's four collections).
"""
from __future__ import annotations

from typing import Any

import torch

from plugin_host.sdk import RunContext, WeightsError, load_model_export, user_models_dir

from .net import Generator, load_generator, style_names
from .schema import MODEL_KIND


def read_model_file(path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    return load_model_export(path, "a Gated-GAN model file",
                             hint="expected a plugin_host export or a generator state dict of the PyTorch port")


def no_model_error(name: str) -> WeightsError:
    """The one-line error of a run that finds no model ``name``: how to train one, or where to put one."""
    return WeightsError(
        f"no Gated-GAN model {name!r} is installed: train one with `plugin_host train gated-gan --content PHOTOS "
        f"--styles COLLECTIONS --name {name}` (see docs/gated-gan.md), or put {name}.pth and its card "
        f"{name}.pth.json into {user_models_dir()}")


def load_model(ctx: RunContext, name: str) -> tuple[Generator, tuple[str, ...]]:
    """The generator registered as ``name`` on the run's device, and its style names in gate order."""
    entry = ctx.registry.weights.get(name)
    if entry is None or entry.model_kind != MODEL_KIND:
        raise no_model_error(name)

    def create() -> tuple[Generator, tuple[str, ...]]:
        state, metadata = read_model_file(ctx.weights.path(name, progress=ctx.progress, cancel=ctx.cancel))
        net = load_generator(state, metadata or None)
        card = entry.extra.get("card") or {}
        styles = style_names(metadata or card, net.n_styles)
        return ctx.prepare(net), styles

    return ctx.cache.get(("gated-gan", name, *ctx.placement), create)
