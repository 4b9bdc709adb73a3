"""Train an AdaIN decoder for any registered VGG encoder.

    plugin_host train adain --content-dir photos/ --style-dir paintings/ --out decoder.pth
    torchrun --nproc-per-node 4 -m plugin_host train adain ...      # several GPUs (DDP)

Two phases. First ``reconstruction_steps`` steps of reconstruction: the decoder learns to give photos and
paintings back from their own relu4_1 features (pixel MSE), which an AdaIN loss never asks of it
(docs/training-probes.md). Then the AdaIN loss (Huang & Belongie 2017): the decoded image, encoded again,
should have the AdaIN target as its relu4_1 features (content loss) and the style's per-channel mean/std at
relu1_1 … relu4_1 (style loss, weight λ). The paper's encoder is normalised (every channel's mean
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

from plugin_host.sdk import (ImageFolder, ParameterError, Params, RunContext, TrainingRun, channel_scales,
                             content_loss, export_model, infinite_batches, mean_std, mean_std_style_loss, normalise,
                             shift_equivariance_loss, write_card)

from .models import load_encoder, read_decoder_file
from .schema import DECODER_KIND
from .net import (COLOUR_CHANNELS, ENCODER_LAYERS, FEATURE_CHANNELS, Decoder, adain, decoder_input, encode,
                  load_decoder)


def train(params: Params, ctx: RunContext) -> Path:
    out = Path(params.out)
    encoder_entry = ctx.registry.weights[params.encoder]
    metadata = {"method": "adain", "encoder": params.encoder, "architecture": encoder_entry.architecture,
                "width": params.width, "crop": params.crop, "style_weight": params.style_weight,
                "identity_weight": params.identity_weight, "normalize_features": params.normalize_features,
                "reconstruction_steps": params.reconstruction_steps, "shift_weight": params.shift_weight,
                "colour_path": params.colour_path, "detail_path": params.detail_path,
                "start_from": params.start_from or None}
    with TrainingRun(ctx, out, params, label="train adain", metadata=metadata) as run:
        encoder = load_encoder(run.ctx, params.encoder)
        decoder = starting_decoder(run.ctx, params, encoder_entry.architecture).to(run.device)
        optimizer = torch.optim.Adam(decoder.parameters(), lr=params.learning_rate)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + params.lr_decay * step))
        run.track(models={"decoder": decoder}, optimizers={"adam": optimizer}, schedulers={"decay": schedule})
        model = run.ddp(decoder)
        photos = ImageFolder(params.content_dir, params.crop, params.resize_short or None)
        paintings = ImageFolder(params.style_dir, params.crop, params.resize_short or None)
        contents, styles = run.batches(photos, params.batch_size, 0), run.batches(paintings, params.batch_size, 1)
        scales = (measure_scales(encoder, (photos, paintings), params.batch_size, run.seed)
                  if params.normalize_features else {})
        shown: list[torch.Tensor] = []

        def reconstruction_losses(content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, dict, torch.Tensor]:
            """Phase 1: give the photos and paintings back from their own relu4_1 (pixel MSE). A feature MSE at
            relu1_1 … relu3_1 beside it outweighed the pixels 150 to 1 and grew row streaks within 300 steps;
            without it the decoder learns to sharpen edges (docs/training-probes.md)."""
            images = torch.cat([content, style])
            with torch.no_grad():
                given = decoder_input(encoder, decoder, images)
            with run.ctx.autocast():
                decoded = model(given).to(run.ctx.dtype)
            loss = F.mse_loss(decoded, images)
            return loss, {"pixel": float(loss.detach())}, decoded

        def adain_losses(content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, dict, torch.Tensor]:
            """Phase 2 (the paper's loss): AdaIN target at relu4_1, style mean/std at relu1_1 … relu4_1."""
            with torch.no_grad():
                content_input = decoder_input(encoder, decoder, content)
                style_input = decoder_input(encoder, decoder, style)
                style_features = encode(encoder, style)
                style_stats = mean_std(style_input)
                target = adain(content_input, *style_stats)
                given = target
                if params.identity_weight:  # one decoder call for the stylised and the identity images
                    given = torch.cat([target, content_input, style_input])
            with run.ctx.autocast():
                decoded = model(given).to(run.ctx.dtype)
            image = decoded[: len(target)]
            features = normalise(encode(encoder, image), scales)
            style_targets = normalise(style_features, scales)
            wanted = normalise({"relu4_1": target[:, :FEATURE_CHANNELS]}, scales)["relu4_1"]  # relu4_1 alone
            loss_c = content_loss(features["relu4_1"], wanted)
            loss_s = sum(mean_std_style_loss(features[layer], *mean_std(style_targets[layer]))
                         for layer in ENCODER_LAYERS)
            loss = loss_c + params.style_weight * loss_s
            parts = {"content": float(loss_c.detach()), "style": float(loss_s.detach())}
            if params.shift_weight:
                def stylise(shifted: torch.Tensor) -> torch.Tensor:
                    with torch.no_grad():
                        moved_target = adain(decoder_input(encoder, decoder, shifted), *style_stats)
                    with run.ctx.autocast():
                        return model(moved_target).to(run.ctx.dtype)
                # Borders included: with the default 16-px margin exempt, the decoder drew bright and dark
                # frames there within a few hundred steps; 100 steps with the margin at 0 took them away
                # (docs/training-probes.md).
                loss_shift = shift_equivariance_loss(stylise, content, image, margin=0)
                loss = loss + params.shift_weight * loss_shift
                parts["shift"] = float(loss_shift.detach())
            if params.identity_weight:
                loss_id = F.mse_loss(decoded[len(target):], torch.cat([content, style]))
                loss = loss + params.identity_weight * loss_id
                parts["identity"] = float(loss_id.detach())
            return loss, parts, image

        def step(index: int) -> dict[str, float]:
            content = next(contents).to(run.device)
            style = next(styles).to(run.device)
            losses = reconstruction_losses if index < params.reconstruction_steps else adain_losses
            loss, parts, image = losses(content, style)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            shown[:] = [content[:4], style[:4], image.detach().clamp(0, 1)[:4]]
            return {"loss": float(loss.detach()), **parts, "lr": schedule.get_last_lr()[0]}

        def export(steps: int) -> None:
            export_model(out, decoder, {**metadata, "steps": steps})
            write_card(out, {"name": out.stem, "model_kind": DECODER_KIND, **metadata, "steps": steps,
                             "input_convention": encoder_entry.input_convention,
                             "description": f"AdaIN decoder for {params.encoder}, {steps} steps"})

        return run.train(step, export=export, preview=lambda index: shown)


def starting_decoder(ctx: RunContext, params: Params, architecture: str) -> Decoder:
    """A random decoder, or a copy of ``start_from`` (a registered decoder's name or a file) to fine-tune."""
    decoder = Decoder(architecture, width=params.width, colour_path=params.colour_path,
                      detail_path=params.detail_path)
    if not params.start_from:
        return decoder
    name = params.start_from
    path = ctx.weights.path(name) if name in ctx.registry.weights else Path(name)
    if not path.is_file():
        raise ParameterError("start_from", f"{name!r} is neither an installed decoder nor a file",
                             hint="`plugin_host weights list` shows the installed decoders")
    state, metadata = read_decoder_file(path)
    loaded = load_decoder({key: value.float() for key, value in state.items()}, metadata or None)
    if (loaded.architecture, loaded.width) != (architecture, float(params.width)):
        raise ParameterError("start_from", f"{name!r} is a decoder for {loaded.architecture} at width "
                             f"{loaded.width:g}; this training builds {architecture} at width {params.width:g}",
                             hint="pick a decoder trained for the same encoder and --width")
    if loaded.detail_path != decoder.detail_path:
        has = "has" if loaded.detail_path else "lacks"
        raise ParameterError("start_from", f"{name!r} {has} the detail path",
                             hint="give --detail-path as the starting decoder has it, or start from another decoder")
    state = loaded.state_dict()
    if loaded.colour_path != decoder.colour_path:
        if loaded.colour_path:
            raise ParameterError("start_from", f"{name!r} is a decoder with the colour path",
                                 hint="add --colour-path, or start from a decoder without it")
        state = with_colour_path(state)
    decoder.load_state_dict(state)
    return decoder


def with_colour_path(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A relu4_1-only decoder's weights for a decoder with the colour path: its first convolution takes
    the colour channels with zero weights, and its last is zeroed, so it starts by giving back the colour
    channels' picture and learns the detail to add (its inner layers keep what they learned)."""
    state = dict(state)
    first = state["1.weight"]
    state["1.weight"] = torch.cat([first, first.new_zeros(first.shape[0], COLOUR_CHANNELS, *first.shape[2:])], 1)
    last = max((key for key in state if key.endswith(".weight")), key=lambda key: int(key.split(".")[0]))
    state[last] = torch.zeros_like(state[last])
    state[last.replace("weight", "bias")] = torch.zeros_like(state[last.replace("weight", "bias")])
    return state


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
