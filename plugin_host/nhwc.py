"""Inference in channels-last buffers for networks of reflection-padded convolutions.

On the CPU, oneDNN's float32 convolutions run 20–40 % faster on channels-last (NHWC) tensors,
but torch's reflection padding, instance norm and upsampling hand back NCHW tensors, and a
channels-last network then converts layouts around every convolution (a style network at 1024²
ran slower in channels-last than in NCHW). Here every layer writes its output once, straight
into the interior of the next convolution's padded NHWC buffer, whose border is then filled by
reflection (a few rows and columns); instance norm takes two cheap reductions and one pass.

Tensors here are NHWC-contiguous ``(N, H, W, C)``; :func:`conv` reads a padded buffer through
its channels-last NCHW view and returns NHWC. Inference only: nothing keeps autograd history.
Measured in ``benchmarks/versus_plain.py`` (perceptual-loss style networks).
"""
from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .imaging.tiling import frozen_statistics, is_frozen

__all__ = ["applies", "padded", "interior", "reflect_border", "pad_reflect", "conv", "conv_in_phases", "instance_norm_into",
           "upsample_nearest_into", "copy_into", "normed_padded", "residual_block", "upsample_conv", "frozen_statistics",
           "is_frozen"]


def applies(net: nn.Module, x: Tensor, min_side: int) -> bool:
    """Whether ``net`` may run on ``x`` through this module's helpers: inference (no autograd) in float32 on
    the CPU, parameters in float32, sides of at least ``min_side``, and no hook on any layer (bf16 casting
    uses them) but those of :func:`~plugin_host.imaging.tiling.frozen_instance_norm`, whose statistics
    :func:`instance_norm_into` applies itself. The network's own settings are the caller's to check."""
    first = next(net.parameters(), None)
    return (not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32
            and (first is None or first.dtype == torch.float32) and min(x.shape[-2:]) >= min_side
            and not any((m._forward_hooks or m._forward_pre_hooks) and not is_frozen(m) for m in net.modules()))


def padded(height: int, width: int, pad: int, like: Tensor) -> Tensor:
    """An empty NHWC buffer for a ``height`` × ``width`` picture plus ``pad`` pixels on every side."""
    n, channels = like.shape[0], like.shape[-1]
    return like.new_empty(n, height + 2 * pad, width + 2 * pad, channels)


def interior(buffer: Tensor, pad: int) -> Tensor:
    """The view of ``buffer`` inside its ``pad``-wide border."""
    if not pad:
        return buffer
    return buffer[:, pad:buffer.shape[1] - pad, pad:buffer.shape[2] - pad]


def reflect_border(buffer: Tensor, pad: int) -> Tensor:
    """Fill the ``pad``-wide border of ``buffer`` by reflecting its interior (as ``ReflectionPad2d``)."""
    if not pad:
        return buffer
    height, width = buffer.shape[1] - 2 * pad, buffer.shape[2] - 2 * pad
    if min(height, width) <= pad:
        raise ValueError(f"reflection padding {pad} needs a picture larger than {pad} px, got {height}x{width}")
    columns = slice(pad, pad + width)
    buffer[:, :pad, columns] = buffer[:, pad + 1:2 * pad + 1, columns].flip(1)
    buffer[:, pad + height:, columns] = buffer[:, height - 1:height - 1 + pad, columns].flip(1)
    buffer[:, :, :pad] = buffer[:, :, pad + 1:2 * pad + 1].flip(2)
    buffer[:, :, pad + width:] = buffer[:, :, width - 1:width - 1 + pad].flip(2)
    return buffer


def pad_reflect(x: Tensor, pad: int, relu: bool = False) -> Tensor:
    """``x`` (NHWC; or ``relu(x)``) copied into a new buffer with a reflected ``pad``-wide border."""
    buffer = padded(x.shape[1], x.shape[2], pad, x)
    copy_into(x, interior(buffer, pad), relu=relu)
    return reflect_border(buffer, pad)


def conv(buffer: Tensor, layer: nn.Conv2d) -> Tensor:
    """``layer`` on the NHWC ``buffer`` (with its own zero padding, if any), computed channels-last; the result
    is NHWC-contiguous. Large kernels with a few outputs (a style network's last layer) run
    :func:`conv_in_phases`."""
    if _phases_pay(layer):
        return conv_in_phases(buffer, layer)
    out = F.conv2d(buffer.permute(0, 3, 1, 2), layer.weight, layer.bias, layer.stride, layer.padding,
                   layer.dilation, layer.groups)
    return out.permute(0, 2, 3, 1)


