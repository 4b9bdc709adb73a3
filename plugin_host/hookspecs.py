"""The plugin contract: every hook a plugin_host plugin may implement.

A plugin is a module (or object) with functions decorated by ``plugin_host.hookimpl`` and
named after the hooks below, published on the ``plugin_host`` entry-point group::

    [project.entry-points.plugin_host]
    my_method = "my_package"

Collection hooks receive a ``register`` callback instead of returning a list: call it once
per thing you contribute. The host validates each call and attributes problems to your
plugin, so one bad entry never stops the other plugins. An implementation may accept any
subset of a hook's arguments. Nothing here imports torch; keep your hook modules as cheap,
and import heavy code inside ``run``/``train`` (name them as ``"module:function"`` strings).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from .method import Command, Method
    from .weights.registry import WeightsEntry

hookspec = pluggy.HookspecMarker("plugin_host")


# -- Contributions -------------------------------------------------------------------------

@hookspec
def register_methods(register: "Callable[[Method], None]") -> None:
    """Contribute style methods.

    Called once when the host loads its plugins, before any method runs.

    :param register: call ``register(Method(...))`` for each method. An invalid declaration
        (bad name, a name another plugin already took, an ill-formed schema, a name or flag
        the host's options own, a ``run`` that is neither callable nor a ``"module:function"``
        string) is not registered: it is
        recorded as a failure of your plugin, shown by ``plugin_host list``, and the rest of
        your plugin keeps working. ``register`` itself returns ``None`` and does not raise.
    :return: nothing; return values are ignored.

    .. versionadded:: 0.1
    """


@hookspec
def register_weights(register: "Callable[[WeightsEntry], None]") -> None:
    """Contribute entries to the weights registry (pretrained files your methods use).

    Called once when the host loads its plugins. Entries appear in ``plugin_host weights
    list`` and as choices of every :class:`~plugin_host.schema.ModelParam` of their kind.

    :param register: call ``register(WeightsEntry(...))`` per file. Names and file names are
        global: one another plugin registered is rejected with a reason. The built-in plugins
        register first, so theirs can never be taken.
    :return: nothing.

    .. versionadded:: 0.1
    """


@hookspec
def register_commands(register: "Callable[[Command], None]") -> None:
    """Contribute subcommands to the ``plugin_host`` command line.

    Called whenever the host loads its plugins (every CLI call, every ``Session``), so keep
    it cheap. ``plugin_host train METHOD``
    already exists for every method with ``train``; use this for anything else (evaluation,
    conversion tools).

    :param register: call ``register(Command(name, help, add_arguments, handler))``. A name
        that clashes with a built-in command or another plugin's is rejected.
    :return: nothing.

    .. versionadded:: 0.1
    """
