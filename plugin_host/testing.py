"""Conformance checks for method plugins, shipped as a pytest plugin (entry point ``pytest11``).

Two ways to run them. Without writing a test: ``pytest --plugin-host-conformance`` runs them
over every installed method (with its default parameters), ``--plugin-host-conformance=a,b``
over the methods named; a plugin that failed to load is a failed test. Or subclass
:class:`MethodConformance` in your plugin's tests and set ``method_name`` and a cheap
``params`` configuration. Either way pytest checks that the method declares a sound
schema, runs on a small image on the CPU, also at every bound of its parameters (each
minimum, maximum, choice and flag), reports progress, stops when cancelled before or during
a run, is deterministic with a seed, and that its hooks module imports no torch::

    from plugin_host.testing import MethodConformance

    class TestMyMethod(MethodConformance):
        method_name = "my-method"
        params = {"iterations": 2}

The checks find the method among the installed plugins. To test a plugin that is not
installed, override :meth:`MethodConformance.registry` to return a registry that holds it,
e.g. ``load_registry(entry_points=[], extra_plugins=[("my-plugin", my_module)])``.

Importing this module does not import torch; the checks do.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from plugin_host.plugins import PluginFailure, Registry
    from plugin_host.schema import Schema

#: Seconds the subprocess that imports a hooks module may take.
IMPORT_TIMEOUT_S = 120


class MethodConformance:
    """Checks every method must pass. Override ``images()`` if your method needs other inputs."""

    method_name: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    size: ClassVar[tuple[int, int]] = (40, 56)
    #: Methods that cannot be bit-identical on the CPU (none should) may turn this off.
    deterministic: ClassVar[bool] = True
    #: Values :meth:`test_runs_at_every_bound` tries instead of a parameter's own bounds, for a bound that
    #: costs too much on a small image (``{"iterations": (1, 3)}``; 10 000 iterations would take minutes);
    #: ``()`` leaves the parameter out. Model, list, path and text parameters are tried only when named here.
    bounds: ClassVar[dict[str, tuple[Any, ...]]] = {}

    def registry(self):
        """The plugin registry the checks use; ``None`` (the default) loads the installed plugins."""
        return None

    @pytest.fixture
    def session(self):
        from plugin_host.runner import Session

        return Session(registry=self.registry(), device="cpu", seed=0)

    def images(self, method) -> dict[str, Any]:
        import torch

        gen = torch.Generator().manual_seed(1)
        height, width = self.size
        images: dict[str, Any] = {}
        for spec in method.inputs:
            if not spec.required and spec.role != "content":
                continue
            image = torch.rand((1, 3, height, width), generator=gen)
            images[spec.name] = [image] if spec.multiple else image
        return images

    def test_schema_round_trips_through_json(self, session):
        method = session.method(self.method_name)
        described = json.loads(json.dumps(session.registry.describe(self.method_name)))
        assert described["name"] == self.method_name
        raw = {p["name"]: p["default"] for p in described["params"]}
        assert session.validate(method, raw) == session.validate(method, {})

    def test_defaults_and_test_params_validate(self, session):
        method = session.method(self.method_name)
        session.validate(method, {})
        session.validate(method, self.params)

    def test_runs_on_a_small_image(self, session):
        import torch

        from plugin_host.progress import Progress

        class Counting(Progress):
            steps = 0

            def _on_advance(self, n, info):
                Counting.steps += n

        method = session.method(self.method_name)
        result = session.run(self.method_name, self.images(method), self.params, progress=Counting())
        assert result.rgb.dim() == 4 and result.rgb.shape[:2] == (1, 3)
        assert torch.isfinite(result.rgb).all() and 0 <= float(result.rgb.min()) <= float(result.rgb.max()) <= 1
        assert Counting.steps > 0, "the method reported no progress"

    def test_honours_cancel(self, session):
        from plugin_host.errors import Cancelled
        from plugin_host.progress import CancelToken

        token = CancelToken()
        token.cancel()
        method = session.method(self.method_name)
        with pytest.raises(Cancelled):
            session.run(self.method_name, self.images(method), self.params, cancel=token)

    def test_runs_at_every_bound(self, session):
        """One run per bound of each parameter (the others as in ``params``): its minimum and maximum, each
        choice, both values of a flag. A combination the schema's own checks refuse is skipped, and an
        error the user can act on (a PluginHostError) is allowed; a crash or a bad image is not."""
        from plugin_host.errors import ParameterError, PluginHostError

        method = session.method(self.method_name)
        baseline = session.validate(method, self.params)
        failures, ran = [], 0
        for name, value in bound_values(method.schema, self.bounds):
            if value == baseline[name]:
                continue  # the other checks run this one
            try:
                params = session.validate(method, {**self.params, name: value})
            except ParameterError:
                continue  # refused with the others as they are (e.g. init=file without a file)
            ran += 1
            try:
                result = session.run(self.method_name, self.images(method), validated=params)
            except PluginHostError:
                continue
            except Exception as err:  # noqa: BLE001 - every crash is reported, not only the first
                failures.append(f"{name}={value!r}: {type(err).__name__}: {err}")
                continue
            problem = _image_problem(result.rgb)
            if problem:
                failures.append(f"{name}={value!r}: {problem}")
        assert not failures, f"{self.method_name} fails at {len(failures)} of {ran} bounds:\n" + "\n".join(failures)

    def test_stops_when_cancelled_mid_run(self, session):
        """A cancel requested at the first progress step must stop the run before it reports another."""
        from plugin_host.errors import Cancelled
        from plugin_host.progress import CancelToken, Progress

        token = CancelToken()

        class CancelAtFirstStep(Progress):
            steps_after_cancel = 0

            def _on_advance(self, n, info):
                if token.cancelled:
                    CancelAtFirstStep.steps_after_cancel += n
                token.cancel()

        method = session.method(self.method_name)
        try:
            session.run(self.method_name, self.images(method), self.params, progress=CancelAtFirstStep(),
                        cancel=token)
        except Cancelled:
            return
        if not token.cancelled:
            pytest.fail("the method reported no progress, so it cannot be cancelled between steps")
        if CancelAtFirstStep.steps_after_cancel == 0:
            pytest.skip("the run reported a single progress step: nothing was left to cancel "
                        "(choose params or a size that make several)")
        pytest.fail(f"cancelled at the first step, the method went on for "
                    f"{CancelAtFirstStep.steps_after_cancel} more and returned a result: call "
                    f"ctx.cancel.raise_if_cancelled() between steps")

    def test_hooks_module_imports_no_torch(self):
        """Registering the plugin (``plugin_host list``, ``--help``) must not import torch: 2-3 s on every
        command. Checked in a fresh interpreter, which imports the hooks module and registers it."""
        from plugin_host.plugins import load_registry

        registry = self.registry() or load_registry()
        plugin = registry.methods[self.method_name].plugin
        import importlib.util

        if not plugin.module or importlib.util.find_spec(plugin.module) is None:
            pytest.skip(f"the hooks of plugin {plugin.name!r} are not an importable module")
        code = (f"import importlib, sys\n"
                f"from plugin_host.plugins import load_registry\n"
                f"hooks = importlib.import_module({plugin.module!r})\n"
                f"load_registry(entry_points=[], extra_plugins=[({plugin.name!r}, hooks)], disabled=[])\n"
                f"print(' '.join(sorted(n for n in sys.modules if n.split('.')[0] == 'torch')[:5]))\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              timeout=IMPORT_TIMEOUT_S)
        assert done.returncode == 0, done.stderr[-2000:]
        loaded = done.stdout.strip()
        assert not loaded, (f"importing and registering {plugin.module} imports torch ({loaded}): import it "
                            f"inside run/train, and name them as 'module:function' strings")

    def test_deterministic_with_a_seed(self):
        import torch

        from plugin_host.runner import Session

        if not self.deterministic:
            pytest.skip("declared non-deterministic")
        outputs = []
        for _ in range(2):
            session = Session(registry=self.registry(), device="cpu", seed=123)
            method = session.method(self.method_name)
            outputs.append(session.run(self.method_name, self.images(method), self.params).rgb)
        assert torch.equal(outputs[0], outputs[1])


def bound_values(schema: "Schema", overrides: dict[str, tuple[Any, ...]] | None = None) -> Iterator[tuple[str, Any]]:
    """``(parameter, value)`` for every bound of ``schema``: each finite minimum and maximum, each choice,
    both values of a flag; ``overrides`` replaces a parameter's values (``()`` leaves it out)."""
    from plugin_host.schema import BoolParam, ChoiceParam, FloatParam, IntParam

    overrides = overrides or {}
    for param in schema:
        if param.name in overrides:
            values: tuple[Any, ...] = tuple(overrides[param.name])
        elif isinstance(param, (FloatParam, IntParam)):
            values = tuple(v for v in (param.min, param.max) if v is not None)
        elif isinstance(param, ChoiceParam):
            values = param.choices
        elif isinstance(param, BoolParam):
            values = (False, True)
        else:
            values = ()
        for value in values:
            yield param.name, value


