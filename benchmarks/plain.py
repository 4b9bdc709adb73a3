"""Plain-PyTorch baselines: the textbook loop of each method, for side-by-side timing with ours.

Written for these benchmarks in plain PyTorch (``nn.Sequential``, ``nn.MaxPool2d``, ``torch.optim.LBFGS``),
with none of the host's memory or speed measures. They load the same weights as our methods
(the state dicts are read as plain tensors), so both sides do the same arithmetic:

* :class:`PlainGatys`: a torchvision-style VGG16 ``features`` prefix with in-place ReLUs and
  ``nn.MaxPool2d``, caffe input (BGR, 0..255, mean subtracted), content MSE at relu4_2, Gram MSE at
  relu1_1..relu5_1 (Gram / CHW), L1 total variation, ``torch.optim.LBFGS`` with torch's defaults
  (history 100) running every iteration inside one ``step``.
* :func:`plain_adain`: VGG16 up to relu4_1, AdaIN, the mirrored decoder as an ``nn.Sequential``.
* :class:`PlainTransformerNet`: the fast-style network of Johnson et al. (9×9 conv, two stride-2
  convs, five residual blocks, two nearest ×2 upsampling convs, 9×9 conv; reflection padding,
  instance norm), module names chosen so our style models' state dicts load into it.
"""
from __future__ import annotations

import time
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def vgg_layer_index(name: str, cfg: tuple = VGG16) -> int:
    """Index in ``features`` of ``conv{b}_{i}`` / ``relu{b}_{i}`` / ``pool{b}`` (torchvision order)."""
    index, block, conv = 0, 1, 1
    for entry in cfg:
        if entry == "M":
            if name == f"pool{block}":
                return index
            index, block, conv = index + 1, block + 1, 1
            continue
        if name == f"conv{block}_{conv}":
            return index
        if name == f"relu{block}_{conv}":
            return index + 1
        index, conv = index + 2, conv + 1
    raise ValueError(f"no layer {name!r} in this VGG")


def plain_vgg(state_dict: Mapping[str, Tensor], depth: int, cfg: tuple = VGG16) -> nn.Sequential:
    """The first ``depth`` modules of a torchvision-style VGG ``features``, frozen, in fp32."""
    layers: list[nn.Module] = []
    channels = 3
    for entry in cfg:
        if entry == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, entry, 3, padding=1), nn.ReLU(inplace=True)]
            channels = entry
    features = nn.Sequential(*layers[:depth])
    own = {k.removeprefix("features."): v.float() for k, v in state_dict.items()}
    features.load_state_dict({k: v for k, v in own.items() if k in features.state_dict()})
    return features.requires_grad_(False).eval()


def caffe_input(image: Tensor) -> Tensor:
    """0..1 RGB → BGR in 0..255 minus the channel means (what caffe-trained VGGs expect)."""
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=image.dtype).view(1, 3, 1, 1)
    return image.flip(1) * 255.0 - mean


def features_at(vgg: nn.Sequential, x: Tensor, indices: Mapping[str, int]) -> dict[str, Tensor]:
    wanted = {i: name for name, i in indices.items()}
    found: dict[str, Tensor] = {}
    for i, module in enumerate(vgg):
        x = module(x)
        if i in wanted:
            found[wanted[i]] = x
    return found


def gram(features: Tensor) -> Tensor:
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class PlainGatys:
    """Gatys et al. the textbook way: the picture is the variable, L-BFGS runs ``steps`` iterations in one call."""

    def __init__(self, state_dict: Mapping[str, Tensor], content: Tensor, style: Tensor,
                 content_layers=("relu4_2",), style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                 content_weight: float = 1.0, style_weight: float = 20.0, tv_weight: float = 10.0) -> None:
        self.indices = {name: vgg_layer_index(name) for name in (*content_layers, *style_layers)}
        self.vgg = plain_vgg(state_dict, max(self.indices.values()) + 1)
        self.content_layers, self.style_layers = tuple(content_layers), tuple(style_layers)
        self.weights = (content_weight, style_weight, tv_weight)
        with torch.no_grad():
            found = features_at(self.vgg, caffe_input(content), self.indices)
            self.content_targets = {n: found[n].clone() for n in self.content_layers}
            found = features_at(self.vgg, caffe_input(style), self.indices)
            self.style_targets = {n: gram(found[n]) for n in self.style_layers}
        self.image = content.clone().requires_grad_(True)

    def loss(self, image: Tensor) -> Tensor:
        found = features_at(self.vgg, caffe_input(image), self.indices)
        content = sum(F.mse_loss(found[n], self.content_targets[n]) for n in self.content_layers)
        style = sum(F.mse_loss(gram(found[n]), self.style_targets[n])
                    for n in self.style_layers) / len(self.style_layers)
        tv = ((image[..., 1:, :] - image[..., :-1, :]).abs().sum()
              + (image[..., :, 1:] - image[..., :, :-1]).abs().sum()) / image.numel()
        content_weight, style_weight, tv_weight = self.weights
        return content_weight * content + style_weight * style + tv_weight * tv

    def run(self, steps: int, on_step: Callable[[float], None] | None = None) -> Tensor:
        """``steps`` L-BFGS iterations (torch's defaults, tolerances off); ``on_step(loss)`` after each evaluation."""
        optimizer = torch.optim.LBFGS([self.image], lr=1.0, max_iter=steps, tolerance_grad=-1, tolerance_change=-1)

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = self.loss(self.image)
            loss.backward()
            if on_step is not None:
                on_step(float(loss.detach()))
            return loss

        optimizer.step(closure)
        return self.image.detach()


