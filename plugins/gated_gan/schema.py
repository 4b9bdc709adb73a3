"""Inputs and parameters of Gated-GAN, for stylising and for training, declared once.

The styles a user may pick are the style names of the installed models (read from their cards when
the plugin registers), so a model the user trains appears as a choice everywhere, like a new model
of ``perceptual`` does. Standard library only: ``plugin_host list`` imports this module.
"""
from __future__ import annotations

from collections.abc import Sequence

from plugin_host.sdk import (DEFAULT_ENCODER, PRESERVE_COLORS, TILE_SIZE, TRAINING_RUN_PARAMS, BoolParam, ChoiceParam,
                             FloatParam, ImageInput, IntParam, ListParam, ModelParam, Param, ParameterError, Params,
                             PathParam, Schema, StringParam, WeightsParam, check_output_or_name,
                             shift_weight_param)

MODEL_KIND = "gated-gan"
#: The name the shipped model will have once it is trained (docs/gated-gan.md says how).
SHIPPED_MODEL = "gated-gan-painters"
#: Decoder upsampling: the paper's transposed convolutions, or nearest resize + conv (no checkerboards).
UPSAMPLES = ("transposed", "resize")
#: Gate order of the PyTorch port's four-collection model (sorted folder names), for its files without a card.
PORT_STYLES = ("cezanne", "monet", "ukiyoe", "vangogh")
#: VGG16 layers the optional perceptual content loss may use.
CONTENT_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_2")

CONTENT = (ImageInput("content", label="Image", help="the picture to restyle", role="content"),)


def run_schema(styles: Sequence[str], default_model: str) -> Schema:
    """The run parameters; ``styles`` are the installed models' style names (the choices of ``style``).

    With no model installed, style is plain text (and any model name passes, as for every model parameter),
    so that a run reaches the method and its error saying how to train or install a model, instead of
    "unknown value" with nothing to choose from.
    """
    model_help = "trained Gated-GAN generator; its styles are the choices of Style"
    style_help = "the style to apply (default: the model's first); a style of the chosen model"
    style: Param = (ChoiceParam("style", "Style", style_help, None, choices=tuple(styles)) if styles
                    else StringParam("style", "Style", style_help, None))
    return Schema(params=(
        ModelParam("model", "Model", model_help + ("" if styles else " (none is installed yet)"), default_model,
                   model_kind=MODEL_KIND),
        style,
        WeightsParam("style_blend", "Style blend",
                     "soft gates over the model's styles (weights are normalised to sum 1); replaces Style when "
                     "given", choices=tuple(styles)),
        FloatParam("strength", "Strength", "mix of the style gate with the identity gate: 0 gives the "
                   "network's reconstruction of the photo, 1 the full style", 1.0, min=0.0, max=1.0, step=0.05),
        PRESERVE_COLORS,
        FloatParam("content_scale", "Content scale",
                   "resize the input before styling (smaller = larger brush strokes); the result keeps the "
                   "input size", 1.0, min=0.1, max=4.0, step=0.05),
        TILE_SIZE,
    ))


def _inputs_given(params: Params) -> None:
    for name, flag in (("content_dir", "--content"), ("styles_dir", "--styles")):
        if params[name] is None:
            raise ParameterError(name, "is required", hint=f"give {flag} DIR")
    check_output_or_name(params)


TRAIN_SCHEMA = Schema(params=(
    PathParam("content_dir", "Content photos", "folder of training photos (searched recursively)", None,
              directory=True, cli_aliases=("content",)),
    PathParam("styles_dir", "Style collections", "folder with one sub-folder of paintings per collection; "
              "the sub-folder names become the style names", None, directory=True, cli_aliases=("styles",)),
    ListParam("collections", "Collections", "the sub-folders to train on (default: all); the gate order is "
              "always their sorted names", (), item=StringParam("collection"), min_length=0),
    PathParam("out", "Output model", "where to write the model (default: your models folder, as NAME.pth)", None,
              must_exist=False),
    StringParam("name", "Name", "model name shown in menus", ""),
    IntParam("iterations", "Iterations", "training steps", 40000, min=1, max=10_000_000),
    FloatParam("decay_from", "Decay from", "fraction of the iterations after which the learning rate falls "
               "linearly to 0", 0.5, min=0.0, max=1.0),
    IntParam("batch_size", "Batch size", "photos per step (per process under torchrun)", 1, min=1, max=256),
    IntParam("crop", "Crop", "random crop size in pixels", 128, min=16, max=1024),
    IntParam("resize_short", "Resize", "short side before cropping (0 = keep)", 143, min=0, max=4096),
    IntParam("ngf", "Generator width", "channels of the generator's first layer (the paper: 64; 32 for CPU)",
             64, min=4, max=256),
    IntParam("ndf", "Discriminator width", "channels of the discriminator's first layer", 64, min=4, max=256),
    IntParam("decoder_blocks", "Decoder blocks", "residual blocks of the decoder (the paper: 5)", 5, min=0, max=16),
    ChoiceParam("upsample", "Upsampling", "transposed convolutions (the paper) or resize + conv "
                "(no checkerboard artefacts)", "transposed", choices=UPSAMPLES),
    FloatParam("learning_rate", "Learning rate", "Adam learning rate of both networks", 2e-4, min=1e-7, max=1.0),
    FloatParam("beta1", "Adam β1", "Adam's first-moment decay", 0.5, min=0.0, max=0.999),
    FloatParam("classifier_weight", "Classifier weight (λ_A)",
               "weight of the auxiliary style-classification loss (D on paintings, G on its outputs)", 1.0,
               min=0.0, max=1e4),
    FloatParam("autoencoder_weight", "Auto-encoder weight",
               "weight of the L1 reconstruction of the photo through the identity gate", 10.0, min=0.0, max=1e4),
    FloatParam("tv_weight", "TV weight", "weight of the total variation (sum of squared neighbour differences)",
               1e-6, min=0.0, max=1.0),
    FloatParam("real_target", "Real target", "LSGAN target of real paintings (one-sided label smoothing)", 0.9,
               min=0.5, max=1.0),
    IntParam("pool_size", "Image pool", "earlier outputs the discriminator sees besides new ones (0 = none)", 50,
             min=0, max=1000),
    BoolParam("augment", "Augment D's inputs", "random translation and cutout of every image the discriminator "
              "sees (DiffAugment), for collections of a few dozen paintings", True),
    FloatParam("content_weight", "Content weight", "weight of a perceptual content loss between photo and output "
               "(0 = the paper's losses only)", 0.0, min=0.0, max=1e4),
    shift_weight_param(),
    ChoiceParam("content_layer", "Content layer", "encoder layer of the content loss", "relu2_2",
                choices=CONTENT_LAYERS),
    ModelParam("encoder", "Loss network", "VGG of the content loss", DEFAULT_ENCODER, model_kind="encoder"),
    *TRAINING_RUN_PARAMS,
), checks=(_inputs_given,))
