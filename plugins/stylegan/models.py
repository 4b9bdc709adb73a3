"""Generator files: this project's exports and the user's rosinality checkpoints, loaded once per process.

Our export is ``{"state_dict": fp16 tensors, "metadata": {"generator": GeneratorConfig.to_json(), …}}``
(what :func:`plugin_host.sdk.export_model` writes); the state dict holds ``w_avg`` and the const noise maps.
A rosinality file is converted by :mod:`.rosinality`. Every file is read with ``weights_only=True``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from plugin_host.sdk import Params, RunContext, WeightsError, load_weights_file, read_card, user_models_dir

from .net import Generator, GeneratorConfig
from .rosinality import build, convert_stylegan1, convert_stylegan2, is_stylegan1, is_stylegan2
from .schema import MODEL_KIND


def _state_of(obj: object) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        return obj
    return None


def read_generator_file(path: Path, checkpoint_size: int | None = None, fade: float = 1.0) -> Generator:
    """The generator in ``path`` (on the CPU, float32, eval mode, no gradients); WeightsError naming the problem.

    ``checkpoint_size`` and ``fade`` apply to StyleGAN1 checkpoints (the trained resolution, which their
    files do not record, and the fade-in of its last level); other files know their resolution.
    """
    path = Path(path)
    obj = load_weights_file(path, mmap=False)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and isinstance(obj.get("metadata"), dict):
        described = obj["metadata"].get("generator")
        if not isinstance(described, dict):
            raise WeightsError(f"{path.name} is a plugin_host export but not of a StyleGAN generator",
                               hint="pass a file written by `plugin_host train stylegan`")
        try:
            config = GeneratorConfig.from_json(described)
        except (TypeError, ValueError) as err:
            raise WeightsError(f"{path.name}: its generator settings are invalid ({err})") from None
        state = {k: v.float() for k, v in obj["state_dict"].items()}
        return _built(path, lambda: build(config, state, state.get("w_avg")))
    if isinstance(obj, dict) and ("g_running" in obj or "generator" in obj):  # train_step-N.model
        state = _state_of(obj.get("g_running")) or _state_of(obj.get("generator"))
        if state is None:
            raise WeightsError(f"{path.name}: its g_running/generator entry is not a state dict")
        return _built(path, lambda: build(*convert_stylegan1(state, checkpoint_size, fade)))
    if isinstance(obj, dict) and "g_ema" in obj:
        state = _state_of(obj["g_ema"])
        if state is None:
            raise WeightsError(f"{path.name}: its g_ema entry is not a state dict")
        average = obj.get("latent_avg") if isinstance(obj.get("latent_avg"), torch.Tensor) else None
        return _built(path, lambda: build(*convert_stylegan2(state), w_avg=average))
    state = _state_of(obj)
    if state is not None and is_stylegan1(state):  # NNNNNN.model: a bare g_running state dict
        return _built(path, lambda: build(*convert_stylegan1(state, checkpoint_size, fade)))
    if state is not None and is_stylegan2(state):
        return _built(path, lambda: build(*convert_stylegan2(state)))
    shown = ", ".join(sorted(map(str, obj))[:6]) if isinstance(obj, dict) else type(obj).__name__
    raise WeightsError(f"{path.name} is not a StyleGAN generator this plugin reads (it holds {shown})",
                       hint="expected a plugin_host export, a rosinality style-based-gan-pytorch checkpoint "
                            "(generator/g_running) or a stylegan2-pytorch one (g_ema)")


def _built(path: Path, make: Any) -> Generator:
    try:
        return make()
    except WeightsError as err:
        raise WeightsError(f"{path.name}: {err.message}", hint=err.hint) from None


def check_generator_file(path: Path) -> None:
    """WeightsError unless ``path`` holds a generator (the check of a hand-imported file)."""
    read_generator_file(path)


def no_generator_error(name: str) -> WeightsError:
    """The one-line error of a run that finds no generator ``name``: how to train one, or where to put one."""
    return WeightsError(
        f"no StyleGAN generator {name!r} is installed: train one with `plugin_host train stylegan --data DIR "
        f"--resolution 64 --name {name}` (see docs/stylegan.md), put {name}.pth and its card {name}.pth.json "
        f"(model_kind {MODEL_KIND}) into {user_models_dir()}, or pass --checkpoint FILE")


def installed_generator_path(ctx: RunContext, name: str) -> Path:
    """The file of the installed generator ``name`` (fetched and verified); the how-to-get-one error if none."""
    entry = ctx.registry.weights.get(name)
    if entry is None or entry.model_kind != MODEL_KIND:
        raise no_generator_error(name)
    return ctx.weights.path(name, progress=ctx.progress, cancel=ctx.cancel)


def load_generator(ctx: RunContext, params: Params) -> Generator:
    """The run's generator (``--checkpoint`` or ``--generator``) on its device; mapping and synthesis prepared
    for ``ctx.compute_dtype``, ``w_avg`` in ``ctx.dtype``. Cached per file and settings."""
    if params.checkpoint is not None:
        path = Path(params.checkpoint).resolve()
        stat = path.stat()
        size, key = params.checkpoint_size, ("file", str(path), stat.st_mtime_ns, stat.st_size)
    else:
        path = installed_generator_path(ctx, params.generator)
        card = read_card(path) or {}
        size = params.checkpoint_size or card.get("checkpoint_size")
        key = ("model", params.generator)

    def create() -> Generator:
        generator = read_generator_file(path, size, params.fade_in).to(device=ctx.device, dtype=ctx.dtype)
        ctx.prepare(generator.mapping)
        ctx.prepare(generator.synthesis)
        return generator

    return ctx.cache.get(("stylegan", *key, size, params.fade_in, *ctx.placement), create)
