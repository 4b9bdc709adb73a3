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

from plugin_host.sdk import (ImageFolder, JsonlLog, Params, RunContext, content_loss, export_model, gram_matrix,
                             gram_style_loss, infinite_batches, init_distributed, load_checkpoint, load_image,
                             resize_max_side, restore, run_steps, save_checkpoint, save_grid, to_pil,
                             total_variation_loss, user_model_path, wrap_ddp, write_card)

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


def _loop(ctx: RunContext, params: Params, net: torch.nn.Module, out: Path, card: Mapping[str, Any],
          loss_fn: Callable[[torch.nn.Module, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor], list]],
          seed_offset: int) -> Path:
    """The shared loop: DDP, Adam, data stream, resume, logging, previews, checkpoints, export."""
    dist = init_distributed(device_type=ctx.device.type)
    if dist.is_distributed:
        ctx.device = dist.device
    net = net.to(ctx.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=params.learning_rate)
    checkpoint_path = out.with_name(out.name + ".ckpt")
    start = 0
    if params.resume and checkpoint_path.exists():
        start = restore(load_checkpoint(checkpoint_path), {"net": net}, {"adam": optimizer})
    model = wrap_ddp(net, dist)
    seed = (ctx.seed if ctx.seed is not None else 0) + seed_offset
    photos = infinite_batches(ImageFolder(params.content_dir, params.crop, params.resize_short or None),
                              params.batch_size, seed, start_step=start, rank=dist.rank,
                              world_size=dist.world_size, num_workers=params.workers)
    log = JsonlLog(out.with_name(out.name + ".log.jsonl"), resume_step=start) if dist.is_main else None
    metadata = {key: value for key, value in card.items() if key != "thumbnail"}

    def step(index: int) -> dict[str, float]:
        batch = next(photos).to(ctx.device)
        loss, parts, preview = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if dist.is_main and params.preview_every and (index + 1) % params.preview_every == 0:
            grid = out.with_name(f"{out.stem}-preview-{index + 1:07d}.png")
            save_grid(grid, [p.detach().clamp(0, 1)[:4] for p in preview], nrow=min(4, len(batch)))
            ctx.progress.preview(str(grid))
        return dist.average({"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}})

    def save(at_step: int) -> None:
        if dist.is_main:
            save_checkpoint(checkpoint_path, models={"net": net}, optimizers={"adam": optimizer}, step=at_step,
                            metadata=metadata)
            export_model(out, net, {**metadata, "steps": at_step})
            write_card(out, {**card, "steps": at_step})

    ctx.progress.stage(f"train {card['name']}" + (f" from step {start}" if start else ""),
                       total=params.iterations - start)
    try:
        run_steps(params.iterations, start, step, progress=ctx.progress, cancel=ctx.cancel, log=log,
                  checkpoint_every=params.checkpoint_every, save_fn=save, log_every=params.log_every)
    finally:
        dist.cleanup()
    return out


def train_style(params: Params, ctx: RunContext) -> Path:
    style_file = Path(params.style)
    out, name = _output_path(params, style_file.stem.replace("_", "-").lower())
    torch.manual_seed(ctx.seed if ctx.seed is not None else 0)
    style = resize_max_side(load_image(style_file).rgb, params.style_size).to(ctx.device)
    layers = tuple(dict.fromkeys((params.content_layer, *params.style_layers)))
    encoder = ctx.load_encoder(params.encoder, layers)
    with torch.no_grad():
        style_features = encoder(style)
        style_grams = {layer: gram_matrix(style_features[layer]) for layer in params.style_layers}
    net = TransformerNet(norm=params.norm, upsample=params.upsample, width=params.width)
    with torch.no_grad():
        # Start from a mid-grey picture rather than black: VGG's ReLUs are mostly off on black, so the
        # content loss has little gradient and the first few hundred steps would learn only colour.
        net.deconv3.conv2d.bias.copy_(torch.tensor(_MEAN_RGB) * 255.0)
    card = {"name": name, "model_kind": STYLE_KIND, "architecture": "johnson-transformer", "kind": "style",
            **net.config, "encoder": params.encoder, "style_name": style_file.stem,
            "thumbnail": _thumbnail(style), "description": f"fast style '{name}' trained on {style_file.name}",
            "content_layer": params.content_layer, "style_layers": list(params.style_layers),
            "weights": [params.content_weight, params.style_weight, params.tv_weight], "crop": params.crop}

    def loss_fn(model, photos):
        with ctx.autocast():
            output = apply_net(model, photos, clamp=False).to(ctx.dtype)
        features = encoder(output)
        with torch.no_grad():
            target = encoder(photos)[params.content_layer]
        loss_c = content_loss(features[params.content_layer], target)
        loss_s = sum(gram_style_loss(features[layer], style_grams[layer]) for layer in params.style_layers)
        loss_tv = total_variation_loss(output)
        loss = params.content_weight * loss_c + params.style_weight * loss_s + params.tv_weight * loss_tv
        return loss, {"content": loss_c, "style": loss_s, "tv": loss_tv}, [photos, output]

    return _loop(ctx, params, net, out, card, loss_fn, seed_offset=0)


def train_sr(params: Params, ctx: RunContext) -> Path:
    factor = int(params.scale)
    if params.crop % factor:
        from plugin_host.sdk import ParameterError

        raise ParameterError("crop", f"{params.crop} is not a multiple of the scale {factor}",
                             hint=f"use a crop such as {params.crop - params.crop % factor}")
    out, name = _output_path(params, f"perceptual-sr-x{factor}-{params.loss}")
    torch.manual_seed(ctx.seed if ctx.seed is not None else 0)
    encoder = ctx.load_encoder(params.encoder, (params.content_layer,)) if params.loss == "feature" else None
    net = SuperResolutionNet(scale=factor)
    card = {"name": name, "model_kind": SR_KIND, "architecture": "johnson-sr", "kind": "sr", **net.config,
            "loss": params.loss, "encoder": params.encoder if encoder is not None else None,
            "content_layer": params.content_layer if encoder is not None else None,
            "blur_sigma": params.blur_sigma, "crop": params.crop,
            "description": f"×{factor} super-resolution, {params.loss} loss"}

    def loss_fn(model, photos):
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

    return _loop(ctx, params, net, out, card, loss_fn, seed_offset=7)


__all__ = ["train_style", "train_sr"]
