"""Inputs and parameters of the perceptual-loss methods (style and super-resolution), declared once."""
import dataclasses

from plugin_host.sdk import (DEFAULT_ENCODER, PRESERVE_COLORS, TILE_SIZE, TRAINING_RUN_PARAMS, ChoiceParam,
                             FloatParam, ImageInput, IntParam, ListParam, ModelParam, Param, ParameterError, Params,
                             PathParam, Schema, StringParam, check_output_or_name,
                             shift_weight_param)

NORMS = ("instance", "batch")
UPSAMPLES = ("nearest", "bilinear", "transposed")
#: "strided": stride-2 convolutions (the paper); "blur": stride-1 convolution, then a binomial blur
#: before taking every second pixel (anti-aliased, so the network is closer to shift-equivariant).
DOWNSAMPLES = ("strided", "blur")
#: Channel multiplier of each network width.
WIDTHS = {"full": 1.0, "half": 0.5}

STYLE_KIND = "perceptual-style"
SR_KIND = "perceptual-sr"
DEFAULT_STYLE = "perceptual-starry-night"
DEFAULT_SR = "perceptual-sr-x4-pixel"
VGG_LAYERS = tuple(f"relu{block}_{i}" for block, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
                   for i in range(1, n + 1))

CONTENT = (ImageInput("content", label="Image", help="the picture to process", role="content"),)

STYLE_SCHEMA = Schema(params=(
    ModelParam("model", "Style", "trained style network", DEFAULT_STYLE, model_kind=STYLE_KIND),
    FloatParam("strength", "Strength", "0 returns the input, 1 the full style", 1.0, min=0.0, max=1.0, step=0.05),
    PRESERVE_COLORS,
    FloatParam("content_scale", "Content scale",
               "resize the input before styling (smaller = larger brush strokes); the result keeps the input size",
               1.0, min=0.1, max=4.0, step=0.05),
    TILE_SIZE,
))

SR_SCHEMA = Schema(params=(
    ModelParam("model", "Model", "trained super-resolution network (its name says the scale)", DEFAULT_SR,
               model_kind=SR_KIND),
    TILE_SIZE,
))


_COMMON_TRAINING = (
    ModelParam("encoder", "Loss network", "VGG that measures the perceptual losses", DEFAULT_ENCODER,
               model_kind="encoder"),
    IntParam("batch_size", "Batch size", "images per step (per process under torchrun)", 4, min=1, max=256),
    IntParam("crop", "Crop", "random crop size in pixels", 256, min=32, max=1024),
    IntParam("resize_short", "Resize", "short side before cropping (0 = keep)", 0, min=0, max=4096),
    FloatParam("learning_rate", "Learning rate", "Adam learning rate", 1e-3, min=1e-7, max=1.0),
    *TRAINING_RUN_PARAMS,
)


def _with_defaults(params: tuple[Param, ...], **defaults: object) -> tuple[Param, ...]:
    """``params`` with the defaults of some replaced (the same option, another method's usual value)."""
    return tuple(dataclasses.replace(p, default=defaults[p.name]) if p.name in defaults else p for p in params)


def _style_given(params: Params) -> None:
    for name in ("style", "content_dir"):
        if params[name] is None:
            raise ParameterError(name, "is required", hint=f"give --{name.replace('_', '-')} PATH")
    check_output_or_name(params)


