"""The StyleGAN methods: ``render`` (pictures from seeds) and ``project_and_restyle`` (the user's picture).

Styles are W+: one w per layer (a row), so style mixing replaces some rows with another picture's.
Rows and noise maps are chosen by the resolution their layer works at: coarse 4-8 px, middle 16-32 px,
fine 64 px and up (the ranges of the paper's style-mixing figure).
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import torch

from plugin_host.sdk import (DEFAULT_ENCODER, Inputs, ParameterError, Params, RunContext, load_weights_file,
                             resize_to)

from .models import load_generator
from .net import Generator, mix_styles
from .project import PERCEPTUAL_LAYERS, Projection, project

GROUPS = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, 1 << 20), "all": (1, 1 << 20),
          "coarse+middle": (4, 32), "middle+fine": (16, 1 << 20)}
LATENT_FORMAT = "plugin_host-stylegan-latent/1"


def rows_of(generator: Generator, group: str) -> list[int]:
    """The W+ rows whose layers work at the resolutions of ``group``."""
    low, high = GROUPS[group]
    return [i for i, res in enumerate(generator.synthesis.layer_resolutions()) if low <= res <= high]


def noise_layers_of(generator: Generator, group: str) -> list[int]:
    low, high = GROUPS[group]
    return [i for i, layer in enumerate(generator.synthesis.layers) if low <= layer.resolution <= high]


def class_labels(generator: Generator, collection: str | None, device: torch.device,
                 prefer: str | None = None) -> torch.Tensor | None:
    """The class index of ``collection`` as a (1,) tensor; None for an unconditional generator."""
    classes = generator.config.classes
    if not classes:
        if collection:
            raise ParameterError("collection", f"this generator has no classes, so {collection!r} cannot be chosen",
                                 hint="leave --collection out")
        return None
    name = collection or (prefer if prefer in classes else classes[0])
    if name not in classes:
        raise ParameterError("collection", f"{name!r} is not a class of this generator",
                             hint="its classes are " + ", ".join(classes))
    return torch.tensor([classes.index(name)], device=device)


def seed_styles(generator: Generator, seed: int, labels: torch.Tensor | None, psi: float, cutoff: int,
                device: torch.device) -> torch.Tensor:
    """W+ (1, n_latent, w_dim) of ``seed``: its z, mapped and truncated."""
    z = torch.randn(1, generator.config.z_dim, generator=torch.Generator().manual_seed(int(seed))).to(device)
    return generator.styles(z, labels, psi, cutoff)


def synthesise(generator: Generator, w_plus: torch.Tensor, noise) -> torch.Tensor:
    """The picture of ``w_plus`` in 0..1."""
    return ((generator.synthesis(w_plus, noise).float() + 1) / 2).clamp(0, 1)


# -- render -------------------------------------------------------------------------------------------

#: The method and model ``upscale="super-resolution"`` uses (the perceptual plugin's ×4 feature-loss network).
SR_METHOD, SR_MODEL, SR_FACTOR = "perceptual-sr", "perceptual-sr-x4-feature", 4


def enlarge(picture: torch.Tensor, size: int, how: str, ctx: RunContext) -> torch.Tensor:
    """``picture`` at ``size`` × ``size``: resized, or first enlarged ×4 by super-resolution while smaller."""
    if how == "super-resolution":
        if SR_METHOD not in ctx.registry.methods:
            raise ParameterError("upscale", f"super-resolution needs the {SR_METHOD} method, which is not installed",
                                 hint="use --upscale resize, or install plugin_host's perceptual plugin")
        while picture.shape[-1] < size:
            picture = ctx.call(SR_METHOD, {"content": picture}, {"model": SR_MODEL}).clamp(0, 1)
    return resize_to(picture, (size, size))


def render(inputs: Inputs, params: Params, ctx: RunContext) -> torch.Tensor:
    generator = load_generator(ctx, params)
    seeds = list(params.seeds or [ctx.seed if ctx.seed is not None
                                  else int(torch.randint(2**31, (1,), generator=ctx.generator()))])
    labels = class_labels(generator, params.collection, ctx.device)
    ctx.progress.stage("render", total=len(seeds))
    pictures = []
    with torch.no_grad():
        for seed in seeds:
            ctx.cancel.raise_if_cancelled()
            picture = render_seed(generator, seed, params, labels, ctx.device)
            pictures.append(enlarge(picture, params.size, params.upscale, ctx) if params.size else picture)
            ctx.progress.advance()
    return grid(pictures, params.grid_columns)


def render_seed(generator: Generator, seed: int, params: Params, labels: torch.Tensor | None,
                device: torch.device) -> torch.Tensor:
    w_plus = seed_styles(generator, seed, labels, params.truncation, params.truncation_cutoff, device)
    if params.mix_seed is not None:
        other = seed_styles(generator, params.mix_seed, labels, params.truncation, params.truncation_cutoff, device)
        if params.crossover is not None:
            w_plus = mix_styles(w_plus, other, params.crossover)
        else:
            rows = rows_of(generator, params.mix_styles)
            w_plus[:, rows] = other[:, rows]
    noise_seed = params.noise_seed if params.noise_seed is not None else seed
    noise = generator.make_noise(1, params.noise_mode, seed=noise_seed, strength=params.noise_strength,
                                 layers=noise_layers_of(generator, params.noise_layers), device=device)
    return synthesise(generator, w_plus, noise)


def grid(pictures: list[torch.Tensor], columns: int = 0) -> torch.Tensor:
    """Pictures of one size side by side, ``columns`` per row (0: about square), gaps left black."""
    if len(pictures) == 1:
        return pictures[0]
    columns = columns or math.ceil(math.sqrt(len(pictures)))
    columns = min(columns, len(pictures))
    rows = math.ceil(len(pictures) / columns)
    height, width = pictures[0].shape[-2:]
    sheet = pictures[0].new_zeros(1, 3, rows * height, columns * width)
    for index, picture in enumerate(pictures):
        row, column = divmod(index, columns)
        sheet[..., row * height:(row + 1) * height, column * width:(column + 1) * width] = picture
    return sheet


# -- project and restyle ----------------------------------------------------------------------------

def project_and_restyle(inputs: Inputs, params: Params, ctx: RunContext) -> torch.Tensor:
    generator = load_generator(ctx, params)
    content = inputs["content"]
    labels = class_labels(generator, params.collection, ctx.device, prefer="photo")
    if params.latent is not None:
        projection = read_latent(Path(params.latent), generator, ctx.device)
    else:
        projection = _project(generator, content, labels, params, ctx, "project")
        if params.save_latent is not None:
            write_latent(Path(params.save_latent), projection, generator)
    w_plus = projection.w_plus.clone()
    rows = rows_of(generator, params.restyle_layers)
    if inputs.get("style") is not None:
        source = _project(generator, inputs["style"], labels, params, ctx, "project the style picture", offset=1)
        w_plus[:, rows] = source.w_plus[:, rows]
    elif params.style_seed is not None:
        other = seed_styles(generator, params.style_seed, labels, params.truncation, params.truncation_cutoff,
                            ctx.device)
        w_plus[:, rows] = other[:, rows]
    ctx.cancel.raise_if_cancelled()
    with torch.no_grad():
        picture = synthesise(generator, w_plus, projection.noise)
    return resize_to(picture, tuple(content.shape[-2:]))


def _project(generator: Generator, picture: torch.Tensor, labels: torch.Tensor | None, params: Params,
             ctx: RunContext, stage: str, offset: int = 0) -> Projection:
    side = generator.config.resolution
    target = resize_to(picture, (side, side)).float()
    encoder = ctx.load_encoder(DEFAULT_ENCODER, PERCEPTUAL_LAYERS)
    start = None
    if not params.from_average:
        seed = ctx.seed if ctx.seed is not None else 0
        z = torch.randn(1, generator.config.z_dim, generator=torch.Generator().manual_seed(seed)).to(ctx.device)
        with torch.no_grad():
            start = generator.mapping(z, labels).float()
    ctx.progress.stage(stage, total=params.steps)

    def on_step(step: int, loss: float) -> None:
        ctx.progress.advance(loss=loss)
        ctx.cancel.raise_if_cancelled()

    ctx.cancel.raise_if_cancelled()
    return project(generator, target, encoder, steps=params.steps, labels=labels, lr=params.learning_rate,
                   perceptual_weight=params.perceptual_weight, pixel_weight=params.pixel_weight,
                   noise_regularize=params.noise_regularize, start=start, rng=ctx.generator(offset),
                   on_step=on_step)


# -- latent files -------------------------------------------------------------------------------------

def write_latent(path: Path, projection: Projection, generator: Generator) -> Path:
    """Save a projection (W+, noise maps) atomically, loadable with ``weights_only=True``."""
    payload = {"format": LATENT_FORMAT, "w_plus": projection.w_plus.float().cpu(),
               "noise": [n.float().cpu() for n in projection.noise], "resolution": generator.config.resolution}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_latent(path: Path, generator: Generator, device: torch.device) -> Projection:
    """A projection saved by :func:`write_latent`, checked against ``generator``'s layers."""
    obj = load_weights_file(path, mmap=False)
    if not isinstance(obj, dict) or obj.get("format") != LATENT_FORMAT:
        raise ParameterError("latent", f"{path} is not a latent saved by stylegan-project --save-latent",
                             hint="save one with --save-latent FILE")
    w_plus, noise = obj.get("w_plus"), obj.get("noise") or []
    layers = generator.synthesis.layers
    expected = (1, generator.n_latent, generator.config.w_dim)
    shapes_fit = isinstance(w_plus, torch.Tensor) and tuple(w_plus.shape) == expected and len(noise) == len(layers) \
        and all(tuple(n.shape) == (1, 1, layer.resolution, layer.resolution) for n, layer in zip(noise, layers))
    if not shapes_fit:
        raise ParameterError("latent", f"{path} was saved for another generator (W+ "
                             f"{tuple(w_plus.shape) if isinstance(w_plus, torch.Tensor) else '?'}, this one needs "
                             f"{expected})", hint="project again with this generator")
    return Projection(w_plus.to(device), [n.to(device) for n in noise])
