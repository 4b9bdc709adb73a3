"""Compute precision: run the heavy networks in bfloat16 where the hardware does it natively.

Images, optimisers and losses stay in float32; only a network's own arithmetic (convolutions,
matrix products) moves to bfloat16. On CPUs with AMX or AVX-512 BF16 units, and on CUDA GPUs
with bf16 support, that is two to four times faster and halves the activations' memory; the
results differ from float32 by well under one 8-bit level on average. ``fp32`` keeps full
precision everywhere (``--precision fp32``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import PluginHostError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

PRECISION_CHOICES = ("auto", "fp32", "bf16")


def native_bf16(device: "torch.device") -> bool:
    """Whether ``device`` computes bfloat16 convolutions natively (not emulated, so faster than float32)."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, so probed with care
        return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)
    return False


def resolve_precision(name: str, device: "torch.device") -> "torch.dtype":
    """The dtype networks compute in: ``auto`` → bfloat16 where :func:`native_bf16`, else float32."""
    import torch

    if name not in PRECISION_CHOICES:
        raise PluginHostError(f"unknown precision {name!r}", hint="use one of " + ", ".join(PRECISION_CHOICES))
    if name == "fp32" or (name == "auto" and not native_bf16(device)):
        return torch.float32
    if device.type == "mps":
        raise PluginHostError("--precision bf16 is not supported on Apple's MPS backend",
                              hint="use --precision auto or fp32")
    return torch.bfloat16


def cast_floats(value: Any, dtype: "torch.dtype", channels_last: bool = False) -> Any:
    """``value`` with every floating tensor inside (also in dicts, lists, tuples) cast to ``dtype``.

    With ``channels_last``, 4-D tensors also take that memory layout (what oneDNN's and cuDNN's
    fast bf16 kernels want). The cast is differentiable: gradients flow back in the old dtype.
    """
    import torch

    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            return value
        value = value.to(dtype)
        if channels_last and value.ndim == 4:
            value = value.contiguous(memory_format=torch.channels_last)
        return value
    if isinstance(value, dict):
        return {key: cast_floats(item, dtype, channels_last) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cast_floats(item, dtype, channels_last) for item in value)
    return value


def compute_in(module: "nn.Module", compute_dtype: "torch.dtype", io_dtype: "torch.dtype",
               cast_outputs: bool = True) -> "nn.Module":
    """Make ``module`` compute in ``compute_dtype`` while its callers keep passing and getting ``io_dtype``.

    The module's parameters and buffers are converted once; forward hooks cast its inputs in
    and its outputs back (unless ``cast_outputs`` is false), so the module keeps its class
    (``isinstance`` checks still hold). A no-op when the two dtypes are equal. Returns ``module`` itself.
    """
    import torch

    if compute_dtype == io_dtype:
        return module
    channels_last = compute_dtype in (torch.bfloat16, torch.float16)
    module.to(dtype=compute_dtype)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    module.register_forward_pre_hook(lambda _module, args, kwargs: (
        cast_floats(args, compute_dtype, channels_last), cast_floats(kwargs, compute_dtype, channels_last)),
        with_kwargs=True)
    if cast_outputs:
        module.register_forward_hook(lambda _module, _args, output: cast_floats(output, io_dtype))
    return module
