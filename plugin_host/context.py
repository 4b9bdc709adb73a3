"""The context the host hands to a method's ``run`` and ``train``: device, seed, progress, cancel, weights.

Methods never choose a device, print, or find files themselves; they ask the context. One
context may serve many runs (batch mode, the server), so models loaded through it stay warm.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .progress import CancelToken, Progress

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .encoders.vgg import VGGEncoder
    from .plugins import Registry
    from .weights.store import WeightsStore


class ModelCache:
    """Keeps loaded models (and the state dicts they came from) between runs, keyed by the caller."""

    def __init__(self) -> None:
        self._items: dict[Any, Any] = {}

    def get(self, key: Any, create: Callable[[], Any]) -> Any:
        if key not in self._items:
            self._items[key] = create()
        return self._items[key]

    def clear(self) -> None:
        self._items.clear()


@dataclass
class RunContext:
    """What a method may use while it runs.

    :ivar device: where tensors live; inputs arrive there already.
    :ivar dtype: floating type of images and losses (float32).
    :ivar compute_dtype: what networks prepared with :meth:`prepare` compute in (bfloat16 where the
        hardware runs it natively and the user did not ask for ``--precision fp32``; default ``dtype``).
    :ivar seed: ``None`` for nondeterministic runs; :meth:`generator` is seeded from it.
    :ivar progress: report ``stage(name, total)`` / ``advance()`` / ``preview(path)``.
    :ivar cancel: call ``cancel.raise_if_cancelled()`` between steps.
    :ivar weights: resolves registry names to verified files (fetching when allowed).
    :ivar preview_dir: where a method may write intermediate images (``None``: don't).
    :ivar memory: ``auto``, ``low`` or ``high``: whether a method may spend memory for speed
        (:meth:`spend_memory`).
    """

    device: "torch.device"
    weights: "WeightsStore"
    registry: "Registry"
    dtype: "torch.dtype | None" = None
    compute_dtype: "torch.dtype | None" = None
    seed: int | None = None
    progress: Progress = field(default_factory=Progress)
    cancel: CancelToken = field(default_factory=CancelToken)
    preview_dir: Path | None = None
    preview_prefix: str = "preview"
    cache: ModelCache = field(default_factory=ModelCache)
    memory: str = "auto"

    def __post_init__(self) -> None:
        if self.dtype is None:
            import torch

            self.dtype = torch.float32
        if self.compute_dtype is None:
            self.compute_dtype = self.dtype

    def generator(self, offset: int = 0) -> "torch.Generator":
        """A CPU generator seeded from ``seed`` (+ ``offset``), or randomly when no seed was given."""
        import torch

        gen = torch.Generator()
        if self.seed is None:
            gen.seed()
        else:
            gen.manual_seed(self.seed + offset)
        return gen

    def save_preview(self, image: "torch.Tensor", step: int) -> Path | None:
        """Write an intermediate ``(1, 3, H, W)`` image next to the output and announce it; no-op without ``preview_dir``."""
        if self.preview_dir is None:
            return None
        from .imaging.io import save_image

        path = Path(self.preview_dir) / f"{self.preview_prefix}-{step:05d}.png"
        save_image(path, image.detach().float().clamp(0, 1).cpu())
        self.progress.preview(str(path))
        return path

    def spend_memory(self) -> bool:
        """Whether to take the faster path that needs more memory (``--memory``; ``auto``: when plenty is free)."""
        from .memory import spend_memory

        return spend_memory(self.memory)

    def memory_policy(self) -> "contextlib.AbstractContextManager[bool]":
        """How a run on the CPU asks the C library for memory: with memory to spend, freed memory stays in
        the heap for the next tensor (:func:`~plugin_host.memory.heap_kept`: no page faults per layer or
        step; a 1024² style network runs ~30 % faster), and for :data:`~plugin_host.memory.HEAP_LINGER_S`
        after the run, for the next one; otherwise glibc's defaults (a lingering heap is trimmed first).
        ``Session.run`` wraps every method in it; yields whether the heap is kept."""
        from .memory import HEAP_LINGER_S, heap_kept, release_lingering_heap

        if self.device.type == "cpu" and self.spend_memory():
            return heap_kept(linger_s=HEAP_LINGER_S)
        release_lingering_heap()
        return contextlib.nullcontext(False)

    @property
    def placement(self) -> tuple[str, str, str]:
        """Device and dtypes as strings: add it to :attr:`cache` keys of anything :meth:`prepare` made."""
        return str(self.device), str(self.dtype), str(self.compute_dtype)

    def prepare(self, module: "torch.nn.Module", cast_outputs: bool = True) -> "torch.nn.Module":
        """``module`` on the run's device, computing in :attr:`compute_dtype`, taking and returning :attr:`dtype`.

        With ``cast_outputs=False`` its outputs stay in :attr:`compute_dtype`. Call it once when a
        network is built (inside the ``create`` of :attr:`cache`), not per run.
        """
        from .precision import compute_in

        return compute_in(module.to(device=self.device, dtype=self.dtype), self.compute_dtype, self.dtype,
                          cast_outputs=cast_outputs)

    def autocast(self) -> "contextlib.AbstractContextManager":
        """Mixed precision for a network being trained: its ops run in :attr:`compute_dtype` inside the block.

        Its parameters (and the optimiser) stay in :attr:`dtype`; cast what the block returns back with
        ``.to(ctx.dtype)``. A no-op when the two dtypes are equal.
        """
        import torch

        return torch.autocast(self.device.type, dtype=self.compute_dtype,
                              enabled=self.compute_dtype != self.dtype)

    def call(self, method: str, images: "dict[str, torch.Tensor]", params: "dict[str, Any] | None" = None
             ) -> "torch.Tensor":
        """Run another registered method on ``images`` (name → (1, 3, H, W) in 0..1 on :attr:`device`) in
        this context: the same device, warm models, progress and cancel. Its output as it returns it.

        :raises PluginHostError: the method is not installed (a did-you-mean), or a parameter is bad.
        """
        from .runner import Inputs

        called = self.registry.method(method)
        validated = called.schema.validate(params, models=self.registry.model_names())
        return called.resolve_run()(Inputs(images, {}), validated, self)

    def load_encoder(self, name: str, layers: Iterable[str], pooling: str = "max",
                     compute_dtype_features: bool = False) -> "VGGEncoder":
        """A frozen VGG encoder from the weights entry ``name``, computing only ``layers``.

        ``compute_dtype_features=True`` returns features in :attr:`compute_dtype` (bf16 where
        enabled) instead of :attr:`dtype`: for callers whose losses upcast on their own
        (:func:`~plugin_host.losses.gram_matrix`, :func:`~plugin_host.losses.content_loss`), it
        spares a float32 copy of every layer kept for the backward pass.
        The file is verified once per process; encoders are cached per (name, layers, pooling).
        """
        from .encoders.vgg import build_encoder
        from .weights.checkpoint import load_state_dict

        entry = self.weights.entry(name)  # a WeightsError with a did-you-mean when there is none
        layers = tuple(sorted(set(layers)))

        def create() -> "VGGEncoder":
            # Not cached: once the encoder holds its own (possibly bf16) copy, the file's tensors
            # would only add to the process's memory; a second layer set reads the file again.
            state = load_state_dict(self.weights.path(name, progress=self.progress, cancel=self.cancel))
            return self.prepare(build_encoder(entry.architecture, state, entry.input_convention, layers,
                                              pooling=pooling), cast_outputs=not compute_dtype_features)

        return self.cache.get(("encoder", name, layers, pooling, compute_dtype_features, *self.placement),
                              create)
