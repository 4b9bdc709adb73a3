"""StyleGAN (Karras, Laine & Aila, CVPR 2019): the style-based generator, its mapping network and per-layer noise.

Two methods: ``stylegan`` renders pictures from seeds (truncation, noise control, style mixing) and reads
no image; ``stylegan-project`` projects the user's picture into the generator's W+ space and renders it
again with some layers' styles taken from a seed or from a second picture. ``plugin_host train stylegan``
trains a generator. Hook implementations only; nothing here imports torch. Generators are weights
entries of kind ``stylegan-generator``: the one shipped in ``weights/`` (``stylegan-paintings``) and those
in the user's models folder (what the trainer writes, or a rosinality checkpoint with a card); their
classes, read from the cards, are the choices of ``--collection``.
"""
from pathlib import Path

from plugin_host.sdk import Command, Method, WeightsEntry, hookimpl, installed_models, packaged_models

from .schema import MODEL_KIND, PHOTO, SHIPPED_MODEL, TRAIN_SCHEMA, project_schema, render_schema

SHIPPED = Path(__file__).resolve().parent / "weights"


def _models() -> list[WeightsEntry]:
    return [*packaged_models(SHIPPED, MODEL_KIND), *installed_models(MODEL_KIND)]


def _classes(models: list[WeightsEntry]) -> list[str]:
    names: list[str] = []
    for entry in models:
        names += [str(c) for c in (entry.extra.get("card") or {}).get("classes") or () if str(c) not in names]
    return names


@hookimpl
def register_methods(register):
    models = _models()
    names = [m.name for m in models]
    default = names[0] if names and SHIPPED_MODEL not in names else SHIPPED_MODEL
    classes = _classes(models)
    register(Method(
        name="stylegan",
        title="StyleGAN Render",
        description=("Makes a new picture with a style-based generator: a seed gives its styles, truncation "
                     "makes it more typical, per-layer noise varies its fine detail, and a second seed can "
                     "lend the coarse, middle or fine styles (style mixing). Reads no image. Train a "
                     "generator with `plugin_host train stylegan`."),
        inputs=(),
        schema=render_schema(names, classes, default),
        run="plugin_host_stylegan.run:render",
        train="plugin_host_stylegan.train:train",
        train_schema=TRAIN_SCHEMA,
        menu="Render",
        creates_image=True,
    ))
    register(Method(
        name="stylegan-project",
        title="StyleGAN Restyle (projection)",
        description=("Finds the generator's styles that best redraw the picture (projection into W+), then "
                     "draws it again with some layers' styles from a seed or from a second picture: keep the "
                     "layout, take the colours and textures. Works best on pictures like the training data."),
        inputs=PHOTO,
        schema=project_schema(names, classes, default),
        run="plugin_host_stylegan.run:project_and_restyle",
    ))


@hookimpl
def register_weights(register):
    for entry in _models():
        register(entry)


@hookimpl
def register_commands(register):
    from .quality import add_arguments, handle

    register(Command("stylegan-eval", "KID of a StyleGAN generator per class against its training pictures, "
                     "beside the photos' distance, and its artefacts (the quality bar)", add_arguments, handle))