def step_times(run: Callable[[Callable[[float], None]], object]) -> tuple[list[float], list[float]]:
    """Seconds between successive ``on_step`` calls of ``run(on_step)`` (the first from the call), and the losses."""
    marks = [time.perf_counter()]
    losses: list[float] = []

    def on_step(loss: float) -> None:
        marks.append(time.perf_counter())
        losses.append(loss)

    run(on_step)
    return [b - a for a, b in zip(marks, marks[1:])], losses


# -- AdaIN -------------------------------------------------------------------------------------

def plain_decoder(state_dict: Mapping[str, Tensor]) -> nn.Sequential:
    """VGG16's convs up to relu4_1 mirrored: reflection pad + 3×3 conv + ReLU, nearest ×2 where VGG pools."""
    plan = [256, "U", 256, 256, 128, "U", 128, 64, "U", 64, 3]
    layers: list[nn.Module] = []
    channels = 512
    for i, entry in enumerate(plan):
        if entry == "U":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, entry, 3)]
        if i != len(plan) - 1:
            layers.append(nn.ReLU(inplace=True))
        channels = entry
    decoder = nn.Sequential(*layers)
    decoder.load_state_dict({k: v.float() for k, v in state_dict.items()})
    return decoder.requires_grad_(False).eval()


def adain_op(content: Tensor, style: Tensor, eps: float = 1e-5) -> Tensor:
    c_mean, s_mean = content.mean((2, 3), keepdim=True), style.mean((2, 3), keepdim=True)
    c_std = (content.var((2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    s_std = (style.var((2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return (content - c_mean) / c_std * s_std + s_mean


@torch.no_grad()
def plain_adain(encoder: nn.Sequential, decoder: nn.Sequential, content: Tensor, style: Tensor) -> Tensor:
    """The whole call: encode both pictures to relu4_1, AdaIN, decode, clamp."""
    target = adain_op(encoder(caffe_input(content)), encoder(caffe_input(style)))
    return decoder(target).clamp(0, 1)


# -- Johnson et al. ----------------------------------------------------------------------------

class ConvLayer(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(channels_in, channels_out, kernel, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2d(self.pad(x))


class UpsampleConvLayer(ConvLayer):
    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.in1 = ConvLayer(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)
        self.conv2, self.in2 = ConvLayer(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class PlainTransformerNet(nn.Module):
    """Input and output in 0..255; a side divisible by 4 comes back the same size."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.in1 = ConvLayer(3, 32, 9), nn.InstanceNorm2d(32, affine=True)
        self.conv2, self.in2 = ConvLayer(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.conv3, self.in3 = ConvLayer(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True)
        self.res = nn.Sequential(*(ResidualBlock(128) for _ in range(5)))
        self.deconv1, self.in4 = UpsampleConvLayer(128, 64, 3), nn.InstanceNorm2d(64, affine=True)
        self.deconv2, self.in5 = UpsampleConvLayer(64, 32, 3), nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, 9)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        y = self.res(y)
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)

    def load_ours(self, state_dict: Mapping[str, Tensor]) -> "PlainTransformerNet":
        """Our style models' keys (``res1.conv1.conv2d.weight``) → this layout (``res.0.conv1.conv2d.weight``)."""
        renamed = {}
        for key, value in state_dict.items():
            if key.startswith("res") and key[3].isdigit():
                key = f"res.{int(key[3]) - 1}{key[4:]}"
            if not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
                renamed[key] = value.float()
        self.load_state_dict(renamed)
        return self.requires_grad_(False).eval()


@torch.no_grad()
def plain_johnson(net: PlainTransformerNet, image: Tensor) -> Tensor:
    return (net(image * 255.0) / 255.0).clamp(0, 1)
