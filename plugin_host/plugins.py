"""Plugin discovery: entry points → pluggy → a :class:`Registry` of methods, weights and commands.

Each entry point is loaded on its own, inside its own ``try``: a plugin that fails to import,
misspells a hook, raises in a hook or registers something invalid becomes a
:class:`PluginFailure` and the others keep working. Built-in methods come through the same
entry-point group as third-party ones, and register first whatever the names sort to, so a
name (a method, a weights entry or its file) a built-in registers stays the built-in's: another
plugin that registers it fails, with a reason naming both.

Environment:
    ``PLUGIN_HOST_DISABLE=a,b``     entry-point names not to load.
    ``PLUGIN_HOST_TRACE_PLUGINS=1`` print every hook call and its result to stderr.
"""
from __future__ import annotations

import importlib.metadata as metadata
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .errors import MethodNotFound, PluginError, did_you_mean
from .method import Command, Method
from .weights.registry import WeightsEntry

ENTRY_POINT_GROUP = "plugin_host"
#: The distribution whose entry points are the built-ins.
HOST_DISTRIBUTION = "plugin_host"
BUILTIN_COMMANDS = {"list", "plugins", "info", "run", "train", "weights", "serve", "gimp"}


@dataclass(frozen=True)
class PluginFailure:
    """A plugin, or one thing it registered, that could not be used."""

    plugin: str
    reason: str
    distribution: str | None = None
    version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "reason": self.reason,
                "distribution": self.distribution, "version": self.version}


@dataclass(frozen=True)
class PluginInfo:
    """A plugin: its entry-point name, distribution and version; ``builtin`` when plugin_host ships it.

    ``module`` is the import name of its hooks module (an entry point's value up to ``:``), where known.
    """

    name: str
    distribution: str | None
    version: str | None
    builtin: bool = False
    module: str | None = None

    def describe(self) -> str:
        """``plugin 'gatys' (built-in)`` or ``plugin 'x' (x-dist 1.0)``: how messages name it."""
        origin = "built-in" if self.builtin else " ".join(p for p in (self.distribution, self.version) if p)
        return f"plugin {self.name!r}" + (f" ({origin})" if origin else "")


@dataclass(frozen=True)
class RegisteredMethod:
    method: Method
    plugin: PluginInfo


@dataclass(frozen=True)
class PluginReport:
    """What one plugin contributed and what of it failed: a row of ``plugin_host plugins``.

    ``status`` is ``ok``; ``failed`` (nothing of it is usable); ``partly failed`` (some of what it
    registered was refused, the rest works); or ``disabled`` (named in ``PLUGIN_HOST_DISABLE``).
    """

    plugin: PluginInfo
    methods: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    status: str = "ok"

    def to_json(self) -> dict[str, Any]:
        info = self.plugin
        return {"plugin": info.name, "distribution": info.distribution, "version": info.version,
                "builtin": info.builtin, "module": info.module, "status": self.status,
                "methods": list(self.methods), "weights": list(self.weights), "commands": list(self.commands),
                "failures": list(self.failures)}


