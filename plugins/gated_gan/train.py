"""Training a Gated-GAN generator on several painting collections at once.

    plugin_host train gated-gan --content photos/ --styles collections/ --name my-painters
    torchrun --nproc-per-node 2 -m plugin_host train gated-gan ...      # several processes (DDP)

``collections/`` holds one sub-folder of paintings per collection; the sorted sub-folder names are the
style names, in gate order, and the identity (auto-encoder) branch comes last. Each step takes a batch of
photos and, class-balanced, one painting per photo with its collection ``c``; the photo is stylised with
the gate of ``c``. The generator steps first, then the discriminator (the official code's order):

* G: LSGAN towards ``real_target`` on D's verdict of the stylised photos, plus ``classifier_weight`` ×
  cross-entropy of D's style head against ``c``, plus ``autoencoder_weight`` × L1 between the photo and
  its reconstruction through the identity gate (the same forward pass: a batch of 2B), plus ``tv_weight``
  × the total variation, plus (optional) ``content_weight`` × a perceptual content loss;
* D: LSGAN, paintings towards ``real_target`` and stylised photos (through the image pool) towards 0, plus
  ``classifier_weight`` × cross-entropy of the style head on the paintings only.

With ``augment`` every image D sees is randomly translated and cut out (DiffAugment), which keeps D from
memorising collections of a few dozen paintings. Adam for both networks; the learning rate stays, then
falls linearly to 0 from ``decay_from`` × ``iterations``. ``OUT.ckpt`` holds the full state (both
networks, optimisers, schedules, the image pool) for exact resume; ``OUT`` is the fp16 generator with its
metadata, ``OUT.json`` its card; ``OUT.log.jsonl`` the losses; previews show one column per style plus the
identity.
"""
from __future__ import annotations

from pathlib import Path
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from plugin_host.sdk import (ImageFolder, InputImageError, Params, RunContext, TrainingRun, content_loss,
                             export_model, shift_equivariance_loss, user_model_path, write_card)

from .net import Discriminator, Generator, from_network, init_weights, to_network
from .schema import MODEL_KIND

#: Photos shown in each preview grid (one row each: the photo, then one column per style, then identity).
PREVIEW_PHOTOS = 3
#: Characters a style name may not hold: they separate the parts of ``--style-blend``.
_BLEND_SEPARATORS = set("=,")


# -- data ----------------------------------------------------------------------------------------

def _flip(image: Tensor, seed: int) -> Tensor:
    """Mirror ``image`` left-right for half of the seeds (a coin independent of the crop's position)."""
    coin = torch.Generator().manual_seed(seed ^ 0x5DEECE66D)
    return image.flip(-1) if bool(torch.randint(2, (1,), generator=coin)) else image


class Photos(Dataset):
    """Random crops of the photos, flipped at random."""

    def __init__(self, folder: Path, crop: int, resize_short: int | None) -> None:
        self.images = ImageFolder(folder, crop, resize_short)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> Tensor:
        return _flip(self.images[key], key[1])


