"""plugin_host: neural style filters for GIMP, for plugin authors and for the command line.

For plugin code, the public API is :mod:`plugin_host.sdk` (everything a plugin imports, in one
module; docs/plugins/sdk.md) and :mod:`plugin_host.testing`. This package exports the same
declaration classes and errors, and ``load_method`` for using methods from Python. Every other
module is internal. Importing this package does not import torch.
"""
from __future__ import annotations

import pluggy

from .errors import Cancelled, InputImageError, ParameterError, PluginHostError, WeightsError
from .method import Command, Method
from .schema import (BoolParam, ChoiceParam, FloatParam, ImageInput, IntParam, ListParam, ModelParam,
                     PathParam, Schema, StringParam)
from .weights.registry import PyPIWheelSource, UrlSource, WeightsEntry

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("plugin_host")

__all__ = [
    "hookimpl", "Method", "Command", "Schema", "ImageInput", "FloatParam", "IntParam", "BoolParam",
    "ChoiceParam", "StringParam", "PathParam", "ModelParam", "ListParam", "WeightsEntry", "UrlSource",
    "PyPIWheelSource", "PluginHostError", "ParameterError", "InputImageError", "WeightsError",
    "Cancelled", "load_method", "__version__",
]


def load_method(name: str, **kwargs):  # noqa: ANN201 - documented in api.load_method
    """Load a method by name for use from Python; see :func:`plugin_host.api.load_method`."""
    from .api import load_method as _load

    return _load(name, **kwargs)
