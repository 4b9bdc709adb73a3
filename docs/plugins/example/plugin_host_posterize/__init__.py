"""Posterize: an example plugin_host method that reduces each colour channel to a few tones.

This module only declares the method; ``run.py`` does the work and is imported the first
time the method runs, so ``plugin_host list`` stays fast and never imports torch.
"""
from plugin_host.sdk import BoolParam, FloatParam, ImageInput, IntParam, Method, Schema, hookimpl

SCHEMA = Schema(params=(
    IntParam("levels", "Levels", "tones kept per colour channel", 4, min=2, max=64),
    FloatParam("strength", "Strength", "mix of posterized (1) and original (0) image", 1.0,
               min=0.0, max=1.0, step=0.05),
    BoolParam("smooth", "Smooth first", "blur slightly before quantising, for cleaner areas", False),
))


@hookimpl
def register_methods(register):
    register(Method(
        name="posterize",
        title="Posterize",
        description=("Reduces every colour channel to a few evenly spaced tones, like a screen print. "
                     "Fast, needs no weights; an example of how to write a plugin_host method."),
        inputs=(ImageInput("content", label="Image", help="the picture to posterize"),),
        schema=SCHEMA,
        run="plugin_host_posterize.run:run",
        menu="Artistic",
    ))
