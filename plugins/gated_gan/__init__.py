"""Gated-GAN (Chen, Xu, Yang & Tao, IEEE TIP 2019): one generator, many styles, mixed by a gate.

Hook implementations only: the method (``run.py``), its training (``train.py``) and its models, all
weights entries of kind ``gated-gan``: those shipped in ``weights/`` (a JSON card beside each file) and
those in the user's models folder (what ``plugin_host train gated-gan`` writes, or a PyTorch-port
checkpoint with a card). The style names on the models' cards are the choices of ``--style``, so they
are read here, from JSON; nothing here imports torch.
"""
from pathlib import Path

from plugin_host.sdk import Command, Method, WeightsEntry, hookimpl, installed_models, packaged_models

from .schema import CONTENT, MODEL_KIND, PORT_STYLES, SHIPPED_MODEL, TRAIN_SCHEMA, run_schema

SHIPPED = Path(__file__).resolve().parent / "weights"


def _models() -> list[WeightsEntry]:
    return [*packaged_models(SHIPPED, MODEL_KIND), *installed_models(MODEL_KIND)]


def _styles(models: list[WeightsEntry]) -> list[str]:
    """Every model's style names, in first-seen order (a card without names: the port's four)."""
    names: list[str] = []
    for entry in models:
        styles = (entry.extra.get("card") or {}).get("styles")
        if not isinstance(styles, list) or not styles:
            styles = PORT_STYLES
        names += [str(name) for name in styles if str(name) not in names]
    return names


@hookimpl
def register_methods(register):
    models = _models()
    default = models[0].name if models and SHIPPED_MODEL not in {m.name for m in models} else SHIPPED_MODEL
    register(Method(
        name="gated-gan",
        title="Gated-GAN (multi-style)",
        description=("One network trained on several painting collections: pick a collection's style, blend "
                     "styles with soft gates, or dial the strength down to the photo's reconstruction. "
                     "Train your own collections with `plugin_host train gated-gan`."),
        inputs=CONTENT,
        schema=run_schema(_styles(models), default),
        run="plugin_host_gated_gan.run:run",
        train="plugin_host_gated_gan.train:train",
        train_schema=TRAIN_SCHEMA,
    ))


@hookimpl
def register_weights(register):
    for entry in _models():
        register(entry)


@hookimpl
def register_commands(register):
    from .evaluate import add_arguments, handle

    register(Command("gated-gan-eval", "style accuracy, content ratio, artefacts and identity PSNR of a Gated-GAN "
                     "model on held-out photos (the quality bar)", add_arguments, handle))
