"""Train a StyleGAN generator on a folder of pictures (or one folder per class).

    plugin_host train stylegan --data paintings/ --resolution 64 --name my-gan
    plugin_host train stylegan --data photo=photos/,monet=monet/ --resolution 128 --name my-gan
    torchrun --nproc-per-node 2 -m plugin_host train stylegan ...           # several processes

The losses of Karras et al. 2019/2020: the non-saturating logistic loss, an R1 penalty on real images
(γ/2·‖∇D‖², applied every ``r1_every`` steps and scaled by that many: lazy regularisation, with Adam's
learning rate and β of D adjusted to the shorter effective step), style-mixing regularisation (a share
of the fakes switch to a second z's styles at a random layer). Adam β = (0, 0.99). The generator users
get is an exponential moving average of the trained one (half-life ``ema_kimg`` thousand images, ramped
up at the start), with the average style ``w_avg`` tracked as the training batches' mean w. Every image
D sees is augmented (:mod:`.augment`), real and fake, for data sets of a few hundred pictures.

Classes: batches hold the same number of pictures of every class (the classes are unbalanced: 357 photos
against 50 paintings a painter), the generator's mapping joins an embedding of the class to z and the
discriminator adds a projection of it. Under torchrun every process draws the random codes of the whole
batch and takes its share, so their fakes differ while their random states stay equal; gradients and
``w_avg`` are averaged over the processes by hand (DDP's wrapper does not take R1's second derivative).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from plugin_host.sdk import (ImageFolder, ParameterError, Params, RunContext, TrainingRun, export_model, update_ema,
                             user_model_path, write_card)

from .augment import augment
from .net import Discriminator, Generator, GeneratorConfig, widths_for
from .models import installed_generator_path, read_generator_file
from .schema import MODEL_KIND
from .snapshots import KidSnapshots

#: Fixed codes of the preview grids (and their noise is the generator's const maps).
PREVIEW_SEED = 4242
PREVIEW_PER_ROW = 8


def training_classes(params: Params) -> list[tuple[str, list[Path]]]:
    """(class name, folders) pairs; one nameless class for a single plain DIR."""
    items = [item.rpartition("=") for item in params.data]
    folders = [(name.strip(), Path(folder).expanduser()) for name, _, folder in items]
    if params.class_folders:
        if len(folders) != 1:
            raise ParameterError("class_folders", "takes exactly one --data DIR", hint="give one folder")
        root = folders[0][1]
        classes = [(sub.name, [sub]) for sub in sorted(root.iterdir()) if sub.is_dir() and not sub.name.startswith(".")]
        if not classes:
            raise ParameterError("class_folders", f"{str(root)!r} has no sub-folders to make classes of",
                                 hint="leave --class-folders out, or give a folder with one sub-folder per class")
        return classes
    if len(folders) == 1 and not folders[0][0]:
        return [("", [folders[0][1]])]
    named: dict[str, list[Path]] = {}
    for name, folder in folders:
        named.setdefault(name or folder.name, []).append(folder)
    return list(named.items())


def starting_generator(params: Params, ctx: RunContext, names: tuple[str, ...]) -> Generator:
    """The generator ``--init`` names (a file, or an installed generator), checked against the data's classes."""
    path = Path(params.init).expanduser()
    start = read_generator_file(path if path.is_file() else installed_generator_path(ctx, params.init))
    have = start.config.classes
    if bool(have) != bool(names) or not set(names) <= set(have):
        hint = (f"name some of its classes ({', '.join(have)}): --data {have[0]}=DIR" if have
                else "it has no classes: give one plain --data DIR")
        raise ParameterError("init", f"{params.init} does not have the classes --data names "
                             f"({', '.join(names) or 'none'})", hint=hint)
    return start


def _output_path(params: Params) -> tuple[Path, str]:
    if params.out is not None:
        out = Path(params.out)
        return out, params.name or out.stem
    return user_model_path(params.name), params.name


