"""Use methods from Python::

    import plugin_host
    gatys = plugin_host.load_method("gatys", device="cpu", seed=0)
    out = gatys("photo.jpg", style="painting.jpg", iterations=200)   # a PIL image
    tensor = gatys(content_tensor, style=[s1, s2], style_blend=[0.7, 0.3], max_size=256)
    picture = plugin_host.load_method("stylegan", seed=3)(truncation=0.5)   # a generator: no image

Images may be paths, PIL images or ``(1, 3, H, W)`` tensors in 0..1. The result has the
content's type: a PIL image for paths and PIL images (alpha restored), a tensor for tensors.
A method without a content input (a generator) is called without one and returns a PIL image.
"""
from __future__ import annotations

from typing import Any, Sequence

from .errors import InputImageError
from .runner import Result, Session


class MethodHandle:
    """A loaded method bound to a :class:`~plugin_host.runner.Session` (models stay warm between calls)."""

    def __init__(self, session: Session, name: str) -> None:
        self.session = session
        self.method = session.method(name)

    def __call__(self, content: Any = None, /, progress: Any = None, cancel: Any = None, **kwargs: Any) -> Any:
        """Run on ``content``; ``kwargs`` are the method's inputs and parameters by name.

        ``content`` is required unless the method has no content input (a generator), which takes none.

        ``progress`` (a :class:`~plugin_host.progress.Progress`) and ``cancel`` (a
        :class:`~plugin_host.progress.CancelToken`) are the host's keywords (``host_options``, ``call``).
        """
        from .host_options import CALL, check_keywords

        checked = check_keywords(CALL, progress=progress, cancel=cancel)
        progress, cancel = checked["progress"], checked["cancel"]
        wanted = self.method.content_input
        if (wanted is None) != (content is None):
            raise InputImageError(f"method {self.method.name!r} " + (
                "makes a picture from its parameters and takes no image" if wanted is None
                else f"needs a {wanted.name} image: pass it first"))
        images: dict[str, Any] = {} if wanted is None else {wanted.name: content}
        blend: dict[str, Sequence[float]] = {}
        for spec in self.method.inputs:
            if spec.role == "content" or spec.name not in kwargs:
                continue
            value = kwargs.pop(spec.name)
            images[spec.name] = list(value) if isinstance(value, (list, tuple)) else (
                [value] if spec.multiple else value)
            if spec.weighted and f"{spec.name}_blend" in kwargs:
                blend[spec.name] = kwargs.pop(f"{spec.name}_blend")
        result = self.session.run(self.method.name, images, kwargs, blend, progress=progress, cancel=cancel)
        return self._convert(content, result)

    @staticmethod
    def _convert(content: Any, result: Result) -> Any:
        import torch

        if content is None:
            return result.to_pil()
        if isinstance(content, torch.Tensor):
            return result.rgb if content.dim() == 4 else result.rgb[0]
        return result.to_pil()


def load_method(name: str, device: str = "auto", seed: int | None = None,
                session: Session | None = None, precision: str = "auto",
                max_pixels: int | None = None, memory: str = "auto") -> MethodHandle:
    """Find the method ``name`` among the installed plugins and bind it to a device.

    ``precision`` is ``auto`` (bfloat16 networks where the hardware runs them natively), ``fp32``
    or ``bf16``; see :mod:`plugin_host.precision`. ``max_pixels`` caps the images read from files
    (default 100 million). ``memory`` is ``auto``, ``low`` or ``high``: whether a method may spend
    memory for speed (:func:`plugin_host.memory.spend_memory`). These keywords are the host options of ``host_options.SESSION``,
    checked like the command line's.

    :raises plugin_host.errors.MethodNotFound: with a did-you-mean when no plugin provides it.
    """
    return MethodHandle(session or Session(device=device, seed=seed, precision=precision, max_pixels=max_pixels,
                                           memory=memory), name)
