"""Training perceptual-loss networks: one style per network, or ×4/×8 super-resolution.

    plugin_host train perceptual --style starry.jpg --content-dir photos/ --name starry-night
    plugin_host train perceptual-sr --content-dir photos/ --scale 4 --loss feature --name my-sr-x4
    torchrun --nproc-per-node 4 -m plugin_host train perceptual ...      # several GPUs (DDP)

Style (Johnson et al. 2016): feature reconstruction loss at ``content_layer`` against the
input photo, Gram style loss at ``style_layers`` against the style image, total variation.
Super-resolution: the low-resolution input is the high-resolution crop blurred (σ = 1) and
bicubic-downsampled; the loss is the feature loss at relu2_2, or the pixel MSE.
``OUT.ckpt`` holds the full state for exact resume; ``OUT`` the fp16 model with its metadata and
``OUT.json`` its card; ``OUT.log.jsonl`` the losses.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from plugin_host.sdk import (ImageFolder, ParameterError, Params, RunContext, TrainingRun, content_loss,
                             export_model, gram_matrix, gram_style_loss, load_image, load_model_export,
                             resize_max_side, shift_equivariance_loss, to_pil, total_variation_loss, user_model_path,
                             write_card)

from .degrade import degrade
from .net import SuperResolutionNet, TransformerNet, apply_net
from .schema import SR_KIND, STYLE_KIND


_MEAN_RGB = (0.485, 0.456, 0.406)  # ImageNet's mean colour


def _output_path(params: Params, default_name: str) -> tuple[Path, str]:
    name = params.name or default_name
    if params.out is not None:
        return Path(params.out), name
    return user_model_path(name), name  # refuses names that would leave the folder


def _thumbnail(image: torch.Tensor, side: int = 96) -> str:
    buffer = io.BytesIO()
    to_pil(resize_max_side(image.cpu(), side)).save(buffer, "JPEG", quality=85)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _loop(run: TrainingRun, params: Params, net: torch.nn.Module, card: Mapping[str, Any],
          loss_fn: Callable[[torch.nn.Module, torch.Tensor, int], tuple[torch.Tensor, dict[str, torch.Tensor], list]],
          stream: int) -> Path:
    """What style and super-resolution training share: Adam on ``net``, one photo stream, the card."""
    net = net.to(run.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=params.learning_rate)
    run.track(models={"net": net}, optimizers={"adam": optimizer})
    model = run.ddp(net)
    photos = run.batches(ImageFolder(params.content_dir, params.crop, params.resize_short or None),
                         params.batch_size, stream)
    run.metadata = {key: value for key, value in card.items() if key != "thumbnail"}
    shown: list[torch.Tensor] = []

    def step(index: int) -> dict[str, float]:
        batch = next(photos).to(run.device)
        loss, parts, preview = loss_fn(model, batch, index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        shown[:] = [p.detach().clamp(0, 1)[:4] for p in preview]
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}}

    def export(steps: int) -> None:
        export_model(run.out, net, {**run.metadata, "steps": steps})
        write_card(run.out, {**card, "steps": steps})

    return run.train(step, export=export, preview=lambda index: shown)


def train_style(params: Params, ctx: RunContext) -> Path:
    style_file = Path(params.style)
    out, name = _output_path(params, style_file.stem.replace("_", "-").lower())
    with TrainingRun(ctx, out, params, label=f"train {name}") as run:
        return _loop(run, params, *_style_task(params, run.ctx, style_file, name), stream=0)


def _style_task(params: Params, ctx: RunContext, style_file: Path, name: str) -> tuple[torch.nn.Module, dict, Callable]:
    """The style network, its card and its loss (Johnson et al.): content, Gram style and TV."""
    style = resize_max_side(load_image(style_file).rgb, params.style_size).to(ctx.device)
    layers = tuple(dict.fromkeys((params.content_layer, *params.style_layers)))
    encoder = ctx.load_encoder(params.encoder, layers)
    with torch.no_grad():
        style_features = encoder(style)
        style_grams = {layer: gram_matrix(style_features[layer]) for layer in params.style_layers}
    net = TransformerNet(norm=params.norm, upsample=params.upsample, width=params.width,
                         downsample=params.downsample)
    if params.start_from:
        load_starting_weights(net, params.start_from, ctx)
    else:
        with torch.no_grad():
            # Start from a mid-grey picture rather than black: VGG's ReLUs are mostly off on black, so the
            # content loss has little gradient and the first few hundred steps would learn only colour.
            net.deconv3.conv2d.bias.copy_(torch.tensor(_MEAN_RGB) * 255.0)
    card = {"name": name, "model_kind": STYLE_KIND, "architecture": "johnson-transformer", "kind": "style",
            **net.config, "encoder": params.encoder, "style_name": style_file.stem,
            "thumbnail": _thumbnail(style), "description": f"fast style '{name}' trained on {style_file.name}",
            "content_layer": params.content_layer, "style_layers": list(params.style_layers),
            "weights": [params.content_weight, params.style_weight, params.tv_weight], "crop": params.crop,
            "shift_weight": params.shift_weight, "shift_start": params.shift_start,
            "start_from": params.start_from or None}

    def loss_fn(model, photos, index):
        output = _stylise(model, photos, ctx)
        features = encoder(output)
        with torch.no_grad():
            target = encoder(photos)[params.content_layer]
        loss_c = content_loss(features[params.content_layer], target)
        loss_s = sum(gram_style_loss(features[layer], style_grams[layer]) for layer in params.style_layers)
        loss_tv = total_variation_loss(output)
        loss = params.content_weight * loss_c + params.style_weight * loss_s + params.tv_weight * loss_tv
        parts = {"content": loss_c, "style": loss_s, "tv": loss_tv}
        if params.shift_weight and index >= params.shift_start:
            parts["shift"] = shift_equivariance_loss(lambda x: _stylise(model, x, ctx), photos, output)
            loss = loss + params.shift_weight * parts["shift"]
        return loss, parts, [photos, output]

    return net, card, loss_fn


def _stylise(model: torch.nn.Module, photos: torch.Tensor, ctx: RunContext) -> torch.Tensor:
    with ctx.autocast():
        return apply_net(model, photos, clamp=False).to(ctx.dtype)


def load_starting_weights(net: TransformerNet, name: str, ctx: RunContext) -> None:
    """Copy the weights of ``name`` (an installed style model or a model file) into ``net``."""
    path = ctx.weights.path(name) if name in ctx.registry.weights else Path(name)
    if not path.is_file():
        raise ParameterError("start_from", f"{name!r} is neither an installed style model nor a file",
                             hint="`plugin_host weights list` shows the installed models")
    state, metadata = load_model_export(path, "a perceptual style network", "give a model `train perceptual` wrote")
    try:
        net.load_state_dict({key: value.float() for key, value in state.items()})
    except RuntimeError:
        shape = {key: metadata.get(key) for key in ("norm", "width", "upsample")}
        raise ParameterError("start_from", f"{name!r} is a network of another shape ({shape})",
                             hint="train with its --norm and --width (and transposed upsampling only from "
                                  "transposed)") from None


def train_sr(params: Params, ctx: RunContext) -> Path:
    factor = int(params.scale)
    if params.crop % factor:
        raise ParameterError("crop", f"{params.crop} is not a multiple of the scale {factor}",
                             hint=f"use a crop such as {params.crop - params.crop % factor}")
    out, name = _output_path(params, f"perceptual-sr-x{factor}-{params.loss}")
    with TrainingRun(ctx, out, params, label=f"train {name}") as run:
        return _loop(run, params, *_sr_task(params, run.ctx, factor, name), stream=7)


def _sr_task(params: Params, ctx: RunContext, factor: int, name: str) -> tuple[torch.nn.Module, dict, Callable]:
    """The ×``factor`` network, its card and its loss: feature (relu2_2) or pixel MSE on degraded crops."""
    encoder = ctx.load_encoder(params.encoder, (params.content_layer,)) if params.loss == "feature" else None
    net = SuperResolutionNet(scale=factor)
    card = {"name": name, "model_kind": SR_KIND, "architecture": "johnson-sr", "kind": "sr", **net.config,
            "loss": params.loss, "encoder": params.encoder if encoder is not None else None,
            "content_layer": params.content_layer if encoder is not None else None,
            "blur_sigma": params.blur_sigma, "crop": params.crop,
            "description": f"×{factor} super-resolution, {params.loss} loss"}

    def loss_fn(model, photos, index):  # the same loss at every step
        low = degrade(photos, factor, params.blur_sigma)
        with ctx.autocast():
            output = apply_net(model, low, clamp=False).to(ctx.dtype)
        if encoder is None:
            loss = F.mse_loss(output, photos)
            parts = {"pixel": loss}
        else:
            with torch.no_grad():
                target = encoder(photos)[params.content_layer]
            loss_f = content_loss(encoder(output)[params.content_layer], target)
            loss_tv = total_variation_loss(output)
            loss = loss_f + params.tv_weight * loss_tv
            parts = {"feature": loss_f, "tv": loss_tv, "pixel": F.mse_loss(output.detach(), photos)}
        upscaled = F.interpolate(low, scale_factor=factor, mode="nearest")
        return loss, parts, [upscaled, output, photos]

    return net, card, loss_fn


__all__ = ["train_style", "train_sr"]