@dataclass
class Registry:
    """Everything the plugins contributed.

    ``plugins`` lists every plugin the host tried to load, in loading order (built-ins first),
    including those that failed; ``disabled`` those skipped for ``PLUGIN_HOST_DISABLE``.
    """

    methods: dict[str, RegisteredMethod] = field(default_factory=dict)
    weights: dict[str, WeightsEntry] = field(default_factory=dict)
    weights_plugin: dict[str, PluginInfo] = field(default_factory=dict)
    #: What is wrong with the user's own models (cards in the models folder) that were left out: their
    #: files, not any plugin, are at fault, and the entries they would have shadowed keep working.
    user_model_problems: list[str] = field(default_factory=list)
    commands: dict[str, Command] = field(default_factory=dict)
    commands_plugin: dict[str, PluginInfo] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    disabled: list[PluginInfo] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)
    #: Method name → the failure that took it out (refused at registration, or dropped later).
    failed_methods: dict[str, PluginFailure] = field(default_factory=dict)

    def drop_method(self, name: str, reason: str) -> None:
        """Take a registered method out, as a failure of the plugin that registered it."""
        entry = self.methods.pop(name)
        failure = _failure(entry.plugin, f"method {name!r}: {reason}")
        self.failures.append(failure)
        self.failed_methods[name] = failure

    def drop_command(self, name: str, reason: str) -> None:
        """Take a plugin's command out, as a failure of that plugin."""
        del self.commands[name]
        info = self.commands_plugin.pop(name, PluginInfo(name, None, None))
        self.failures.append(_failure(info, f"command {name!r}: {reason}"))

    def method(self, name: str) -> Method:
        """The method called ``name``.

        :raises PluginError: when the plugin providing it failed (to load, or this method was refused).
        :raises MethodNotFound: with a did-you-mean, when no plugin provides it.
        """
        if name in self.methods:
            return self.methods[name].method
        failure = self.failed_methods.get(name) or next((f for f in self.failures if f.plugin == name), None)
        if failure is not None:
            raise PluginError(failure.plugin, f"{failure.reason}; so there is no method {name!r}",
                              failure.distribution, failure.version,
                              hint="`plugin_host plugins` shows what each plugin contributed and why any failed")
        hint = did_you_mean(name, self.methods) or "`plugin_host list` shows the installed methods"
        raise MethodNotFound(f"no method named {name!r}", hint)

    def report(self) -> list[PluginReport]:
        """One :class:`PluginReport` per plugin tried, then per disabled plugin, in loading order."""
        rows = []
        for info in self.plugins:
            failures = tuple(f.reason for f in self.failures
                             if (f.plugin, f.distribution) == (info.name, info.distribution))
            methods = tuple(n for n, e in self.methods.items() if e.plugin == info)
            weights = tuple(n for n, owner in self.weights_plugin.items() if owner == info)
            commands = tuple(n for n, owner in self.commands_plugin.items() if owner == info)
            status = "ok" if not failures else "partly failed" if methods or weights or commands else "failed"
            rows.append(PluginReport(info, methods, weights, commands, failures, status))
        rows += [PluginReport(info, status="disabled") for info in self.disabled]
        return rows

    def describe(self, name: str) -> dict:
        """Method ``name``'s JSON description with what the registry knows filled in: each model
        parameter's ``choices`` (the registered names of its kind) and, when its declared default is not
        among them, the default validation falls back to (the first)."""
        described = self.method(name).to_json()
        models = self.model_names()
        for param in described["params"]:
            if param["kind"] == "model":
                param["choices"] = models.get(param["model_kind"], [])
                if param["choices"] and param["default"] not in param["choices"]:
                    param["default"] = param["choices"][0]
        return described

    def model_names(self) -> dict[str, list[str]]:
        """Model kind → registered weights names, for :class:`~plugin_host.schema.ModelParam`."""
        names: dict[str, list[str]] = {}
        for entry in self.weights.values():
            names.setdefault(entry.model_kind, []).append(entry.name)
        return names


def get_plugin_manager() -> pluggy.PluginManager:
    """A fresh pluggy manager with our hookspecs and nothing registered."""
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    return manager


def is_builtin(entry_point: metadata.EntryPoint) -> bool:
    """Whether ``entry_point`` comes from the plugin_host distribution itself."""
    dist = getattr(entry_point, "dist", None)
    return dist is not None and _canonical(dist.name) == _canonical(HOST_DISTRIBUTION)


def builtin_entry_points() -> list[metadata.EntryPoint]:
    """The installed entry points of the built-in plugins, without any third-party one."""
    return [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if is_builtin(ep)]


def _canonical(name: str) -> str:
    return name.replace("_", "-").replace(".", "-").lower()


