"""An example style pack: models for plugin_host's ``perceptual`` method, registered from ``models/``."""
from pathlib import Path

from plugin_host.sdk import hookimpl, packaged_models

MODELS = Path(__file__).resolve().parent / "models"


@hookimpl
def register_weights(register):
    for entry in packaged_models(MODELS):
        register(entry)
