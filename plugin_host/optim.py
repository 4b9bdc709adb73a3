"""Optimisers for methods that optimise in eager mode, without loading torch's compiler.

``torch.optim.Optimizer`` guards ``add_param_group``, ``zero_grad`` and ``state_dict`` against
tracing by ``torch.compile``; the guard imports ``torch._dynamo`` on first call: 75 MiB of resident
memory and a quarter of a second, for a run that never compiles. Gatys at 512² must fit in 1 GB,
so its L-BFGS calls the undecorated methods (``functools.wraps`` keeps them as ``__wrapped__``;
where a torch version has no guard, the methods are used as they are).
"""
from __future__ import annotations

from typing import Any, Callable

import torch


def _unguarded(method: Callable[..., Any]) -> Callable[..., Any]:
    return getattr(method, "__wrapped__", method)


class LBFGS(torch.optim.LBFGS):
    """``torch.optim.LBFGS``, the same arguments and steps, minus the import of ``torch._dynamo``."""

    add_param_group = _unguarded(torch.optim.Optimizer.add_param_group)
    zero_grad = _unguarded(torch.optim.Optimizer.zero_grad)