class Collections(Dataset):
    """Random crops of paintings with their collection's index, every collection equally often.

    Index ``i`` is collection ``i mod n`` and, within it, painting ``(i div n) mod size``; the data set is
    ``n × largest`` long, so an epoch shows each collection as often as the largest has paintings.
    """

    def __init__(self, folder: Path, crop: int, resize_short: int | None, chosen: tuple[str, ...] = ()) -> None:
        folders = sorted(p for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise InputImageError(f"'{folder}' has no sub-folders of paintings",
                                  hint="put each collection's paintings in a sub-folder named after the style")
        missing = sorted(set(chosen) - {sub.name for sub in folders})
        if missing:
            raise InputImageError(f"'{folder}' has no collection {missing[0]!r}",
                                  hint=f"its sub-folders: {', '.join(sub.name for sub in folders)}")
        folders = [sub for sub in folders if not chosen or sub.name in chosen]
        for sub in folders:
            if _BLEND_SEPARATORS & set(sub.name):
                raise InputImageError(f"collection folder '{sub}' has '=' or ',' in its name",
                                      hint="rename it: style names may not hold '=' or ','")
        self.names = tuple(sub.name for sub in folders)
        self.collections = [ImageFolder(sub, crop, resize_short) for sub in folders]
        self.largest = max(len(c) for c in self.collections)

    def __len__(self) -> int:
        return len(self.collections) * self.largest

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, int]:
        index, seed = key
        label = index % len(self.collections)
        paintings = self.collections[label]
        return _flip(paintings[(index // len(self.collections) % len(paintings), seed)], seed), label


# -- training helpers ------------------------------------------------------------------------------

class ImagePool(nn.Module):
    """The last ``size`` stylised images, shown to D in place of new ones half of the time (Shrivastava et
    al. 2017, as the official code does). Its images are buffers, so checkpoints keep them."""

    def __init__(self, size: int, crop: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, 3, crop, crop))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, batch: Tensor, generator: torch.Generator) -> Tensor:
        if self.size == 0:
            return batch
        out = []
        for image in batch:
            filled = int(self.count)
            if filled < self.size:
                self.images[filled] = image
                self.count += 1
                out.append(image)
            elif bool(torch.rand((), generator=generator) < 0.5):
                slot = int(torch.randint(self.size, (), generator=generator))
                out.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                out.append(image)
        return torch.stack(out)


def augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """DiffAugment's translation (up to 1/8 of the side, zero-filled) and cutout (a zeroed square of half the
    side), drawn per image; differentiable, so G learns through it."""
    batch, _, height, width = images.shape
    shift_y, shift_x = max(1, height // 8), max(1, width // 8)
    dy = torch.randint(-shift_y, shift_y + 1, (batch,), generator=generator).tolist()
    dx = torch.randint(-shift_x, shift_x + 1, (batch,), generator=generator).tolist()
    padded = F.pad(images, (shift_x, shift_x, shift_y, shift_y))
    moved = torch.stack([padded[i, :, shift_y + dy[i]:shift_y + dy[i] + height,
                                shift_x + dx[i]:shift_x + dx[i] + width] for i in range(batch)])
    cy = torch.randint(height, (batch,), generator=generator)
    cx = torch.randint(width, (batch,), generator=generator)
    rows, cols = torch.arange(height).view(1, -1, 1), torch.arange(width).view(1, 1, -1)
    inside = (((rows - cy.view(-1, 1, 1)).abs() < height // 4 + 1)
              & ((cols - cx.view(-1, 1, 1)).abs() < width // 4 + 1))
    return moved * (~inside).unsqueeze(1).to(moved)


def total_variation(images: Tensor) -> Tensor:
    """Sum of squared differences of neighbouring pixels, per image (the paper's TV, whose weight 1e-6
    refers to this form; the shared ``total_variation_loss`` is a mean of absolute differences)."""
    dy = (images[..., 1:, :] - images[..., :-1, :]).square().sum()
    dx = (images[..., :, 1:] - images[..., :, :-1]).square().sum()
    return (dx + dy) / images.shape[0]


def linear_decay(iterations: int, decay_from: float):
    """The learning-rate factor of a step: 1 until ``decay_from`` × ``iterations``, then linearly to 0."""
    start = int(decay_from * iterations)

    def factor(step: int) -> float:
        return 1.0 if step < start else max(0.0, (iterations - step) / max(1, iterations - start))

    return factor


def _step_seed(seed: int, index: int, rank: int) -> int:
    """A seed for the random draws (pool, augmentation) of one step on one rank: resumes need no RNG state."""
    return ((seed * 1_000_003 + index) * 1031 + rank) % (2 ** 63)


# -- the trainer -----------------------------------------------------------------------------------

def _output_path(params: Params) -> tuple[Path, str]:
    if params.out is not None:
        out = Path(params.out)
        return out, params.name or out.stem
    return user_model_path(params.name), params.name


def train(params: Params, ctx: RunContext) -> Path:  # --threads is the host's option now, for every method
    return _train(params, ctx)


def _train(params: Params, ctx: RunContext) -> Path:
    out, name = _output_path(params)
    resize = params.resize_short or None
    photos = Photos(params.content_dir, params.crop, resize)
    paintings = Collections(params.styles_dir, params.crop, resize, params.collections)
    styles, n_styles = paintings.names, len(paintings.names)
    settings = {"method": "gated-gan", "n_styles": n_styles, "ngf": params.ngf, "decoder_blocks": params.decoder_blocks,
                "upsample": params.upsample, "affine": True, "styles": list(styles), "identity": n_styles,
                "ndf": params.ndf, "crop": params.crop, "classifier_weight": params.classifier_weight,
                "autoencoder_weight": params.autoencoder_weight, "tv_weight": params.tv_weight,
                "real_target": params.real_target, "augment": params.augment,
                "content_weight": params.content_weight, "shift_weight": params.shift_weight,
                "content_layer": params.content_layer if params.content_weight else None}
    with TrainingRun(ctx, out, params, label="train gated-gan", metadata=settings) as run:
        generator = Generator(n_styles, params.ngf, params.decoder_blocks, params.upsample).to(run.device)
        discriminator = Discriminator(n_styles, params.ndf).to(run.device)
        init_weights(generator)
        init_weights(discriminator)
        pool = ImagePool(params.pool_size, params.crop).to(run.device)
        betas = (params.beta1, 0.999)
        adam_g = torch.optim.Adam(generator.parameters(), lr=params.learning_rate, betas=betas)
        adam_d = torch.optim.Adam(discriminator.parameters(), lr=params.learning_rate, betas=betas)
        decay = linear_decay(params.iterations, params.decay_from)
        schedules = {"g": torch.optim.lr_scheduler.LambdaLR(adam_g, decay),
                     "d": torch.optim.lr_scheduler.LambdaLR(adam_d, decay)}
        run.track(models={"generator": generator, "discriminator": discriminator, "pool": pool},
                  optimizers={"g": adam_g, "d": adam_d}, schedulers=schedules)
        model_g = run.ddp(generator, find_unused_parameters=True)  # unselected style branches get no gradient
        model_d = run.ddp(discriminator)
        photo_batches = run.batches(photos, params.batch_size, 0)
        painting_batches = run.batches(paintings, params.batch_size, 1)
        encoder = (run.ctx.load_encoder(params.encoder, [params.content_layer]) if params.content_weight else None)
        target = params.real_target
        g_params = list(generator.parameters())

        def step(index: int) -> dict[str, float]:
            photo = to_network(next(photo_batches).to(run.device))
            painting, labels = next(painting_batches)
            painting, labels = to_network(painting.to(run.device)), labels.to(run.device)
            draws = torch.Generator().manual_seed(_step_seed(run.seed, index, run.dist.rank))
            shown_to_d = (lambda x: augment(x, draws)) if params.augment else (lambda x: x)
            batch = len(photo)

            # G: stylise with each photo's collection gate and reconstruct through the identity gate, one pass.
            gates = torch.cat([F.one_hot(labels, n_styles + 1).float(),
                               F.one_hot(torch.full_like(labels, n_styles), n_styles + 1).float()])
            with run.ctx.autocast():
                both = model_g(torch.cat([photo, photo]), gates).float()
            stylised, reconstruction = both[:batch], both[batch:]
            with run.ctx.autocast():
                realness, logits = discriminator(shown_to_d(stylised))
            g_adv = F.mse_loss(realness.float(), torch.full_like(realness.float(), target))
            g_class = _patch_cross_entropy(logits.float(), labels)
            autoencoder = F.l1_loss(reconstruction, photo)
            tv = total_variation(stylised)
            loss_g = (g_adv + params.classifier_weight * g_class + params.autoencoder_weight * autoencoder
                      + params.tv_weight * tv)
            parts = {"g_adv": g_adv, "g_class": g_class, "autoencoder": autoencoder, "tv": tv}
            if encoder is not None:
                layer = params.content_layer
                with torch.no_grad():
                    wanted = encoder(from_network(photo))[layer]
                content = content_loss(encoder(from_network(stylised))[layer], wanted)
                loss_g = loss_g + params.content_weight * content
                parts["content"] = content
            if params.shift_weight:
                def stylise(shifted: Tensor) -> Tensor:
                    with run.ctx.autocast():
                        return model_g(shifted, gates[:batch]).float()

                parts["shift"] = shift_equivariance_loss(stylise, photo, stylised, scale=127.5)  # −1..1: grey levels
                loss_g = loss_g + params.shift_weight * parts["shift"]
            adam_g.zero_grad(set_to_none=True)
            loss_g.backward(inputs=g_params)  # D's parameters are left alone: D has its own step
            adam_g.step()

            # D: paintings are real (and classified), stylised photos from the pool are fake.
            fake = pool.query(stylised.detach(), draws)
            with run.ctx.autocast():
                realness, logits = model_d(torch.cat([shown_to_d(painting), shown_to_d(fake)]))
            realness = realness.float()
            d_real = F.mse_loss(realness[:batch], torch.full_like(realness[:batch], target))
            d_fake = F.mse_loss(realness[batch:], torch.zeros_like(realness[batch:]))
            d_class = _patch_cross_entropy(logits[:batch].float(), labels)
            loss_d = d_real + d_fake + params.classifier_weight * d_class
            adam_d.zero_grad(set_to_none=True)
            loss_d.backward()
            adam_d.step()
            for schedule in schedules.values():
                schedule.step()
            parts |= {"d_real": d_real, "d_fake": d_fake, "d_class": d_class}
            return {"loss_g": float(loss_g.detach()), "loss_d": float(loss_d.detach()),
                    **{key: float(value.detach()) for key, value in parts.items()},
                    "lr": schedules["g"].get_last_lr()[0]}

        preview_photos = torch.stack([photos.images[(i % len(photos), i)] for i in range(PREVIEW_PHOTOS)])

        def preview(index: int) -> list[Tensor]:
            return preview_rows(generator, preview_photos.to(run.device))

        card = {"name": name, "model_kind": MODEL_KIND, "architecture": "gated-gan", "input_convention": "raw",
                "styles": list(styles), "ngf": params.ngf, "upsample": params.upsample,
                "content_weight": params.content_weight, "licence": "yours",
                "description": f"Gated-GAN generator for {', '.join(styles)} (ngf {params.ngf})"}

        def export(steps: int) -> None:
            export_model(out, generator, {**settings, "steps": steps})
            write_card(out, {**card, "steps": steps})

        return run.train(step, export=export, preview=preview)


def _patch_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of per-patch style logits (B, n, h, w) against each image's label, on every patch."""
    height, width = logits.shape[-2:]
    return F.cross_entropy(logits, labels.view(-1, 1, 1).expand(-1, height, width))


@torch.no_grad()
def preview_rows(generator: Generator, photos: Tensor) -> list[Tensor]:
    """One row per photo: the photo, its stylisation with each style's gate, then the identity gate."""
    gates = torch.eye(generator.n_styles + 1, device=photos.device)
    rows = []
    for photo in photos:
        outs = from_network(generator(to_network(photo).expand(len(gates), -1, -1, -1), gates)).clamp(0, 1)
        rows.append(torch.cat([photo[None], outs]))
    return rows

