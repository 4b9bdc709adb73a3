"""Perceptual-loss feed-forward networks (Johnson, Alahi & Fei-Fei, ECCV 2016).

Two methods: ``perceptual`` (a network trained once per style, applied in one pass) and
``perceptual-sr`` (×4/×8 super-resolution). Hook implementations only; nothing here imports
torch. Models come from three places, all as weights entries of kind ``perceptual-style`` or
``perceptual-sr``: the ones shipped in ``weights/`` (a JSON card beside each file), the published
pytorch/examples checkpoints (downloadable), and the user's models folder (what
``plugin_host train perceptual`` writes).
"""
from pathlib import Path

from plugin_host.sdk import (Command, Method, WeightsEntry, ZipMemberSource, hookimpl, installed_models,
                             packaged_models)

from .schema import CONTENT, SR_KIND, SR_SCHEMA, SR_TRAIN_SCHEMA, STYLE_KIND, STYLE_SCHEMA, STYLE_TRAIN_SCHEMA

SHIPPED = Path(__file__).resolve().parent / "weights"

# pytorch/examples fast_neural_style: one zip of four models; upstream publishes git blob ids, not sha256.
_EXAMPLES_ZIP = "https://www.dropbox.com/s/lrvwfehqdcxoza8/saved_models.zip?dl=1"
_EXAMPLES_BLOBS = {
    "candy": "f7767f70ac45fe717f26f350ae3548c75c81d6bd",
    "mosaic": "7b75d0d8294a6b5f5d74ebf0d588afe4166f6288",
    "rain_princess": "3a20f1710c4f06d78c2d3ff99db1ae9cad164032",
    "udnie": "85e3845697f0acdb610d983d2dc29db76786b0d2",
}
PUBLISHED = tuple(
    WeightsEntry(name=f"fast-neural-style-{style.replace('_', '-')}", file=f"fast-neural-style-{style}.pth",
                 model_kind=STYLE_KIND, architecture="johnson-transformer", input_convention="raw",
                 source=ZipMemberSource(_EXAMPLES_ZIP, f"saved_models/{style}.pth", "fast-neural-style-models.zip"),
                 sha256=None, git_blob_sha1=blob, licence="BSD-3-Clause (pytorch/examples)",
                 description=f"pytorch/examples fast_neural_style '{style}' (instance norm, full width)")
    for style, blob in _EXAMPLES_BLOBS.items())


@hookimpl
def register_methods(register):
    register(Method(
        name="perceptual",
        title="Fast Style (Perceptual Losses)",
        description=("Applies a network trained for one style in a single pass: fast enough for large "
                     "images, with a strength slider. Train your own styles with `plugin_host train perceptual`."),
        inputs=CONTENT, schema=STYLE_SCHEMA,
        run="plugin_host_perceptual.run:run_style",
        train="plugin_host_perceptual.train:train_style", train_schema=STYLE_TRAIN_SCHEMA,
        weights=tuple(e.name for e in PUBLISHED),
    ))
    register(Method(
        name="perceptual-sr",
        title="Super-Resolution (Perceptual Losses)",
        description=("Enlarges an image 4× or 8× with a network trained on VGG feature losses (sharper "
                     "textures) or pixel losses (closer to the original on average)."),
        inputs=CONTENT, schema=SR_SCHEMA, menu="Enhance",
        run="plugin_host_perceptual.run:run_sr",
        train="plugin_host_perceptual.train:train_sr", train_schema=SR_TRAIN_SCHEMA,
    ))


@hookimpl
def register_weights(register):
    for entry in packaged_models(SHIPPED):  # style and SR models
        register(entry)
    for kind in (STYLE_KIND, SR_KIND):
        for entry in installed_models(kind):
            register(entry)
    for entry in PUBLISHED:
        register(entry)


@hookimpl
def register_commands(register):
    from .evaluate import add_arguments, handle

    register(Command("sr-eval", "PSNR/SSIM (Y channel) of bicubic and super-resolution models over HR images",
                     add_arguments, handle))