def train(params: Params, ctx: RunContext) -> Path:
    out, name = _output_path(params)
    classes = training_classes(params)
    names = tuple(c for c, _ in classes if c)
    policy = tuple(a for a in params.augment if a != "none")
    start = starting_generator(params, ctx, names) if params.init else None
    config = start.config if start is not None else GeneratorConfig(
        resolution=params.resolution, widths=widths_for(params.resolution, params.channel_base, params.channel_max),
        z_dim=params.z_dim, w_dim=params.w_dim, mapping_layers=params.mapping_layers,
        mapping_lr_mul=params.mapping_lr_mul, style_op=params.style_op, classes=names)
    # Label k of the batch's k-th class: its row in the generator's classes (fine-tuning may train a few of them).
    label_of = [config.classes.index(c) for c in names]
    resize = round(1.25 * config.resolution) if params.resize_short is None else (params.resize_short or None)
    metadata = {"method": "stylegan", "generator": config.to_json(), "batch_size": params.batch_size,
                "learning_rate": params.learning_rate, "r1_gamma": params.r1_gamma, "r1_every": params.r1_every,
                "mixing": params.mixing, "augment": list(policy), "ema_kimg": params.ema_kimg,
                "resize_short": resize or 0, "mirror": params.mirror}
    with TrainingRun(ctx, out, params, label="train stylegan", metadata=metadata) as run:
        device, world, rank = run.device, run.dist.world_size, run.dist.rank
        generator = Generator(config).to(device)
        if start is not None:  # fine-tuning: a checkpoint being resumed replaces this in run.track
            generator.load_state_dict(start.state_dict())
        discriminator = Discriminator(config.resolution, config.widths, classes=len(config.classes)).to(device)
        average = copy.deepcopy(generator).eval().requires_grad_(False)
        lazy = params.r1_every / (params.r1_every + 1)
        opt_g = torch.optim.Adam(generator.parameters(), lr=params.learning_rate, betas=(0.0, 0.99), eps=1e-8)
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=params.learning_rate * lazy,
                                 betas=(0.0, 0.99 ** lazy), eps=1e-8)
        run.track(models={"generator": generator, "discriminator": discriminator, "generator_ema": average},
                  optimizers={"generator": opt_g, "discriminator": opt_d})
        # Resuming restores Adam's saved rate too; the one asked for now wins, so a long run can go on more slowly.
        for optimizer in (opt_g, opt_d):
            for group in optimizer.param_groups:
                group["lr"] = optimizer.defaults["lr"]
        per_class = math.ceil(params.batch_size / len(classes))
        streams = [run.batches(ImageFolder(folders, config.resolution, resize), per_class, stream=k)
                   for k, (_, folders) in enumerate(classes)]
        batch = per_class * len(classes)
        labels = torch.tensor(label_of, device=device).repeat_interleave(per_class) if names else None
        warmup_steps = math.ceil(params.d_warmup * 1000 / (batch * world))
        shown: list[torch.Tensor] = []
        last_r1 = [0.0]
        snapshots = (KidSnapshots(run, classes, config.resolution, params.kid_every, params.kid_images, batch * world)
                     if params.kid_every and run.is_main else None)

        def card(kimg: float) -> dict:
            tuned = f" fine-tuned from {params.init}" if params.init else ""
            return {"name": name, "model_kind": MODEL_KIND, "resolution": config.resolution,
                    "classes": list(config.classes),
                    "description": f"StyleGAN generator, {config.resolution} px, {kimg:g} kimg{tuned}"
                                   + (f", classes {', '.join(config.classes)}" if config.classes else "")}

        def mine(tensor: torch.Tensor) -> torch.Tensor:
            """This process's share of a tensor drawn for the whole batch (every process draws it all)."""
            return tensor[rank * batch:(rank + 1) * batch].to(device)

        def fakes(with_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
            codes = mine(torch.randn(batch * world, 2, config.z_dim))
            mixing, crossover = torch.rand(()) < params.mixing, int(torch.randint(1, generator.n_latent, ()))
            with torch.set_grad_enabled(with_grad), run.ctx.autocast():
                w = generator.mapping(codes[:, 0], labels)
                w_plus = w[:, None].repeat(1, generator.n_latent, 1)
                if mixing:
                    w_plus[:, crossover:] = generator.mapping(codes[:, 1], labels)[:, None]
                noise = generator.make_noise(batch, "random", device=device)
                return generator.synthesis(w_plus, noise).float(), w.detach().float()

        def see(images: torch.Tensor) -> torch.Tensor:
            """D's logits for (augmented) pictures; in the run's precision (the R1 penalty is always float32)."""
            with run.ctx.autocast():
                return discriminator(augment(images, policy), labels).float()

        def step(index: int) -> dict[str, float]:
            reals = torch.cat([next(stream) for stream in streams]).to(device) * 2 - 1
            flips = mine(torch.rand(batch * world)) < 0.5
            if params.mirror:
                reals = torch.where(flips[:, None, None, None], reals.flip(3), reals)
            # discriminator: real high, fake low
            fake, _ = fakes(with_grad=False)
            real_logits, fake_logits = see(reals), see(fake)
            loss_d = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            _average_gradients(discriminator, world)
            opt_d.step()
            if params.r1_gamma and index % params.r1_every == 0:
                seen = augment(reals, policy).detach().requires_grad_(True)
                gradient, = torch.autograd.grad(discriminator(seen, labels).sum(), seen, create_graph=True)
                penalty = gradient.square().sum((1, 2, 3)).mean()
                opt_d.zero_grad(set_to_none=True)
                (penalty * (params.r1_gamma / 2 * params.r1_every)).backward()
                _average_gradients(discriminator, world)
                opt_d.step()
                last_r1[0] = float(penalty.detach())
            if index >= warmup_steps:  # before that D trains alone, to tell a starting generator's fakes apart
                loss_g = train_generator(index)
            else:
                loss_g = F.softplus(-fake_logits.detach()).mean()
            shown[:] = [((reals[:PREVIEW_PER_ROW] + 1) / 2).clamp(0, 1)]
            if snapshots is not None and snapshots.due(index):
                snapshots.take(index, average, metadata, card((index + 1) * batch * world / 1000))
            return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()), "r1": last_r1[0],
                    "real_logit": float(real_logits.detach().mean()), "fake_logit": float(fake_logits.detach().mean()),
                    "kimg": (index + 1) * batch * world / 1000}

        def train_generator(index: int) -> torch.Tensor:
            """One generator step (make D call its fakes real), then its average and ``w_avg``; G's loss."""
            discriminator.requires_grad_(False)
            fake, w = fakes(with_grad=True)
            loss_g = F.softplus(-see(fake)).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            _average_gradients(generator, world)
            opt_g.step()
            discriminator.requires_grad_(True)
            _track_w_avg(generator, w, labels, params.w_avg_beta, world)
            update_ema(average, generator, _ema_decay(index, batch * world, params.ema_kimg, params.ema_rampup))
            average.w_avg.copy_(generator.w_avg)
            return loss_g

        def preview(index: int) -> list[torch.Tensor]:
            return [*shown, *preview_rows(average, device)]

        def export(steps: int) -> None:
            kimg = round(steps * batch * world / 1000, 3)
            export_model(out, average, {**metadata, "steps": steps, "kimg": kimg})
            write_card(out, {**card(kimg), "steps": steps, "kimg": kimg})

        return run.train(step, export=export, preview=preview, nrow=PREVIEW_PER_ROW)


