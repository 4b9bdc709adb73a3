"""``plugin_host`` with toy methods, run as a child process by the server tests.

``python serve_child.py serve ...`` is ``plugin_host serve ...`` with four more methods:
``spin`` (torch work until its steps are done or it is cancelled, checking between steps),
``raiser`` (raises the BaseException its parameter names), ``quick`` (an inverse) and ``styled``
(the same, with style images).
They need no weights, so signals and shutdown are tested in seconds.
"""
from __future__ import annotations

import sys
import types

from plugin_host import Method, hookimpl
from plugin_host.schema import ChoiceParam, ImageInput, IntParam, Schema

RAISED = {"SystemExit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt, "GeneratorExit": GeneratorExit,
          "BaseException": BaseException}


def spin_run(inputs, params, ctx):
    import torch

    ctx.progress.stage("spin", total=params.steps)
    work, kernel = torch.rand(1, 16, params.size, params.size), torch.rand(16, 16, 3, 3) / 72
    for _ in range(params.steps):
        ctx.cancel.raise_if_cancelled()
        for _ in range(5):  # long enough in C++ (GIL released) that a signal lands inside torch
            work = torch.nn.functional.conv2d(work, kernel, padding=1).tanh()
        ctx.progress.advance()
    return 1 - inputs["content"]


def raiser_run(inputs, params, ctx):
    raise RAISED[params.kind]("raised by the raiser method")


def quick_run(inputs, params, ctx):
    return 1 - inputs["content"]


def _register(register):
    content = (ImageInput("content"),)
    register(Method(name="spin", title="Spin", description="torch work, step by step", inputs=content,
                    schema=Schema((IntParam("steps", default=3, min=1, max=100_000),
                                   IntParam("size", default=64, min=8, max=1024))), run=spin_run))
    register(Method(name="raiser", title="Raiser", description="raises a BaseException", inputs=content,
                    schema=Schema((ChoiceParam("kind", choices=tuple(RAISED), default="SystemExit"),)),
                    run=raiser_run))
    register(Method(name="quick", title="Quick inverse", description="inverts", inputs=content, schema=Schema(),
                    run=quick_run))
    register(Method(name="styled", title="Styled inverse", description="inverts; takes style images too",
                    inputs=(*content, ImageInput("style", role="style", multiple=True, weighted=True)),
                    schema=Schema(), run=quick_run))


def toy_plugin() -> types.ModuleType:
    plugin = types.ModuleType("serve_toys")
    plugin.register_methods = hookimpl(_register)
    return plugin


if __name__ == "__main__":
    from plugin_host.cli import main
    from plugin_host.plugins import load_registry

    sys.exit(main(sys.argv[1:], registry=load_registry(extra_plugins=[("serve_toys", toy_plugin())])))