def load_registry(entry_points: Iterable[metadata.EntryPoint] | None = None,
                  extra_plugins: Iterable[tuple[str, object]] = (),
                  disabled: Iterable[str] | None = None) -> Registry:
    """Discover plugins and collect what they register.

    :param entry_points: defaults to the installed ``plugin_host`` group (tests pass fakes).
    :param extra_plugins: ``(name, module_or_object)`` pairs registered as well, e.g. a
        plugin defined in a test or a notebook.
    :param disabled: names not to load; defaults to ``$PLUGIN_HOST_DISABLE``.
    """
    if entry_points is None:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    if disabled is None:
        disabled = [n.strip() for n in os.environ.get("PLUGIN_HOST_DISABLE", "").split(",") if n.strip()]
    manager = get_plugin_manager()
    registry = Registry()
    infos: dict[str, PluginInfo] = {}
    for name in disabled:
        manager.set_blocked(name)

    candidates: list[tuple[str, Callable[[], object], PluginInfo]] = []
    for ep in sorted(entry_points, key=lambda e: (not is_builtin(e), e.name)):  # built-ins first
        dist = getattr(ep, "dist", None)
        info = PluginInfo(ep.name, dist.name if dist else None, dist.version if dist else None, is_builtin(ep),
                          ep.value.partition(":")[0].strip())
        candidates.append((ep.name, ep.load, info))
    for name, plugin in extra_plugins:
        candidates.append((name, (lambda p=plugin: p), PluginInfo(name, None, None, module=_module_of(plugin))))

    for name, load, info in candidates:
        if manager.is_blocked(name):
            registry.disabled.append(info)
            continue
        registry.plugins.append(info)
        try:
            plugin = load()
            manager.register(plugin, name=name)
        except Exception as err:  # any import or validation error is this plugin's alone
            registry.failures.append(_failure(info, f"failed to load: {_describe(err)}"))
            continue
        infos[name] = info

    _drop_misspelt_hooks(manager, registry, infos)
    _collect(manager.hook.register_methods, "register", registry, infos, _method_adder(registry))
    user_models: list[tuple[WeightsEntry, PluginInfo]] = []
    _collect(manager.hook.register_weights, "register", registry, infos, _weights_adder(registry, user_models))
    _add_user_models(registry, user_models)
    _collect(manager.hook.register_commands, "register", registry, infos, _command_adder(registry))
    return registry


def _drop_misspelt_hooks(manager: pluggy.PluginManager, registry: Registry,
                         infos: dict[str, PluginInfo]) -> None:
    """Turn a hookimpl with no matching spec into that plugin's failure and unregister it."""
    while True:
        try:
            manager.check_pending()
            return
        except pluggy.PluginValidationError as err:
            name = manager.get_name(err.plugin)
            info = infos.pop(name, PluginInfo(str(name), None, None))
            registry.failures.append(_failure(info, str(err)))
            manager.unregister(err.plugin)


def _collect(hook: Any, argname: str, registry: Registry, infos: dict[str, PluginInfo],
             add: Callable[[Any, PluginInfo], None]) -> None:
    """Call each implementation of a collection hook alone, so errors are attributed.

    In loading order (built-ins first), not pluggy's, which a ``tryfirst`` marker could change.
    """
    order = {name: position for position, name in enumerate(infos)}
    for impl in sorted(hook.get_hookimpls(), key=lambda impl: order.get(impl.plugin_name, len(order))):
        info = infos.get(impl.plugin_name, PluginInfo(impl.plugin_name, None, None))

        def register(item: Any, _info: PluginInfo = info) -> None:
            add(item, _info)

        kwargs = {argname: register} if argname in impl.argnames else {}
        if os.environ.get("PLUGIN_HOST_TRACE_PLUGINS"):
            # Hooks are called one implementation at a time (for attribution), so we trace here.
            kwargs = {argname: _traced(register, hook.name, impl.plugin_name)} if kwargs else kwargs
            print(f"plugin_host trace: {hook.name} -> {impl.plugin_name}", file=sys.stderr)
        try:
            impl.function(**kwargs)
        except Exception as err:
            registry.failures.append(_failure(info, f"{hook.name} raised {_describe(err)}"))


def _traced(register: Callable[[Any], None], hook: str, plugin: str) -> Callable[[Any], None]:
    def traced(item: Any) -> None:
        print(f"plugin_host trace: {plugin}.{hook} registered {getattr(item, 'name', item)!r}", file=sys.stderr)
        register(item)
    return traced


def _method_adder(registry: Registry) -> Callable[[Any, PluginInfo], None]:
    def add(method: Any, info: PluginInfo) -> None:
        if not isinstance(method, Method):
            _reject(registry, info, f"register_methods got {type(method).__name__}, expected plugin_host.Method")
            return
        problems = method.problems()
        if method.name in registry.methods:
            owner = registry.methods[method.name].plugin
            problems.append(f"method name {method.name!r} is already registered by {owner.describe()}"
                            + _keep_builtin(owner))
        if problems:
            failure = _reject(registry, info, f"invalid method {method.name!r}: " + "; ".join(problems))
            if isinstance(method.name, str) and method.name not in registry.methods:
                registry.failed_methods[method.name] = failure
            return
        registry.methods[method.name] = RegisteredMethod(method, info)
    return add


