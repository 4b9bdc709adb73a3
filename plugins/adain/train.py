"""Train an AdaIN decoder for any registered VGG encoder.

    plugin_host train adain --content-dir photos/ --style-dir paintings/ --out decoder.pth
    torchrun --nproc-per-node 4 -m plugin_host train adain ...      # several GPUs (DDP)

Loss (Huang & Belongie 2017): the decoded image, encoded again, should have the AdaIN target
as its relu4_1 features (content loss) and the style's per-channel mean/std at relu1_1 …
relu4_1 (style loss, weight λ). The paper's encoder is normalised (every channel's mean
activation is one); with ``normalize_features`` (default) the losses see any other encoder's features
divided by per-channel means measured on the training images first, so λ means what it means in the paper
and no layer or channel swamps the others. With ``identity_weight`` > 0 the decoder must also give back the
content and the style photos from their own relu4_1 features (a pixel MSE, the identity loss of
Park & Lee, SANet, CVPR 2019), meant to keep alpha = 0 faithful and the content's structure clean; it
makes a step about 1.7x as expensive. Adam with lr / (1 + decay·step). ``OUT.ckpt`` holds the full
state for exact resume; ``OUT`` is the fp16 decoder with its metadata, ``OUT.json`` its card; ``OUT.log.jsonl`` the losses.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from plugin_host.sdk import (ImageFolder, JsonlLog, Params, RunContext, channel_scales, content_loss, export_model,
                             infinite_batches, init_distributed, load_checkpoint, mean_std, mean_std_style_loss,
                             normalise, restore, run_steps, save_checkpoint, save_grid, wrap_ddp, write_card)

from .models import load_encoder
from .schema import DECODER_KIND
from .net import ENCODER_LAYERS, Decoder, adain, encode


def train(params: Params, ctx: RunContext) -> Path:
    dist = init_distributed(device_type=ctx.device.type)
    if dist.is_distributed:
        ctx.device = dist.device  # one GPU per process under torchrun
    device = ctx.device
    torch.manual_seed(ctx.seed if ctx.seed is not None else 0)
    encoder_entry = ctx.registry.weights[params.encoder]
    encoder = load_encoder(ctx, params.encoder)
    decoder = Decoder(encoder_entry.architecture, width=params.width).to(device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=params.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + params.lr_decay * step))

    out = Path(params.out)
    checkpoint_path = out.with_name(out.name + ".ckpt")
    start = 0
    if params.resume and checkpoint_path.exists():
        start = restore(load_checkpoint(checkpoint_path), {"decoder": decoder}, {"adam": optimizer},
                        {"decay": schedule})
    model = wrap_ddp(decoder, dist)
    seed = ctx.seed if ctx.seed is not None else 0
    photos = ImageFolder(params.content_dir, params.crop, params.resize_short or None)
    paintings = ImageFolder(params.style_dir, params.crop, params.resize_short or None)
    contents = infinite_batches(photos, params.batch_size, seed, start_step=start, rank=dist.rank,
                                world_size=dist.world_size, num_workers=params.workers)
    styles = infinite_batches(paintings, params.batch_size, seed + 1, start_step=start, rank=dist.rank,
                              world_size=dist.world_size, num_workers=params.workers)
    scales = measure_scales(encoder, (photos, paintings), params.batch_size, seed) if params.normalize_features else {}
    log = JsonlLog(out.with_name(out.name + ".log.jsonl"), resume_step=start) if dist.is_main else None
    metadata = {"method": "adain", "encoder": params.encoder, "architecture": encoder_entry.architecture,
                "width": params.width, "crop": params.crop, "style_weight": params.style_weight,
                "identity_weight": params.identity_weight, "normalize_features": params.normalize_features}

    def step(index: int) -> dict[str, float]:
        content = next(contents).to(device)
        style = next(styles).to(device)
        with torch.no_grad():
            content_features = encode(encoder, content)
            style_features = encode(encoder, style)
            target = adain(content_features["relu4_1"], *mean_std(style_features["relu4_1"]))
            decoder_input = target
            if params.identity_weight:  # one decoder call for the stylised and the identity images
                decoder_input = torch.cat([target, content_features["relu4_1"], style_features["relu4_1"]])
        with ctx.autocast():
            decoded = model(decoder_input).to(ctx.dtype)
        image = decoded[: len(target)]
        features = normalise(encode(encoder, image), scales)
        style_targets = normalise(style_features, scales)
        loss_c = content_loss(features["relu4_1"], normalise({"relu4_1": target}, scales)["relu4_1"])
        loss_s = sum(mean_std_style_loss(features[layer], *mean_std(style_targets[layer]))
                     for layer in ENCODER_LAYERS)
        loss = loss_c + params.style_weight * loss_s
        parts = {}
        if params.identity_weight:
            loss_id = F.mse_loss(decoded[len(target):], torch.cat([content, style]))
            loss = loss + params.identity_weight * loss_id
            parts["identity"] = float(loss_id.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if dist.is_main and params.preview_every and (index + 1) % params.preview_every == 0:
            grid = out.with_name(f"{out.stem}-preview-{index + 1:07d}.png")
            save_grid(grid, [content[:4], style[:4], image.detach().clamp(0, 1)[:4]], nrow=min(4, len(content)))
            ctx.progress.preview(str(grid))
        losses = dist.average({"loss": float(loss.detach()), "content": float(loss_c.detach()),
                               "style": float(loss_s.detach()), **parts})
        return {**losses, "lr": schedule.get_last_lr()[0]}

    def save(at_step: int) -> None:
        if dist.is_main:
            save_checkpoint(checkpoint_path, models={"decoder": decoder}, optimizers={"adam": optimizer},
                            schedulers={"decay": schedule}, step=at_step, metadata=metadata)
            export_model(out, decoder, {**metadata, "steps": at_step})
            write_card(out, {"name": out.stem, "model_kind": DECODER_KIND, **metadata, "steps": at_step,
                             "input_convention": encoder_entry.input_convention,
                             "description": f"AdaIN decoder for {params.encoder}, {at_step} steps"})

    # A resumed run reports the steps left, so its ETA is not skewed by steps done earlier.
    ctx.progress.stage("train adain" + (f" from step {start}" if start else ""), total=params.iterations - start)
    try:
        run_steps(params.iterations, start, step, progress=ctx.progress, cancel=ctx.cancel, log=log,
                  checkpoint_every=params.checkpoint_every, save_fn=save, log_every=params.log_every)
    finally:
        dist.cleanup()
    return out


#: Images (from each of the content and style folders) the per-channel feature scales are measured on.
SCALE_IMAGES = 32


def measure_scales(encoder, folders: tuple[ImageFolder, ...], batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    """Per-channel mean activations over the first crops of a separate, seeded stream of each folder.

    The same on every rank and on every resume, so they need not be saved.
    """
    batches = []
    for offset, folder in enumerate(folders, start=2):
        stream = infinite_batches(folder, batch_size, seed + offset, rank=0, world_size=1)
        batches += [next(stream) for _ in range(-(-SCALE_IMAGES // batch_size))]
    device = next(encoder.parameters()).device
    return channel_scales(lambda batch: encode(encoder, batch.to(device)), batches)
