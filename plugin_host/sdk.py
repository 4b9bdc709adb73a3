"""The plugin SDK: everything a plugin's code imports from plugin_host, in one module.

::

    from plugin_host.sdk import ImageInput, IntParam, Method, Schema, hookimpl    # a hooks module
    from plugin_host.sdk import Params, RunContext, resize_max_side, tiled_apply  # a method's run.py

This module, :mod:`plugin_host.testing` (the conformance checks) and the names the package
``plugin_host`` itself exports are the public API; everything else in plugin_host is internal and
may change in any release, whatever its module is called (new internal modules start with ``_``).
The built-in methods import nothing else, and a test keeps it so.

Importing this module does not import torch, so a hooks module may import from it freely. The
names that need torch (imaging, encoders, losses, training, evaluation, LBFGS) and
``MethodConformance`` (pytest) are loaded when first used.

The reference, name by name, is ``docs/plugins/sdk.md``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import hookimpl
from ._shared_params import COLOR_MODES, PRESERVE_COLORS, TILE_SIZE, TRAINING_RUN_PARAMS, shift_weight_param
from .builtin_weights import DEFAULT_ENCODER
from .context import RunContext
from .errors import (Cancelled, ExitCode, InputImageError, MethodNotFound, ParameterError, PluginError,
                     PluginHostError, WeightsError)
from .image_files import IMAGE_SUFFIXES, image_files
from .method import DEFAULT_SUBMENU, GIMP_MENUS, Command, Method
from .plugins import PluginFailure, Registry, load_registry
from .progress import CancelToken, Progress
from .runner import Inputs, Result, Session
from .schema import (BoolParam, ChoiceParam, FloatParam, ImageInput, IntParam, ListParam, ModelParam, Param,
                     Params, PathParam, Schema, StringParam, WeightsParam)
from .weights.checkpoint import load_model_export, load_state_dict, load_strict, load_weights_file
from .weights.registry import PyPIWheelSource, UrlSource, WeightsEntry, ZipMemberSource
from .weights.user_models import (check_model_name, check_output_or_name, installed_models, package_model,
                                  packaged_models, read_card, user_model_path, user_models_dir, write_card)

if TYPE_CHECKING:  # pragma: no cover - what _LAZY loads, spelt out for type checkers and editors
    from .encoders import VGGEncoder, build_encoder, channel_scales, layer_names, normalise
    from .encoders.vgg import VGG_CONFIGS
    from .evaluation import (content_distance, content_ratio, descriptor_distance, nearest_collection,
                             periodic_peak, style_descriptor)
    from .imaging import (EncoderNormalize, LoadedImage, from_encoder_input, from_pil, load_image,
                          match_color_statistics, match_histograms, pad_to_min_side, preserve_colors,
                          preserve_luminance, resize_max_side, resize_to, rgb_to_ycbcr, save_image, scale,
                          tile_grid, tiled_apply, to_encoder_input, to_pil, ycbcr_to_rgb)
    from .imaging.tiling import frozen_instance_norm
    from .losses import (content_loss, gram_matrix, gram_style_loss, mean_std, mean_std_style_loss,
                         shift_equivariance_loss, total_variation_loss)
    from .memory import heap_kept, large_blocks_mapped
    from . import nhwc
    from .optim import LBFGS
    from .testing import MethodConformance
    from .training import (DistributedInfo, ImageFolder, JsonlLog, TrainingRun, export_model, infinite_batches,
                           init_distributed, load_checkpoint, restore, run_steps, save_checkpoint, save_grid,
                           unwrap, update_ema, wrap_ddp)

#: Names loaded on first use (their modules import torch, or pytest), by the module that defines them.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("VGGEncoder", "build_encoder", "channel_scales", "layer_names", "normalise"), ".encoders"),
    "VGG_CONFIGS": ".encoders.vgg",
    **dict.fromkeys(("content_distance", "content_ratio", "descriptor_distance", "nearest_collection",
                     "periodic_peak", "style_descriptor"), ".evaluation"),
    **dict.fromkeys(("EncoderNormalize", "LoadedImage", "from_encoder_input", "from_pil", "load_image",
                     "match_color_statistics", "match_histograms", "pad_to_min_side", "preserve_colors",
                     "preserve_luminance", "resize_max_side", "resize_to", "rgb_to_ycbcr", "save_image", "scale",
                     "tile_grid", "tiled_apply", "to_encoder_input", "to_pil", "ycbcr_to_rgb"), ".imaging"),
    "frozen_instance_norm": ".imaging.tiling",
    **dict.fromkeys(("content_loss", "gram_matrix", "gram_style_loss", "mean_std", "mean_std_style_loss",
                     "shift_equivariance_loss", "total_variation_loss"), ".losses"),
    **dict.fromkeys(("heap_kept", "large_blocks_mapped"), ".memory"),
    "nhwc": ".nhwc",  # a module: channels-last inference helpers
    "LBFGS": ".optim",
    "MethodConformance": ".testing",
    **dict.fromkeys(("DistributedInfo", "ImageFolder", "JsonlLog", "TrainingRun", "export_model",
                     "infinite_batches", "init_distributed", "load_checkpoint", "restore", "run_steps",
                     "save_checkpoint", "save_grid", "unwrap", "update_ema", "wrap_ddp"), ".training"),
}

__all__ = sorted([
    # the contract: hooks, what a plugin registers, parameters
    "hookimpl", "Method", "Command", "GIMP_MENUS", "DEFAULT_SUBMENU", "ImageInput", "Schema", "Param",
    "Params", "FloatParam", "IntParam", "BoolParam", "ChoiceParam", "StringParam", "PathParam", "ModelParam",
    "ListParam", "WeightsParam", "PRESERVE_COLORS", "TILE_SIZE", "COLOR_MODES", "TRAINING_RUN_PARAMS",
    "shift_weight_param",
    # weights and models
    "WeightsEntry", "UrlSource", "PyPIWheelSource", "ZipMemberSource", "DEFAULT_ENCODER", "packaged_models",
    "package_model", "installed_models", "user_models_dir", "user_model_path", "check_model_name",
    "check_output_or_name", "read_card",
    "write_card", "load_weights_file", "load_model_export", "load_state_dict", "load_strict",
    # errors
    "PluginHostError", "ParameterError", "InputImageError", "WeightsError", "MethodNotFound", "PluginError",
    "Cancelled", "ExitCode",
    # running methods
    "RunContext", "Inputs", "Result", "Session", "Progress", "CancelToken", "load_registry", "Registry",
    "PluginFailure", "image_files", "IMAGE_SUFFIXES",
    *_LAZY,
])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plugin_host.sdk' has no attribute {name!r}")
    value = importlib.import_module(module, __package__)
    if module != f".{name}":
        value = getattr(value, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
