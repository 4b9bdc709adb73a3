"""Gatys et al. (CVPR 2016) neural style transfer: optimise an image to match content and style features.

Hook implementations only; the work is in ``run.py``, the parameters in ``schema.py``.
Nothing here imports torch, so listing plugins stays fast.
"""
from plugin_host.sdk import Method, hookimpl

from .schema import INPUTS, SCHEMA


@hookimpl
def register_methods(register):
    register(Method(
        name="gatys",
        title="Neural Style (Gatys)",
        description=("Optimises the picture until its VGG features match the content image and its "
                     "feature correlations (Gram matrices) match the style images. Slow but faithful; "
                     "works with any style image and needs no training."),
        inputs=INPUTS,
        schema=SCHEMA,
        run="plugin_host_gatys.run:run",
        weights=("vgg16-caffe-hed",),
    ))
