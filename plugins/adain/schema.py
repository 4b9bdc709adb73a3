"""Inputs and parameters of AdaIN, for stylising and for training, declared once."""
from plugin_host.sdk import (DEFAULT_ENCODER, PRESERVE_COLORS, TILE_SIZE, TRAINING_RUN_PARAMS, BoolParam, FloatParam,
                             ImageInput, IntParam, ModelParam, ParameterError, Params, PathParam, Schema, StringParam,
                             shift_weight_param)

DEFAULT_DECODER = "adain-decoder-vgg16-hed"
DECODER_KIND = "adain-decoder"

INPUTS = (
    ImageInput("content", label="Content image", help="the picture to restyle", role="content"),
    ImageInput("style", label="Style images", help="painting(s) whose style to take", role="style",
               multiple=True, weighted=True),
    ImageInput("mask", label="Masks", help="one mask per style: white where that style applies", role="mask",
               required=False, multiple=True),
)

SCHEMA = Schema(params=(
    FloatParam("strength", "Style strength", "0 keeps the content (decoder reconstruction), 1 is full style", 1.0,
               min=0.0, max=1.0, step=0.05, renamed_from=("alpha",)),
    ModelParam("decoder", "Decoder", "trained decoder; it fixes the encoder it was trained with",
               DEFAULT_DECODER, model_kind=DECODER_KIND),
    PRESERVE_COLORS,
    IntParam("max_size", "Maximum size", "longest side of the result in pixels (0 = keep)", 1024,
             min=0, max=16384, renamed_from=("content_size",)),
    IntParam("style_size", "Style size", "longest side the style image is read at (0 = keep)", 512,
             min=0, max=4096),
    TILE_SIZE,
))


def _folders_and_output_given(params: Params) -> None:
    for name in ("content_dir", "style_dir", "out"):
        if params[name] is None:
            raise ParameterError(name, "is required", hint=f"give --{name.replace('_', '-')} PATH")


TRAIN_SCHEMA = Schema(params=(
    PathParam("content_dir", "Content photos", "folder of training photos (searched recursively)", None,
              directory=True, cli_aliases=("content",)),
    PathParam("style_dir", "Style paintings", "folder of training paintings (searched recursively)", None,
              directory=True, cli_aliases=("style",)),
    PathParam("out", "Output model", "where to write the trained decoder (fp16, with metadata and a JSON card; "
              "put both in your models folder to use it)", None, must_exist=False),
    ModelParam("encoder", "Encoder", "VGG the decoder is trained for", DEFAULT_ENCODER, model_kind="encoder"),
    IntParam("iterations", "Iterations", "training steps", 20000, min=1, max=10_000_000),
    IntParam("batch_size", "Batch size", "images per step (per process under torchrun)", 8, min=1, max=256),
    IntParam("crop", "Crop", "random crop size in pixels", 128, min=32, max=1024),
    IntParam("resize_short", "Resize", "short side before cropping (0 = keep)", 160, min=0, max=4096),
    FloatParam("learning_rate", "Learning rate", "Adam learning rate", 1e-4, min=1e-7, max=1.0),
    FloatParam("lr_decay", "Learning-rate decay", "lr / (1 + decay × step)", 5e-5, min=0.0, max=1.0),
    FloatParam("style_weight", "Style weight (λ)", "weight of the mean/std style loss", 3.0, min=0.0, max=1e6),
    BoolParam("normalize_features", "Normalise features",
              "divide each encoder channel by its mean activation on the training images before the losses, "
              "as the paper's normalised VGG19 is built (keeps λ meaningful for any encoder)", True),
    FloatParam("identity_weight", "Identity weight",
               "weight of a pixel loss asking the decoder to give back content and style from their own "
               "features (SANet's identity loss; 0 = the AdaIN paper's loss)", 200.0, min=0.0, max=1e6),
    FloatParam("width", "Decoder width", "channel multiplier of the decoder (1 = as the encoder)", 1.0,
               min=0.0625, max=2.0),
    IntParam("reconstruction_steps", "Reconstruction steps",
             "first train the decoder to give photos and paintings back from their own features (pixel "
             "loss) for this many steps, then with the AdaIN loss", 200, min=0, max=10_000_000),
    shift_weight_param(0.1),
    BoolParam("colour_path", "Colour path", "give the decoder the picture's 8x8 block colours beside relu4_1 "
              "(AdaIN gives them the style's colour statistics); it adds detail to them, enlarged, instead of "
              "guessing the colours from relu4_1, which the default encoder carries weakly", True),
    BoolParam("detail_path", "Detail path", "give the decoder the picture's relu3_1 too (AdaIN gives it the "
              "style's relu3_1 statistics), joined after its first upsampling: relu4_1's grid, 8 px, is coarse for "
              "the decoder to redraw the picture's detail from", True),
    StringParam("start_from", "Start from", "a decoder to fine-tune (an installed decoder's name or a file); "
                "empty: a random start", ""),
    *TRAINING_RUN_PARAMS,
), checks=(_folders_and_output_given,))
