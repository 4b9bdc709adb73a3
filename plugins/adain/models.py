"""Loading AdaIN's encoder/decoder pair once per process (through the run context's cache).

A decoder file is either our export (``{"state_dict": fp16 tensors, "metadata": {...}}``,
metadata naming the encoder) or the published plain ``decoder.pth``; the weights entry's
``extra["encoder"]`` names the encoder for the latter.
"""
from __future__ import annotations

from typing import Any

import torch

from plugin_host.sdk import RunContext, WeightsError, load_state_dict, load_model_export

from .net import ENCODER_LAYERS, load_adain_encoder, load_decoder


def read_decoder_file(path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    return load_model_export(path, "an AdaIN decoder file",
                             hint="expected a decoder state dict, or a plugin_host export with state_dict and metadata")


def check_decoder_file(path) -> None:
    """WeightsError unless ``path`` holds an AdaIN decoder (the check of a hand-imported decoder file)."""
    state, metadata = read_decoder_file(path)
    load_decoder({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, metadata or None)


def load_encoder(ctx: RunContext, name: str) -> torch.nn.Module:
    """Any registered VGG (features up to relu4_1), or the published normalised VGG19."""
    entry = ctx.registry.weights.get(name)
    if entry is None:
        raise WeightsError(f"the decoder needs encoder {name!r}, which no plugin registers",
                           hint="see `plugin_host weights list`")
    if entry.architecture == "adain-vgg19":
        def create() -> torch.nn.Module:
            state = load_state_dict(ctx.weights.path(name, progress=ctx.progress, cancel=ctx.cancel))
            return ctx.prepare(load_adain_encoder(state))
        return ctx.cache.get(("adain-encoder", name, *ctx.placement), create)
    return ctx.load_encoder(name, ENCODER_LAYERS)


def load_models(ctx: RunContext, decoder_name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    entry = ctx.registry.weights[decoder_name]

    def create() -> tuple[torch.nn.Module, torch.nn.Module]:
        state, metadata = read_decoder_file(ctx.weights.path(decoder_name, progress=ctx.progress,
                                                             cancel=ctx.cancel))
        encoder_name = metadata.get("encoder") or entry.extra.get("encoder")
        if not encoder_name:
            raise WeightsError(f"decoder {decoder_name!r} does not say which encoder it was trained for",
                               hint="its weights entry needs extra={'encoder': NAME}")
        encoder = load_encoder(ctx, encoder_name)
        state = {k: v.float() for k, v in state.items()}
        decoder = ctx.prepare(load_decoder(state, metadata or None).eval())
        decoder.requires_grad_(False)
        if ctx.device.type == "cpu":
            # oneDNN's float32 convolutions run 15-20 % faster on channels-last tensors (encoder and decoder
            # at 512², benchmarks/README.md); the weights' layout decides the activations'. bf16 is already so.
            encoder.to(memory_format=torch.channels_last)
            decoder.to(memory_format=torch.channels_last)
        return encoder, decoder

    return ctx.cache.get(("adain", decoder_name, *ctx.placement), create)