def _weights_adder(registry: Registry,
                   user_models: list[tuple[WeightsEntry, PluginInfo]]) -> Callable[[Any, PluginInfo], None]:
    """Adds a plugin's weights entries; those of the user's own models (``extra["user_model"]``) go
    to ``user_models``, added after every plugin's (:func:`_add_user_models`)."""
    def add(entry: Any, info: PluginInfo) -> None:
        if not isinstance(entry, WeightsEntry):
            _reject(registry, info, f"register_weights got {type(entry).__name__}, expected WeightsEntry")
            return
        if entry.extra.get("user_model"):
            user_models.append((entry, info))
            return
        problems = entry.problems()
        if entry.name in registry.weights:
            owner = registry.weights_plugin[entry.name]
            problems.append(f"weights name {entry.name!r} is already registered by {owner.describe()}"
                            + _keep_builtin(owner))
        same_file = next((e for e in registry.weights.values() if e.file == entry.file and e.name != entry.name), None)
        if same_file is not None:  # the file name is where it is cached and searched: a second owner would replace it
            owner = registry.weights_plugin[same_file.name]
            problems.append(f"file {entry.file!r} is already the file of weights {same_file.name!r} of "
                            f"{owner.describe()}" + _keep_builtin(owner))
        if problems:
            _reject(registry, info, f"invalid weights entry {entry.name!r}: " + "; ".join(problems))
            return
        registry.weights[entry.name] = entry
        registry.weights_plugin[entry.name] = info
    return add


def _add_user_models(registry: Registry, user_models: list[tuple[WeightsEntry, PluginInfo]]) -> None:
    """Register the user's own models last, so that a card reusing the name (or file name) of another
    entry never takes it away. Such a card is left out and named in ``registry.user_model_problems``,
    not reported as a failure of the plugin that read it (whose own models keep working)."""
    from .weights.user_models import printable

    for entry, info in user_models:
        where = printable(_card_of(entry))
        name = printable(entry.name)
        same_file = next((e for e in registry.weights.values() if e.file == entry.file), None)
        if entry.name in registry.weights:
            problem = (f"the name '{name}' is taken by {_owner(registry, registry.weights[entry.name])}; "
                       "give the model another \"name\" in the card")
        elif same_file is not None:
            problem = (f"its file name '{printable(entry.file)}' is that of {_owner(registry, same_file)}; "
                       "rename the file and its card")
        elif entry.problems():
            problem = "; ".join(printable(p) for p in entry.problems())
        else:
            registry.weights[entry.name] = entry
            registry.weights_plugin[entry.name] = info
            continue
        registry.user_model_problems.append(f"your model card {where} is ignored: {problem}")


def _owner(registry: Registry, entry: WeightsEntry) -> str:
    """How a message names the registered ``entry``: by its card if it is a user model, else by its plugin."""
    from .weights.user_models import printable

    if entry.extra.get("user_model"):
        return f"your model card {printable(_card_of(entry))}"
    return f"weights '{printable(entry.name)}' of {registry.weights_plugin[entry.name].describe()}"


def _card_of(entry: WeightsEntry) -> str:
    """The card of a user model's entry (:func:`~plugin_host.weights.user_models.installed_models`)."""
    from .weights.user_models import card_path, user_models_dir

    return str(entry.extra.get("card_path") or card_path(user_models_dir() / entry.file))


def _keep_builtin(owner: PluginInfo) -> str:
    return "; a plugin cannot replace what a built-in registers" if owner.builtin else ""


def _command_adder(registry: Registry) -> Callable[[Any, PluginInfo], None]:
    def add(command: Any, info: PluginInfo) -> None:
        if not isinstance(command, Command):
            _reject(registry, info, f"register_commands got {type(command).__name__}, expected Command")
        elif command.name in BUILTIN_COMMANDS:
            _reject(registry, info, f"command name {command.name!r} is a command of plugin_host itself")
        elif command.name in registry.commands:
            owner = registry.commands_plugin[command.name]
            _reject(registry, info, f"command name {command.name!r} is already registered by {owner.describe()}"
                    + _keep_builtin(owner))
        else:
            registry.commands[command.name] = command
            registry.commands_plugin[command.name] = info
    return add


def _reject(registry: Registry, info: PluginInfo, reason: str) -> PluginFailure:
    failure = _failure(info, reason)
    registry.failures.append(failure)
    return failure


def _module_of(plugin: object) -> str | None:
    """The import name of a plugin object's hooks: a module's own name, else its class's module."""
    import types

    return plugin.__name__ if isinstance(plugin, types.ModuleType) else getattr(type(plugin), "__module__", None)


def _failure(info: PluginInfo, reason: str) -> PluginFailure:
    return PluginFailure(info.name, reason, info.distribution, info.version)


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"
