"""Inputs and parameters of the StyleGAN methods (render, project-and-restyle) and of training, declared once.

The generators a user may pick, and the classes of those generators, are read from the installed models'
cards when the plugin registers, so a generator the user trains or installs appears as a choice
everywhere. Standard library only: ``plugin_host list`` imports this module.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from plugin_host.sdk import (TRAINING_RUN_PARAMS, BoolParam, ChoiceParam, FloatParam, ImageInput, IntParam, ListParam,
                             ModelParam, Param, ParameterError, Params, PathParam, Schema, StringParam,
                             check_output_or_name)

MODEL_KIND = "stylegan-generator"
#: The name the shipped generator will have once it is trained (docs/stylegan.md says how).
SHIPPED_MODEL = "stylegan-paintings"
NOISE_MODES = ("random", "const", "none")
#: Named groups of layers, by the resolution they work at (the paper's style-mixing figure).
LAYER_GROUPS = ("coarse", "middle", "fine")
NOISE_LAYERS = ("all", "coarse", "middle", "fine", "coarse+middle", "middle+fine")
AUGMENTS = ("color", "translation", "cutout")

PHOTO = (ImageInput("content", label="Image", help="the picture to project into the generator and restyle",
                    role="content"),
         ImageInput("style", label="Styles from", help="a second picture: its projection gives the styles of "
                    "the chosen layers (instead of a seed)", role="style", required=False))


def _generator_params(models: Sequence[str], default: str) -> tuple[Param, ...]:
    help_text = "trained StyleGAN generator"
    return (
        ModelParam("generator", "Generator", help_text + ("" if models else " (none is installed yet)"), default,
                   model_kind=MODEL_KIND),
        PathParam("checkpoint", "Checkpoint file", "a generator file to use instead of an installed one: a "
                  "plugin_host export, a rosinality style-based-gan-pytorch checkpoint (train_step-N.model or "
                  "NNNNNN.model) or a stylegan2-pytorch one holding g_ema", None),
        IntParam("checkpoint_size", "Checkpoint resolution", "the resolution a StyleGAN1 checkpoint was trained "
                 "to (its file does not say; default: the highest level whose noise weights are not zero)", None,
                 min=8, max=1024),
        FloatParam("fade_in", "Fade-in", "progressive growing's fade-in of a StyleGAN1 checkpoint's last "
                   "resolution (1 = fully grown)", 1.0, min=0.0, max=1.0, step=0.05),
    )


def _collection_param(classes: Sequence[str], help_text: str) -> Param:
    if classes:
        return ChoiceParam("collection", "Collection", help_text, None, choices=tuple(classes))
    return StringParam("collection", "Collection", help_text, None)


def _truncation_params() -> tuple[Param, ...]:
    return (
        FloatParam("truncation", "Truncation ψ", "pull the styles toward the average style: 1 = none, 0 = the "
                   "average picture; lower is more typical, higher more varied", 0.7, min=0.0, max=1.5, step=0.05),
        IntParam("truncation_cutoff", "Truncation layers", "how many layers, from the coarsest, truncation applies "
                 "to (8 covers 4-32 px, as in the paper)", 8, min=0, max=64),
    )


def render_schema(models: Sequence[str], classes: Sequence[str], default: str) -> Schema:
    """The parameters of ``stylegan``; ``models`` and ``classes`` are those installed (choices when any)."""
    return Schema(params=(
        *_generator_params(models, default),
        ListParam("seeds", "Seeds", "several pictures, one per seed, in a grid (default: the run's --seed)", None,
                  item=IntParam("seed", min=0, max=2**32 - 1), max_length=256),
        IntParam("grid_columns", "Grid columns", "pictures per row of the grid (0 = about square)", 0,
                 min=0, max=64),
        _collection_param(classes, "the class to draw from, for a generator trained with classes (default: "
                          "its first)"),
        *_truncation_params(),
        ChoiceParam("noise_mode", "Noise", "per-layer noise: random (drawn from the noise seed), const (the "
                    "maps saved with the generator), none", "random", choices=NOISE_MODES),
        IntParam("noise_seed", "Noise seed", "seed of random noise (default: the picture's seed)", None, min=0,
                 max=2**32 - 1),
        FloatParam("noise_strength", "Noise strength", "multiplies every noise map", 1.0, min=0.0, max=10.0,
                   step=0.1),
        ChoiceParam("noise_layers", "Noise layers", "layers that get noise: coarse 4-8 px, middle 16-32 px, "
                    "fine 64 px and up", "all", choices=NOISE_LAYERS),
        IntParam("mix_seed", "Mix seed", "a second seed whose styles replace some layers' (style mixing)", None,
                 min=0, max=2**32 - 1),
        ChoiceParam("mix_styles", "Mixed layers", "which layers take the mix seed's styles: coarse (pose, "
                    "layout), middle (features), fine (colours, texture)", "fine", choices=LAYER_GROUPS),
        IntParam("crossover", "Crossover", "the first layer (row of W+) that takes the mix seed's styles; all "
                 "later ones do too (replaces Mixed layers)", None, min=1, max=64),
        IntParam("size", "Size", "side of each picture in pixels (0 = the generator's resolution)", 0, min=0,
                 max=4096),
        ChoiceParam("upscale", "Enlarge by", "how a Size above the generator's resolution is reached: resize "
                    "(smooth) or super-resolution (the perceptual-sr method's ×4 network, sharper)", "resize",
                    choices=UPSCALES),
    ))


#: How render enlarges a picture: an antialiased resize, or the perceptual-sr method (then a resize to Size).
UPSCALES = ("resize", "super-resolution")


def _latent_files(params: Params) -> None:
    if params.latent is not None and params.save_latent is not None and \
            Path(params.latent).resolve() == Path(params.save_latent).resolve():
        raise ParameterError("save_latent", "is the file --latent reads", hint="save to another file")


def project_schema(models: Sequence[str], classes: Sequence[str], default: str) -> Schema:
    """The parameters of ``stylegan-project``."""
    return Schema(params=(
        *_generator_params(models, default),
        _collection_param(classes, "the class the picture is projected into (default: 'photo' if the "
                          "generator has it, else its first)"),
        IntParam("steps", "Steps", "optimisation steps of the projection (200: fast, 1000: the papers)", 300,
                 min=1, max=10000),
        FloatParam("learning_rate", "Learning rate", "Adam's peak learning rate (ramped up over the first 5% "
                   "and down over the last 25% of the steps)", 0.1, min=1e-4, max=1.0),
        FloatParam("perceptual_weight", "Perceptual weight", "weight of the VGG feature distance", 1.0, min=0.0,
                   max=100.0),
        FloatParam("pixel_weight", "Pixel weight", "weight of the mean squared pixel difference", 1.0, min=0.0,
                   max=100.0),
        FloatParam("noise_regularize", "Noise regularisation", "keeps the optimised noise maps free of "
                   "structure (their autocorrelation, at every scale)", 1e5, min=0.0, max=1e7),
        BoolParam("from_average", "Start from the average", "start from the average style (else from the "
                  "style of --seed)", True),
        IntParam("style_seed", "Style seed", "take the chosen layers' styles from this seed's picture (a second "
                 "image given as Styles from wins)", None, min=0, max=2**32 - 1),
        ChoiceParam("restyle_layers", "Restyled layers", "layers whose styles come from the style seed or image: "
                    "coarse (layout), middle, fine (colours, texture)", "fine", choices=LAYER_GROUPS),
        *_truncation_params(),
        PathParam("latent", "Latent file", "a projection saved with --save-latent: skips the projection", None),
        PathParam("save_latent", "Save latent", "write the projection (W+ and noise maps) to this file", None,
                  must_exist=False),
    ), checks=(_latent_files,))


def _train_inputs(params: Params) -> None:
    if not params.data:
        raise ParameterError("data", "is required", hint="give --data DIR (or NAME=DIR,NAME=DIR for classes)")
    for item in params.data:
        name, _, folder = item.rpartition("=")
        if not Path(folder).expanduser().is_dir():
            raise ParameterError("data", f"no such folder: {folder!r}", hint="check the path")
        if name and ("/" in name or not name.strip()):
            raise ParameterError("data", f"class name {name!r} is not a plain name", hint="use NAME=DIR")
    if params.resolution & (params.resolution - 1):
        raise ParameterError("resolution", f"{params.resolution} is not a power of two",
                             hint="use 8, 16, 32, 64, 128, 256, 512 or 1024")
    check_output_or_name(params)


TRAIN_SCHEMA = Schema(params=(
    ListParam("data", "Training images", "DIR, or NAME=DIR,NAME=DIR,… for a generator with classes (one class "
              "per folder; searched recursively)", None, item=StringParam("folder"), max_length=64),
    BoolParam("class_folders", "Classes from sub-folders", "with one DIR: every sub-folder is a class, named "
              "after it", False),
    PathParam("out", "Output model", "where to write the generator (default: your models folder, as NAME.pth)",
              None, must_exist=False),
    StringParam("name", "Name", "model name shown in menus", ""),
    IntParam("resolution", "Resolution", "side of the generated pictures (a power of two)", 64, min=8,
             max=1024),
    IntParam("resize_short", "Resize", "short side the images are resized to before random crops of "
             "--resolution (default: 1.25 × resolution; 0 = keep)", None, min=0, max=8192),
    BoolParam("mirror", "Mirror", "flip half the training images left to right", True),
    IntParam("channel_base", "Channel base", "channels at r px = min(channel max, channel base / r)", 2048,
             min=16, max=1 << 20),
    IntParam("channel_max", "Channel max", "the most channels of any layer", 128, min=1, max=1024),
    IntParam("z_dim", "z size", "size of the random code z", 256, min=1, max=1024),
    IntParam("w_dim", "w size", "size of the style code w", 256, min=1, max=1024),
    IntParam("mapping_layers", "Mapping layers", "fully connected layers of the mapping network", 8, min=1,
             max=16),
    FloatParam("mapping_lr_mul", "Mapping learning-rate factor", "the mapping network learns this much slower",
               0.01, min=1e-4, max=1.0),
    ChoiceParam("style_op", "Style operator", "modulated (weight demodulation, StyleGAN2) or adain (the 2019 "
                "paper)", "modulated", choices=("modulated", "adain")),
    StringParam("init", "Start from", "fine-tune this generator (a file, or an installed generator's name) "
                "instead of starting from random weights: its network settings and classes replace the options "
                "above, --data names some of its classes, the discriminator starts afresh", ""),
    FloatParam("d_warmup", "Discriminator warm-up", "thousands of images the discriminator trains alone at the "
               "start, before the generator moves: for --init, whose fresh discriminator cannot yet tell a trained "
               "generator's pictures from real ones", 0.0, min=0.0, max=1e6),
    IntParam("iterations", "Iterations", "training steps", 20000, min=1, max=10_000_000),
    IntParam("batch_size", "Batch size", "images per step (per process under torchrun; with classes, split "
             "evenly over them and rounded up)", 8, min=1, max=256),
    FloatParam("learning_rate", "Learning rate", "Adam learning rate of both networks (β = 0, 0.99); a resumed "
               "run takes the one given now", 0.0025, min=1e-6, max=1.0),
    FloatParam("r1_gamma", "R1 γ", "weight of the gradient penalty on real images", 1.0, min=0.0, max=1000.0),
    IntParam("r1_every", "R1 every", "steps between gradient penalties (lazy regularisation)", 16, min=1,
             max=1000),
    FloatParam("mixing", "Mixing probability", "share of steps whose fakes mix two styles at a random layer",
               0.9, min=0.0, max=1.0),
    ListParam("augment", "Augmentations", "differentiable augmentations of every image the discriminator sees "
              "(DiffAugment); 'none' for none", ("color", "translation", "cutout"),
              item=ChoiceParam("augment", choices=(*AUGMENTS, "none"))),
    FloatParam("ema_kimg", "EMA half-life", "half-life of the averaged generator, in thousands of images", 2.5,
               min=0.0, max=1000.0),
    FloatParam("ema_rampup", "EMA ramp-up", "early on the half-life is at most this share of the images seen "
               "(0 = none)", 0.05, min=0.0, max=1.0),
    FloatParam("w_avg_beta", "w average decay", "decay of the average style's moving average", 0.995,
               min=0.0, max=1.0),
    FloatParam("kid_every", "KID every", "thousands of images between KID snapshots (the averaged generator "
               "measured against the training pictures and saved beside the model); 0 = none", 10.0, min=0.0,
               max=1e6),
    IntParam("kid_images", "KID images", "pictures generated per class for each KID snapshot (and training "
             "pictures compared, at most)", 200, min=10, max=100_000),
    *TRAINING_RUN_PARAMS,
), checks=(_train_inputs,))