STYLE_TRAIN_SCHEMA = Schema(params=(
    PathParam("style", "Style image", "the painting to learn", None),
    PathParam("content_dir", "Content photos", "folder of training photos (searched recursively)", None,
              directory=True, cli_aliases=("content",)),
    PathParam("out", "Output model", "where to write the model (default: your models folder, as NAME.pth)", None,
              must_exist=False),
    StringParam("name", "Name", "model name shown in menus (default: the style file's name)", ""),
    # The recipe of the shipped styles (docs/training-probes.md): 3000 steps of the paper's losses at 128 px,
    # then 800 with the shift-equivariance loss, which removes the pattern those steps lock to the 4-px grid.
    # With the shift loss from the first step a 2-px column pattern grew instead (6 of 10 photos in the bar).
    IntParam("iterations", "Iterations", "training steps", 3800, min=1, max=10_000_000),
    IntParam("style_size", "Style size", "longest side the style image is read at", 256, min=32, max=4096),
    FloatParam("content_weight", "Content weight", "weight of the feature reconstruction loss", 1.0, min=0.0,
               max=1e6),
    # pytorch/examples weighs content 1e5 and style 1e10 with torchvision-scaled VGG features; the
    # default encoder's Caffe-scaled features are about 57 times larger, which multiplies the Gram
    # loss by 57^2 more than the content loss: the same balance is 1 to 1e5 / 57^2, about 30.
    FloatParam("style_weight", "Style weight", "weight of the Gram style loss", 10.0, min=0.0, max=1e9),
    FloatParam("tv_weight", "TV weight", "total-variation weight (smoothness)", 10.0, min=0.0, max=1e6),
    ChoiceParam("content_layer", "Content layer", "VGG layer of the content loss", "relu2_2", choices=VGG_LAYERS),
    ListParam("style_layers", "Style layers", "VGG layers of the style loss",
              ("relu1_2", "relu2_2", "relu3_3", "relu4_3"), item=ChoiceParam("layer", choices=VGG_LAYERS)),
    shift_weight_param(5.0),
    IntParam("shift_start", "Shift loss from step", "the step the shift-equivariance loss starts at: first the "
             "network learns the style freely, then it unlearns what locks to its pixel grid (0 = from the start, "
             "e.g. when fine-tuning with --start-from)", 3000, min=0, max=10_000_000),
    StringParam("start_from", "Start from", "a style network to start from instead of random weights (an "
                "installed model's name or a file of the same normalisation, width and upsampling kind), e.g. a "
                "style to fine-tune with --shift-weight", ""),
    ChoiceParam("norm", "Normalisation", "instance normalisation gives cleaner styles", "instance", choices=NORMS),
    ChoiceParam("upsample", "Upsampling", "nearest + conv avoids checkerboard artefacts", "nearest",
                choices=UPSAMPLES),
    ChoiceParam("downsample", "Downsampling", "blur before subsampling (anti-aliased) or plain stride-2 "
                "convolutions", "strided", choices=DOWNSAMPLES),
    ChoiceParam("width", "Width", "half width is about 3× faster at inference", "full", choices=tuple(WIDTHS)),
    *_with_defaults(_COMMON_TRAINING, batch_size=2, crop=128, resize_short=192),
), checks=(_style_given,))


def _sr_given(params: Params) -> None:
    if params.content_dir is None:
        raise ParameterError("content_dir", "is required", hint="give --content-dir PATH (high-resolution photos)")
    check_output_or_name(params)


SR_TRAIN_SCHEMA = Schema(params=(
    PathParam("content_dir", "High-resolution photos", "folder of training photos (searched recursively)", None,
              directory=True, cli_aliases=("content",)),
    PathParam("out", "Output model", "where to write the model (default: your models folder, as NAME.pth)", None,
              must_exist=False),
    StringParam("name", "Name", "model name (default perceptual-sr-xSCALE-LOSS)", ""),
    ChoiceParam("scale", "Scale", "upscaling factor", "4", choices=("4", "8")),
    ChoiceParam("loss", "Loss", "feature: VGG feature reconstruction (sharper); pixel: mean squared error",
                "feature", choices=("feature", "pixel")),
    ChoiceParam("content_layer", "Feature layer", "VGG layer of the feature loss", "relu2_2", choices=VGG_LAYERS),
    FloatParam("tv_weight", "TV weight", "total-variation weight (feature loss only)", 0.0, min=0.0, max=1e6),
    FloatParam("blur_sigma", "Blur σ", "Gaussian blur before bicubic downsampling (the paper: 1.0)", 1.0,
               min=0.0, max=10.0),
    IntParam("iterations", "Iterations", "training steps", 200000, min=1, max=10_000_000),
    *(p if p.name != "crop" else IntParam("crop", "Crop", "high-resolution crop size in pixels", 288, min=32,
                                          max=1024) for p in _COMMON_TRAINING),
), checks=(_sr_given,))