#: oneDNN vectorises a convolution over its output channels, so one with 3 outputs leaves most of every
#: vector idle: a 9×9, 32 → 3 layer at 1024² ran at a fifth of the speed of the network's other layers.
PHASE_MAX_OUTPUTS = 4
PHASE_MIN_KERNEL = 7  # a 3×3 layer with 3 outputs is faster as it is (probe, benchmarks/README.md)
PHASE_FACTOR = 2
_phase_weights: "weakref.WeakKeyDictionary[nn.Conv2d, tuple]" = weakref.WeakKeyDictionary()


def _phases_pay(layer: nn.Conv2d) -> bool:
    return (layer.out_channels <= PHASE_MAX_OUTPUTS and min(layer.kernel_size) >= PHASE_MIN_KERNEL
            and layer.stride == (1, 1) and layer.dilation == (1, 1) and layer.groups == 1
            and layer.padding == (0, 0))


def conv_in_phases(buffer: Tensor, layer: nn.Conv2d, factor: int = PHASE_FACTOR) -> Tensor:
    """``conv(buffer, layer)`` (stride 1, no padding) computed on the picture split into its ``factor`` ×
    ``factor`` phases (space to depth): the output's phases are one convolution of the input's, with
    ``factor²`` times the outputs and inputs and a kernel of about ``1/factor`` the side, so the outputs fill
    the vectors. The same sums in another order (float rounding apart); 9×9, 32 → 3 at 1024²: 382 → 131 ms
    for the convolution, plus a copy of the input."""
    n, height, width, channels = buffer.shape
    weight, bias, reach = _phase_weight(layer, factor)
    out_h, out_w = height - layer.kernel_size[0] + 1, width - layer.kernel_size[1] + 1
    rows, cols = -(-out_h // factor) + reach - 1, -(-out_w // factor) + reach - 1
    if rows * factor != height or cols * factor != width:  # zeros where a phase runs past the picture
        buffer = F.pad(buffer[:, :rows * factor, :cols * factor],
                       (0, 0, 0, max(0, cols * factor - width), 0, max(0, rows * factor - height)))
    split = (buffer.reshape(n, rows, factor, cols, factor, channels).permute(0, 1, 3, 2, 4, 5)
             .reshape(n, rows, cols, factor * factor * channels))
    out = F.conv2d(split.permute(0, 3, 1, 2), weight, bias).permute(0, 2, 3, 1)
    rows, cols = out.shape[1], out.shape[2]
    out = (out.reshape(n, rows, cols, factor, factor, layer.out_channels).permute(0, 1, 3, 2, 4, 5)
           .reshape(n, rows * factor, cols * factor, layer.out_channels))
    return out[:, :out_h, :out_w].contiguous()


def _phase_weight(layer: nn.Conv2d, factor: int) -> tuple[Tensor, Tensor | None, int]:
    """The kernel of :func:`conv_in_phases` for ``layer`` (made once per layer and weight version), its
    bias per output phase, and its side. Output channel ``(a, b, o)``, input channel ``(r, s, i)`` and tap
    ``(q, t)`` carry the weight of tap ``(factor·q + r − a, factor·t + s − b)`` from ``i`` to ``o``, or 0."""
    key = (layer.weight.data_ptr(), layer.weight._version, factor)
    cached = _phase_weights.get(layer)
    if cached is not None and cached[0] == key:
        return cached[1]
    weight = layer.weight.detach()
    outputs, inputs, kernel_h, kernel_w = weight.shape
    reach = (factor - 1 + max(kernel_h, kernel_w) - 1) // factor + 1
    split = weight.new_zeros(factor, factor, outputs, factor, factor, inputs, reach, reach)
    for a in range(factor):
        for r in range(factor):
            for q in range(reach):
                dy = factor * q + r - a
                if not 0 <= dy < kernel_h:
                    continue
                for b in range(factor):
                    for s in range(factor):
                        for t in range(reach):
                            dx = factor * t + s - b
                            if 0 <= dx < kernel_w:
                                split[a, b, :, r, s, :, q, t] = weight[:, :, dy, dx]
    split = split.reshape(factor * factor * outputs, factor * factor * inputs, reach, reach)
    bias = None if layer.bias is None else layer.bias.detach().repeat(factor * factor)
    made = (split.contiguous(memory_format=torch.channels_last), bias, reach)
    _phase_weights[layer] = (key, made)
    return made


def instance_norm_into(y: Tensor, norm: nn.InstanceNorm2d, out: Tensor, relu: bool = False,
                       residual: Tensor | None = None) -> Tensor:
    """``norm(y)`` (then ReLU, then ``+ residual``) written into ``out``; ``y`` (NHWC) is overwritten.

    Inside :func:`~plugin_host.imaging.tiling.frozen_instance_norm` the norm's frozen statistics are used.

    Two passes for the statistics (the mean, then the variance of the centred values, which
    cancellation cannot spoil) and one for the affine map; all of them reduce over the outer
    dimensions of the channels-last data, which torch vectorises across channels.
    """
    n, channels = y.shape[0], y.shape[-1]
    flat = y.view(n, -1, channels)
    frozen = frozen_statistics(norm)
    if frozen is not None:  # tiles of one picture share the statistics of the whole (frozen_instance_norm)
        mean, var = (stat.to(y.dtype).view(-1, 1, channels) for stat in frozen)
        flat.sub_(mean)
        var = var.clone()
    else:
        count = flat.shape[1]
        mean = flat.sum(1, keepdim=True).div_(count)
        flat.sub_(mean)
        var = torch.mul(flat, flat, out=_scratch(out, y, residual)).sum(1, keepdim=True).div_(count)
    scale = torch.rsqrt(var.add_(norm.eps)).expand(n, 1, channels).reshape(n, 1, 1, channels)
    if norm.affine:
        scale.mul_(norm.weight.view(1, 1, 1, channels))
        torch.addcmul(norm.bias.view(1, 1, 1, channels), y, scale, out=out)
    else:
        torch.mul(y, scale, out=out)
    if relu:
        out.clamp_min_(0)
    if residual is not None:
        out.add_(residual)
    return out


def _scratch(out: Tensor, y: Tensor, residual: Tensor | None) -> Tensor | None:
    """A contiguous tensor shaped like ``y.view(n, -1, channels)`` at the start of ``out``'s storage (a buffer
    about to be overwritten), so the squares of ``y`` need no temporary whose pages a first call would fault
    in (128 MiB at 1024², 32 channels); None (a new tensor) where that storage also holds ``y`` or ``residual``,
    or is too small."""
    storage = out.untyped_storage()
    shared = [t.untyped_storage().data_ptr() for t in (y, residual) if t is not None]
    if storage.data_ptr() in shared or storage.nbytes() < y.numel() * y.element_size():
        return None
    n, channels = y.shape[0], y.shape[-1]
    return y.new_empty(0).set_(storage, 0, (n, y.numel() // (n * channels), channels))


def normed_padded(y: Tensor, norm: nn.InstanceNorm2d, pad: int) -> Tensor:
    """``relu(norm(y))`` in a new buffer with a reflected ``pad``-wide border (0: none); ``y`` is overwritten."""
    buffer = padded(y.shape[1], y.shape[2], pad, y)
    instance_norm_into(y, norm, interior(buffer, pad), relu=True)
    return reflect_border(buffer, pad)


def residual_block(buffer: Tensor, conv1: nn.Conv2d, norm1: nn.InstanceNorm2d, conv2: nn.Conv2d,
                   norm2: nn.InstanceNorm2d, last: bool = False) -> Tensor:
    """``x + norm2(conv2(pad(relu(norm1(conv1(pad(x)))))))`` for the ``x`` inside ``buffer`` (reflected border 1),
    into a new buffer padded for the next block, or unpadded when ``last``."""
    y = conv(normed_padded(conv(buffer, conv1), norm1, 1), conv2)
    pad = 0 if last else 1
    out = padded(y.shape[1], y.shape[2], pad, y)
    instance_norm_into(y, norm2, interior(out, pad), residual=interior(buffer, 1))
    return reflect_border(out, pad)


def upsample_conv(x: Tensor, layer: nn.Conv2d, joined: Tensor | None = None) -> Tensor:
    """``layer`` (3×3, stride 1, unpadded) on ``x`` enlarged ×2 by nearest neighbour and reflection-padded by 1
    (a resize convolution), computed on ``x``'s own grid: each of the four output phases sees a 2×2 window of
    ``x``, so one 2×2 convolution with four times the outputs does 16 multiply-adds per input pixel and
    channel pair where the enlarged picture needs 36, and the enlarged picture is never written (what it saves:
    ``benchmarks/README.md``). Reflection at the enlarged border is replication at ``x``'s border.

    ``joined``: NHWC channels at the enlarged size joined after ``x``'s (the last of ``layer``'s inputs),
    convolved at that size with their share of the kernel and added. Returns NHWC ``(N, 2H, 2W, outputs)``."""
    n, height, width, channels = x.shape
    outputs = layer.out_channels
    weight, bias, rest = _resize_weight(layer, channels)
    if (rest is None) != (joined is None) or (joined is not None and rest.shape[1] != joined.shape[-1]):
        raise ValueError(f"upsample_conv: {layer} takes {layer.in_channels} inputs, got {channels} + "
                         f"{0 if joined is None else joined.shape[-1]} joined")
    border = padded(height, width, 1, x)
    interior(border, 1).copy_(x)
    border[:, 0, 1:-1], border[:, -1, 1:-1] = x[:, 0], x[:, -1]
    border[:, :, 0], border[:, :, -1] = border[:, :, 1], border[:, :, -2]
    phases = F.conv2d(border.permute(0, 3, 1, 2), weight, bias).permute(0, 2, 3, 1)  # (N, H+1, W+1, 4·outputs)
    out = x.new_empty(n, height, 2, width, 2, outputs)
    for row in range(2):
        for column in range(2):
            phase = (2 * row + column) * outputs
            out[:, :, row, :, column] = phases[:, row:row + height, column:column + width, phase:phase + outputs]
    out = out.view(n, 2 * height, 2 * width, outputs)
    if joined is not None:
        out.add_(F.conv2d(pad_reflect(joined, 1).permute(0, 3, 1, 2), rest).permute(0, 2, 3, 1))
    return out


#: Per axis, for the even and the odd output phase, which of the kernel's three taps fall on each of the two
#: pixels of ``x`` under its window (the upper, then the lower): a nearest-neighbour ×2 enlargement repeats
#: every pixel, so two taps meet on one.
_RESIZE_TAPS = ((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)), ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0))
_resize_weights: "weakref.WeakKeyDictionary[nn.Conv2d, tuple]" = weakref.WeakKeyDictionary()


def _resize_weight(layer: nn.Conv2d, channels: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """For :func:`upsample_conv` (made once per layer, weight version and split): the 2×2 kernel of the four
    phases (output channel ``(row phase, column phase, o)``) for the first ``channels`` inputs, its bias,
    and the kernel of the joined inputs (None when there are none)."""
    if layer.kernel_size != (3, 3) or layer.stride != (1, 1) or layer.padding != (0, 0) or layer.groups != 1:
        raise ValueError(f"upsample_conv takes an unpadded 3×3 convolution of stride 1, got {layer}")
    key = (layer.weight.data_ptr(), layer.weight._version, channels)
    cached = _resize_weights.get(layer)
    if cached is not None and cached[0] == key:
        return cached[1]
    weight = layer.weight.detach()
    taps = torch.tensor(_RESIZE_TAPS, dtype=weight.dtype, device=weight.device)
    phases = torch.einsum("apk,bql,oikl->aboipq", taps, taps, weight[:, :channels])
    phases = phases.reshape(4 * layer.out_channels, channels, 2, 2).contiguous(memory_format=torch.channels_last)
    bias = None if layer.bias is None else layer.bias.detach().repeat(4)
    rest = weight[:, channels:].contiguous(memory_format=torch.channels_last) if weight.shape[1] > channels else None
    made = (phases, bias, rest)
    _resize_weights[layer] = (key, made)
    return made


def upsample_nearest_into(x: Tensor, out: Tensor) -> Tensor:
    """``x`` (NHWC) enlarged ×2 by nearest neighbour, written into ``out`` (twice its height and width)."""
    n, height, width, channels = x.shape
    out.unflatten(1, (height, 2)).unflatten(3, (width, 2)).copy_(
        x[:, :, None, :, None, :].expand(n, height, 2, width, 2, channels))
    return out


def copy_into(x: Tensor, out: Tensor, relu: bool = False) -> Tensor:
    """``x`` (or ``relu(x)``) written into ``out``, a view of the same shape, in one pass."""
    return torch.clamp(x, min=0, out=out) if relu else out.copy_(x)