def _average_gradients(module: torch.nn.Module, world: int) -> None:
    if world <= 1:
        return
    for parameter in module.parameters():
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad /= world


def _track_w_avg(generator: Generator, w: torch.Tensor, labels: torch.Tensor | None, beta: float,
                 world: int) -> None:
    """Move ``w_avg`` toward this step's mean w (per class in the batch), averaged over the processes."""
    with torch.no_grad():
        w = w.float()
        rows = labels.unique() if labels is not None else torch.zeros(1, dtype=torch.long, device=w.device)
        means = torch.stack([w[labels == k].mean(0) for k in rows]) if labels is not None else w.mean(0, keepdim=True)
        if world > 1:
            dist.all_reduce(means)
            means /= world
        generator.w_avg[rows] = torch.lerp(means, generator.w_avg[rows], beta)


def _ema_decay(index: int, images_per_step: int, half_life_kimg: float, rampup: float) -> float:
    """Per-step decay of the averaged generator for a half-life in images (shorter early with ``rampup``)."""
    half_life = half_life_kimg * 1000
    if rampup:
        half_life = min(half_life, index * images_per_step * rampup)
    return 0.5 ** (images_per_step / half_life) if half_life > 0 else 0.0


@torch.no_grad()
def preview_rows(generator: Generator, device: torch.device) -> list[torch.Tensor]:
    """Fixed codes through the averaged generator (const noise, no truncation): a row per class, or two."""
    rows = max(1, len(generator.config.classes)) if generator.config.classes else 2
    z = torch.randn(rows * PREVIEW_PER_ROW, generator.config.z_dim,
                    generator=torch.Generator().manual_seed(PREVIEW_SEED)).to(device)
    labels = (torch.arange(rows, device=device).repeat_interleave(PREVIEW_PER_ROW)
              if generator.config.classes else None)
    images = generator.synthesis(generator.styles(z, labels), generator.make_noise(len(z), "const", device=device))
    images = ((images.float() + 1) / 2).clamp(0, 1)
    return list(images.split(PREVIEW_PER_ROW))
