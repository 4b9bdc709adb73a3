"""Runs methods: validates parameters and inputs, loads images, calls ``run``, restores alpha.

A :class:`Session` is what every front end uses (CLI, Python API, server): it holds the
plugin registry, the weights store, the device and a model cache, so a batch of images or a
warm server loads each model once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from .errors import InputImageError, PluginHostError
from .method import Method
from .progress import CancelToken, Progress
from .schema import ImageInput, Params

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .imaging.io import LoadedImage
    from .plugins import Registry


class Inputs(Mapping[str, Any]):
    """Input tensors by name: ``(1, 3, H, W)`` RGB 0..1 on the run's device; lists for multiple inputs.

    ``inputs.blend_weights("style")`` gives a weighted input's weights, normalised to sum 1.
    """

    def __init__(self, tensors: Mapping[str, Any], weights: Mapping[str, Sequence[float]]) -> None:
        self._tensors = dict(tensors)
        self._weights = {k: tuple(v) for k, v in weights.items()}

    def __getitem__(self, key: str) -> Any:
        return self._tensors[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def blend_weights(self, name: str) -> tuple[float, ...]:
        count = len(self._tensors.get(name) or ())
        return self._weights.get(name) or tuple(1.0 / count for _ in range(count))


@dataclass
class Result:
    """A method's output on the CPU: ``rgb`` (1, 3, H, W) and optional ``alpha`` (1, 1, H, W), 0..1."""

    rgb: "torch.Tensor"
    alpha: "torch.Tensor | None"
    bit_depth: int = 8

    def to_pil(self):  # noqa: ANN201 - PIL.Image.Image
        from .imaging.io import to_pil

        return to_pil(self.rgb, self.alpha)


class Session:
    """A registry, a weights store, a device and warm models, shared by successive runs."""

    def __init__(self, registry: "Registry | None" = None, device: str = "auto", seed: int | None = None,
                 max_pixels: int | None = None, store: Any = None, precision: str = "auto",
                 memory: str = "auto") -> None:
        from .context import RunContext
        from .devices import select_device
        from .host_options import SESSION, check_keywords
        from .plugins import load_registry
        from .precision import resolve_precision
        from .weights.store import WeightsStore

        checked = check_keywords(SESSION, device=device, seed=seed, max_pixels=max_pixels, precision=precision,
                                 memory=memory)
        device, seed, max_pixels, precision = (checked[k] for k in ("device", "seed", "max_pixels", "precision"))
        self.registry = registry if registry is not None else load_registry()
        self.store = store if store is not None else WeightsStore(self.registry.weights)
        self.max_pixels = max_pixels
        chosen = select_device(device)
        self.context = RunContext(device=chosen, weights=self.store, registry=self.registry, seed=seed,
                                  compute_dtype=resolve_precision(precision, chosen), memory=checked["memory"])

    def method(self, name: str) -> Method:
        return self.registry.method(name)

    def validate(self, method: Method, raw_params: Mapping[str, Any] | None) -> Params:
        return method.schema.validate(raw_params, models=self.registry.model_names())

    def load(self, image: Any) -> "LoadedImage":
        """Accepts a path, a PIL image, a ``(1|3, H, W)``/``(1, 3, H, W)`` tensor in 0..1, or a LoadedImage."""
        import torch

        from .imaging.io import LoadedImage, load_image

        if isinstance(image, LoadedImage):
            return image
        if isinstance(image, torch.Tensor):
            rgb = image if image.dim() == 4 else image.unsqueeze(0)
            if rgb.shape[0] != 1 or rgb.shape[1] not in (1, 3):
                raise InputImageError(f"expected an image tensor (1, 3, H, W), got shape {tuple(image.shape)}")
            return LoadedImage(rgb=rgb.float().expand(1, 3, *rgb.shape[2:]).clone(), alpha=None,
                               bit_depth=8, source=None)
        return load_image(image, max_pixels=self.max_pixels)

    def run(self, method_name: str, images: Mapping[str, Any], params: Mapping[str, Any] | None = None,
            blend_weights: Mapping[str, Sequence[float]] | None = None, progress: Progress | None = None,
            cancel: CancelToken | None = None, validated: Params | None = None) -> Result:
        """Run one method on one content image (on none, for a method without a content input).

        :param images: input name → image, or a list of images for ``multiple`` inputs.
        :param params: raw parameter values (text or typed); validated here.
        :param blend_weights: input name → one weight per image of a ``weighted`` input.
        """
        import torch

        method = self.method(method_name)
        params = validated if validated is not None else self.validate(method, params)
        loaded = {name: [self.load(i) for i in value] if isinstance(value, (list, tuple)) else self.load(value)
                  for name, value in images.items() if value is not None and value != []}
        weights = _check_inputs(method, loaded, dict(blend_weights or {}))

        ctx = self.context
        ctx.progress = progress or Progress()
        ctx.cancel = cancel or CancelToken()
        if ctx.seed is not None:
            torch.manual_seed(ctx.seed)
        device, dtype = ctx.device, ctx.dtype

        def to_device(img: "LoadedImage") -> "torch.Tensor":
            return img.rgb.to(device=device, dtype=dtype)

        tensors = {n: [to_device(i) for i in v] if isinstance(v, list) else to_device(v) for n, v in loaded.items()}
        with ctx.memory_policy():
            output = method.resolve_run()(Inputs(tensors, weights), params, ctx)
        ctx.progress.close()
        content = loaded[method.content_input.name] if method.content_input is not None else None
        return _finish(method, output, content)


