"""AdaIN (Huang & Belongie, ICCV 2017): arbitrary style in one forward pass.

Hook implementations only: the method (``run.py``), its training (``train.py``) and the
decoders: the one shipped in ``weights/`` (with a JSON card giving its sha256), the published one
(downloadable), and those the user trained (cards in the user models folder). Nothing here imports torch.
"""
from pathlib import Path

from plugin_host.sdk import Method, UrlSource, WeightsEntry, hookimpl, installed_models, packaged_models

from .schema import DECODER_KIND, INPUTS, SCHEMA, TRAIN_SCHEMA

SHIPPED = Path(__file__).resolve().parent / "weights"

DECODERS = (
    WeightsEntry(
        name="adain-decoder-vgg19", file="decoder.pth", model_kind="adain-decoder", architecture="adain-vgg19",
        input_convention="raw",
        source=UrlSource("https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/decoder.pth"),
        sha256=None, licence="MIT (naoto0804/pytorch-AdaIN)",
        description="The published AdaIN decoder, for the normalised VGG19 (adain-vgg19-normalised).",
        check="plugin_host_adain.models:check_decoder_file", extra={"encoder": "adain-vgg19-normalised"}),
)


@hookimpl
def register_methods(register):
    register(Method(
        name="adain",
        title="Arbitrary Style (AdaIN)",
        description=("Gives the content's VGG features the per-channel mean and spread of the style's, "
                     "then decodes them: any style in one pass, with a content/style slider, style "
                     "blending, and one style per masked region."),
        inputs=INPUTS,
        schema=SCHEMA,
        run="plugin_host_adain.run:run",
        train="plugin_host_adain.train:train",
        train_schema=TRAIN_SCHEMA,
        weights=tuple(entry.name for entry in DECODERS),
    ))


@hookimpl
def register_weights(register):
    for entry in (*packaged_models(SHIPPED, DECODER_KIND), *DECODERS,
                  *installed_models(DECODER_KIND)):
        register(entry)
