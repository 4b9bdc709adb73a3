"""Gatys et al., "Image Style Transfer Using Convolutional Neural Networks" (CVPR 2016).

The picture itself is the variable: starting from the content (or noise, the style, a file),
L-BFGS or Adam changes its pixels so that its encoder activations match the content image
at the content layers and its Gram matrices match the style images' at the style layers.
With ``levels > 1`` the optimisation runs coarse to fine, each level starting from the
upsampled result of the previous one (fewer steps are needed at the expensive full size).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from plugin_host.sdk import (Inputs, LBFGS, Params, RunContext, content_loss, gram_matrix, gram_style_loss,
                             large_blocks_mapped, load_image, match_color_statistics, pad_to_min_side,
                             preserve_luminance, resize_max_side, resize_to, total_variation_loss)

ADAM_LEARNING_RATE = 0.02
LBFGS_HISTORY = 10  # two image-sized float32 tensors per pair: 60 MiB at 512² (scipy L-BFGS-B also keeps 10)
MIN_SIDE = 16  # four 2x poolings before relu5_1: smaller pictures are padded to this and cropped back


@dataclass
class Targets:
    content: dict[str, torch.Tensor]
    grams: dict[str, torch.Tensor]


def run(inputs: Inputs, params: Params, ctx: RunContext) -> torch.Tensor:
    original = resize_max_side(inputs["content"], params.max_size)
    content, crop_back = pad_to_min_side(original, MIN_SIDE)
    styles = list(inputs["style"])
    if params.preserve_colors == "histogram":
        # Recolour the styles to the content's palette first (Gatys et al. 2017, colour matching).
        styles = [match_color_statistics(style, content) for style in styles]
    encoder = ctx.load_encoder(params.encoder, params.content_layers + params.style_layers, params.pooling,
                               compute_dtype_features=True)

    sizes = level_sizes(content.shape[-2:], params.levels)
    image = initial_image(params, content, styles[0], sizes[0], ctx)
    # Low memory: the max-pools recompute their indices in backward, and freed activations go back to
    # the system between steps instead of fragmenting the heap around the L-BFGS history (100–200 MiB
    # less at 512²); both cost time per step (benchmarks/README.md), so only where memory is short.
    # Otherwise the pools keep their indices and every step reuses the heap pages of the last one
    # (the host's memory policy, RunContext.memory_policy, keeps them in the heap for every method).
    fast = ctx.spend_memory()
    encoder.keep_pool_indices(fast)
    if ctx.device.type == "cpu":
        # float32 steps are 6 % faster with channels-last activations (oneDNN; the weights' layout decides
        # theirs; benchmarks/README.md). bf16 networks are channels-last already; the image's gradient keeps its layout.
        encoder.to(memory_format=torch.channels_last)
    with large_blocks_mapped() if ctx.device.type == "cpu" and not fast else nullcontext():
        for level, size in enumerate(sizes):
            last = level == len(sizes) - 1
            level_content = resize_to(content, size) if size != tuple(content.shape[-2:]) else content
            targets = compute_targets(encoder, level_content, styles, inputs.blend_weights("style"), params)
            image = resize_to(image, size) if tuple(image.shape[-2:]) != size else image
            steps = params.iterations if last else params.level_iterations
            image = optimise(image, encoder, targets, params, ctx, steps, f"level {level + 1}/{len(sizes)}")

    image = crop_back(image)
    if params.preserve_colors == "luminance":
        image = preserve_luminance(image, original)
    return image.clamp(0, 1)


def level_sizes(size: torch.Size, levels: int) -> list[tuple[int, int]]:
    """Sizes from coarsest to the full ``size``, halving per level (never below 16 px)."""
    height, width = int(size[0]), int(size[1])
    sizes = [(max(16, round(height / 2 ** k)), max(16, round(width / 2 ** k))) for k in range(levels)]
    return sorted(set(sizes))


def initial_image(params: Params, content: torch.Tensor, style: torch.Tensor, size: tuple[int, int],
                  ctx: RunContext) -> torch.Tensor:
    if params.init == "noise":
        noise = torch.rand((1, 3, *size), generator=ctx.generator())
        return noise.to(device=content.device, dtype=content.dtype)
    if params.init == "style":
        return resize_to(style, size)
    if params.init == "file":
        start = load_image(params.init_file).rgb.to(device=content.device, dtype=content.dtype)
        return resize_to(start, size)
    return resize_to(content, size)


def compute_targets(encoder, content: torch.Tensor, styles: list[torch.Tensor], blend: tuple[float, ...],
                    params: Params) -> Targets:
    """Content activations and blended style Grams, computed once per level."""
    with torch.no_grad():
        content_features = encoder(content)
        grams: dict[str, torch.Tensor] = {}
        long_side = round(max(content.shape[-2:]) * params.style_scale)
        for style, weight in zip(styles, blend):
            features = encoder(resize_long_side(style, long_side))
            for layer in params.style_layers:
                grams[layer] = grams.get(layer, 0) + weight * gram_matrix(features[layer])
    return Targets({layer: content_features[layer] for layer in params.content_layers}, grams)


def resize_long_side(image: torch.Tensor, long_side: int) -> torch.Tensor:
    """Scale up or down so the longer side is ``long_side`` pixels."""
    height, width = image.shape[-2:]
    factor = long_side / max(height, width)
    return resize_to(image, (max(16, round(height * factor)), max(16, round(width * factor))))


def total_loss(image: torch.Tensor, encoder, targets: Targets, params: Params) -> tuple[torch.Tensor, dict]:
    c_weights = dict(zip(params.content_layers,
                         params.content_layer_weights or (1.0,) * len(params.content_layers)))
    s_weights = dict(zip(params.style_layers,
                         params.style_layer_weights or (1.0 / len(params.style_layers),) * len(params.style_layers)))
    c_terms: list[torch.Tensor] = []
    s_terms: list[torch.Tensor] = []

    def losses_at(layer: str, features: torch.Tensor) -> None:
        # Each layer's losses are built as soon as it is computed (VGGEncoder's on_layer), so backward
        # takes their gradients when it reaches the layer instead of holding them from its start.
        if layer in c_weights:
            c_terms.append(c_weights[layer] * content_loss(features, targets.content[layer]))
        if layer in s_weights:
            s_terms.append(s_weights[layer] * gram_style_loss(features, targets.grams[layer]))

    encoder(image, on_layer=losses_at)
    c_loss, s_loss = sum(c_terms), sum(s_terms)
    tv = total_variation_loss(image)
    loss = params.content_weight * c_loss + params.style_weight * s_loss + params.tv_weight * tv
    return loss, {"content": float(c_loss.detach()), "style": float(s_loss.detach())}


def optimise(image: torch.Tensor, encoder, targets: Targets, params: Params, ctx: RunContext, steps: int,
             stage: str) -> torch.Tensor:
    # L-BFGS flattens the gradient with view(): a 1x1 image upsampled comes out channels-last and refuses it
    image = image.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
    if params.optimizer == "lbfgs":
        optimizer = LBFGS([image], lr=params.learning_rate or 1.0, max_iter=1, history_size=LBFGS_HISTORY)
    else:
        optimizer = torch.optim.Adam([image], lr=params.learning_rate or ADAM_LEARNING_RATE)
    ctx.progress.stage(stage, total=steps)
    last: dict = {}

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss, parts = total_loss(image, encoder, targets, params)
        loss.backward()
        last.update(parts, loss=float(loss.detach()))
        return loss

    for step in range(1, steps + 1):
        ctx.cancel.raise_if_cancelled()
        optimizer.step(closure)
        with torch.no_grad():
            image.clamp_(0, 1)
        ctx.progress.advance(1, loss=last.get("loss"))
        if params.save_every and step % params.save_every == 0:
            ctx.save_preview(image, step)
    return image.detach()