def _image_problem(rgb: Any) -> str | None:
    """What is wrong with a result image, or None: the host already refuses NaN and bad shapes."""
    if rgb.dim() != 4 or rgb.shape[:2] != (1, 3) or 0 in rgb.shape:
        return f"returned an image of shape {tuple(rgb.shape)}"
    return None


# -- the pytest plugin: ``pytest --plugin-host-conformance[=METHODS]`` -----------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("plugin_host").addoption(
        "--plugin-host-conformance", metavar="METHODS", nargs="?", const="all", default=None,
        help="also run plugin_host's conformance checks on the installed methods: all of them (the default) "
             "or a comma-separated list of names, each with its default parameters; a plugin that failed "
             "to load is a failed test")


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect, so that they apply to these tests too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    chosen = config.getoption("plugin_host_conformance", None)
    if chosen is not None:
        items.extend(_conformance_items(session, chosen))


def _conformance_items(session: pytest.Session, chosen: str) -> Iterator[pytest.Item]:
    """One ``conformance[METHOD]`` class of tests per chosen method, one failing test per failed plugin."""
    from plugin_host.errors import PluginHostError
    from plugin_host.plugins import load_registry

    registry = load_registry()
    if chosen.strip() in ("", "all"):
        names, failures = sorted(registry.methods), list(registry.failures)
    else:
        names, failures = [n.strip() for n in chosen.split(",") if n.strip()], []
        for name in names:
            try:
                registry.method(name)
            except PluginHostError as err:  # no such method, or its plugin failed
                raise pytest.UsageError(f"--plugin-host-conformance: {err.message}; {err.hint}") from None
    module = pytest.Module.from_parent(session, path=Path(__file__), nodeid="plugin_host")
    module.obj = sys.modules[__name__]  # this module, already imported: no second import by path
    classes = [_conformance_class(registry, name) for name in names]
    classes += [_failed_plugin(failure) for failure in failures]
    for cls in classes:
        node = pytest.Class.from_parent(module, name=cls.__name__)
        node.obj = cls
        for mark in getattr(cls, "pytestmark", ()):  # read at construction, before obj was set
            node.add_marker(mark)
        yield from session.genitems(node)


def _conformance_class(registry: "Registry", name: str) -> type:
    """The checks for one installed method; skipped, with the reason, when a model its defaults name is not
    installed (a generator that ships without weights cannot run until its user trains or installs one)."""
    method = registry.method(name)
    kinds = registry.model_names()
    missing = [p.default for p in method.schema.params if getattr(p, "kind", "") == "model" and p.default
               and not kinds.get(p.model_kind)]
    attributes: dict[str, Any] = {"method_name": name}
    if missing:
        attributes["pytestmark"] = [pytest.mark.skip(reason=f"{name}: its default model {missing[0]!r} is not "
                                                            "installed; install or train one to check the method")]
    return type(f"conformance[{name}]", (MethodConformance,), attributes)


def _failed_plugin(failure: "PluginFailure") -> type:
    def test_plugin_loads(self: Any) -> None:
        pytest.fail(f"plugin {failure.plugin!r} failed: {failure.reason}", pytrace=False)

    return type(f"conformance[plugin {failure.plugin}]", (), {"test_plugin_loads": test_plugin_loads})
