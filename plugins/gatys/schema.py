"""Inputs and parameters of the Gatys method, declared once."""
from plugin_host.sdk import (DEFAULT_ENCODER, PRESERVE_COLORS, ChoiceParam, FloatParam, ImageInput, IntParam,
                             ListParam, ModelParam, ParameterError, Params, PathParam, Schema)

VGG_LAYERS = tuple(f"{kind}{block}_{i}" for block, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4))
                   for i in range(1, n + 1) for kind in ("conv", "relu"))

INPUTS = (
    ImageInput("content", label="Content image", help="the picture to restyle", role="content"),
    ImageInput("style", label="Style images", help="painting(s) whose style to take", role="style",
               multiple=True, weighted=True),
)


def _weights_match_layers(params: Params) -> None:
    for layers, weights in (("content_layers", "content_layer_weights"), ("style_layers", "style_layer_weights")):
        given = params[weights]
        if given is not None and len(given) != len(params[layers]):
            raise ParameterError(weights, f"{len(given)} weights for {len(params[layers])} layers",
                                 hint=f"give one weight per entry of {layers}")


def _init_file_given(params: Params) -> None:
    if params.init == "file" and params.init_file is None:
        raise ParameterError("init_file", "init is 'file' but no file was given", hint="set --init-file PATH")


SCHEMA = Schema(params=(
    FloatParam("content_weight", "Content weight", "how strongly the content is kept", 1.0, min=0.0, max=1e6),
    FloatParam("style_weight", "Style weight", "how strongly the style is imposed", 20.0, min=0.0, max=1e12),
    FloatParam("tv_weight", "Smoothness (TV) weight", "total-variation weight against pixel noise", 10.0,
               min=0.0, max=1e6),
    ListParam("content_layers", "Content layers", "VGG layers whose activations keep the content",
              ("relu4_2",), item=ChoiceParam("layer", choices=VGG_LAYERS)),
    ListParam("content_layer_weights", "Content layer weights", "one weight per content layer (default equal)",
              None, item=FloatParam("weight", min=0.0)),
    ListParam("style_layers", "Style layers", "VGG layers whose Gram matrices carry the style",
              ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), item=ChoiceParam("layer", choices=VGG_LAYERS)),
    ListParam("style_layer_weights", "Style layer weights", "one weight per style layer (default equal)", None,
              item=FloatParam("weight", min=0.0)),
    ChoiceParam("optimizer", "Optimiser", "L-BFGS converges in fewer steps; Adam uses less memory", "lbfgs",
                choices=("lbfgs", "adam")),
    FloatParam("learning_rate", "Learning rate", "step size (default 1 for L-BFGS, 0.02 for Adam)", None,
               min=1e-6, max=100.0),
    IntParam("iterations", "Iterations", "optimisation steps at the finest scale", 300, min=1, max=10000),
    ChoiceParam("init", "Start from", "initial image", "content", choices=("content", "noise", "style", "file")),
    PathParam("init_file", "Start image", "image to start from when init is 'file'", None),
    FloatParam("style_scale", "Style scale", "style image size relative to the output", 1.0, min=0.05, max=4.0),
    IntParam("levels", "Scales", "coarse-to-fine levels (1 = single scale); each level doubles the size", 1,
             min=1, max=5),
    IntParam("level_iterations", "Iterations per coarse level", "steps at each coarser level", 100,
             min=1, max=10000),
    ModelParam("encoder", "Encoder", "VGG network that measures content and style", DEFAULT_ENCODER,
               model_kind="encoder"),
    ChoiceParam("pooling", "Pooling", "average pooling gives smoother results", "max", choices=("max", "avg")),
    PRESERVE_COLORS,
    IntParam("max_size", "Maximum size", "longest side of the result in pixels", 512, min=16, max=4096),
    IntParam("save_every", "Preview every", "write an intermediate image every N steps (0 = never)", 0,
             min=0, max=10000),
), checks=(_weights_match_layers, _init_file_given))