def _check_inputs(method: Method, loaded: Mapping[str, Any], weights: dict[str, Sequence[float]]
                  ) -> dict[str, tuple[float, ...]]:
    declared = {i.name: i for i in method.inputs}
    for name in loaded:
        if name not in declared:
            raise InputImageError(f"method {method.name!r} has no input named {name!r}",
                                  hint="its inputs are: " + ", ".join(declared))
    normalised: dict[str, tuple[float, ...]] = {}
    for spec in method.inputs:
        value = loaded.get(spec.name)
        if value is None:
            if spec.required:
                raise InputImageError(f"method {method.name!r} needs a {spec.name} image",
                                      hint=f"give it with --{spec.name}" if spec.role != "content" else None)
            continue
        if isinstance(value, list) and not spec.multiple and len(value) != 1:
            raise InputImageError(f"input {spec.name!r} takes one image, got {len(value)}")
        if isinstance(value, list) and not spec.multiple:
            loaded[spec.name] = value[0]  # type: ignore[index]
        normalised.update(_blend(spec, value, weights.get(spec.name)))
    return normalised


def _blend(spec: ImageInput, value: Any, given: Sequence[float] | None) -> dict[str, tuple[float, ...]]:
    count = len(value) if isinstance(value, list) else 1
    if given is None:
        return {spec.name: tuple(1.0 / count for _ in range(count))} if spec.weighted else {}
    if not spec.weighted:
        raise InputImageError(f"input {spec.name!r} takes no blend weights")
    if len(given) != count or any(w < 0 for w in given) or sum(given) <= 0:
        raise InputImageError(f"{spec.name} blend weights {list(given)} do not fit {count} image(s)",
                              hint="give one non-negative weight per image, not all zero")
    total = float(sum(given))
    return {spec.name: tuple(float(w) / total for w in given)}


def _finish(method: Method, output: Any, content: "LoadedImage | None") -> Result:
    import torch
    import torch.nn.functional as F

    if not isinstance(output, torch.Tensor) or output.dim() != 4 or output.shape[:2] != (1, 3):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise PluginHostError(f"method {method.name!r} returned {shape}, expected a (1, 3, H, W) tensor",
                              hint="this is a bug in the plugin; report it to its author")
    rgb = output.detach().float().cpu()
    if not torch.isfinite(rgb).all():
        raise PluginHostError(f"method {method.name!r} produced NaN or infinite values",
                              hint="try lower weights or learning rate, or another optimiser")
    rgb = rgb.clamp(0, 1)
    if content is None:  # a generator: an opaque 8-bit picture
        return Result(rgb=rgb, alpha=None, bit_depth=8)
    alpha = content.alpha
    if alpha is not None and alpha.shape[-2:] != rgb.shape[-2:]:
        alpha = F.interpolate(alpha, size=rgb.shape[-2:], mode="bilinear", align_corners=False,
                              antialias=True).clamp(0, 1)
    return Result(rgb=rgb, alpha=alpha, bit_depth=content.bit_depth)


def output_path_for(content: Path, out_dir: Path, method: str, suffix: str = ".png") -> Path:
    """``photo.jpg`` → ``out_dir/photo-gatys.png``."""
    return out_dir / f"{content.stem}-{method}{suffix}"
