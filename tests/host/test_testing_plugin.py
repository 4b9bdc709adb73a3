"""The pytest plugin plugin_host ships (entry point pytest11): ``--plugin-host-conformance``.

Each test installs a small distribution into a folder on ``PYTHONPATH`` (a module and its
``.dist-info`` with an entry point), as pip would, and runs pytest in a subprocess on a project
with one test of its own.
"""
from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

PLUGIN = '''
from plugin_host.sdk import ImageInput, IntParam, Method, Schema, hookimpl


def invert(inputs, params, ctx):
    ctx.progress.stage("invert", total=params.steps)
    for _ in range(params.steps):
        ctx.cancel.raise_if_cancelled()
        ctx.progress.advance()
    return 1 - inputs["content"]


def careless(inputs, params, ctx):  # never looks at the cancel token
    ctx.progress.stage("work", total=params.steps)
    for _ in range(params.steps):
        ctx.progress.advance()
    return inputs["content"]


def blur(inputs, params, ctx):  # reflect padding needs a radius below the image's sides: 45 px crashes on 40
    import torch.nn.functional as F

    radius = 5 * params.steps
    ctx.progress.stage("blur", total=params.steps)
    for _ in range(params.steps):
        ctx.cancel.raise_if_cancelled()
        ctx.progress.advance()
    padded = F.pad(inputs["content"], (radius,) * 4, mode="reflect")
    return F.avg_pool2d(padded, 2 * radius + 1, stride=1)


def _method(name, run):
    return Method(name=name, title=name, description="d", inputs=(ImageInput("content"),),
                  schema=Schema((IntParam("steps", default=2, min=1, max=9),)), run=run)


@hookimpl
def register_methods(register):
    register(_method("toy-invert", invert))
    register(_method("toy-careless", careless))
    register(_method("toy-blur", blur))
'''

#: A plugin whose hooks module imports torch at the top: every command would pay for it.
HEAVY = '''
import torch

from plugin_host.sdk import ImageInput, Method, Schema, hookimpl


def run(inputs, params, ctx):
    ctx.progress.stage("copy", total=1)
    ctx.cancel.raise_if_cancelled()
    ctx.progress.advance()
    return inputs["content"]


@hookimpl
def register_methods(register):
    register(Method(name="toy-heavy", title="heavy", description="d", inputs=(ImageInput("content"),),
                    schema=Schema(), run=run))
'''


def install(site, name, entry_point):
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[plugin_host]\n{entry_point}\n")


@pytest.fixture
def installed(pytester, monkeypatch):
    """``toy_plugin`` and a plugin that cannot load installed beside the built-ins (disabled to keep runs fast)."""
    site = pytester.mkdir("site")
    (site / "toy_plugin.py").write_text(PLUGIN)
    (site / "heavy_plugin.py").write_text(HEAVY)
    install(site, "toy_plugin", "toy = toy_plugin")
    install(site, "heavy_plugin", "heavy = heavy_plugin")
    install(site, "broken_plugin", "broken = no_such_module_for_conformance")
    monkeypatch.setenv("PYTHONPATH", str(site))  # the runs are subprocesses: torch does not survive
    # being imported twice in one process, which an in-process run's module cleanup would cause
    monkeypatch.setenv("PLUGIN_HOST_DISABLE", "adain,encoders,gated_gan,gatys,perceptual,stylegan")
    pytester.makepyfile(test_nothing="def test_own():\n    pass\n")
    return pytester


CHECKS = 8  # per method


def test_the_option_runs_the_checks_over_every_installed_method(installed):
    result = installed.runpytest_subprocess("--plugin-host-conformance", "-v")
    # failing: careless's two cancel checks, blur's bounds, heavy's import; skipped: heavy's one step to cancel
    result.assert_outcomes(passed=1 + 4 * CHECKS - 5, failed=4 + 1, skipped=1)
    result.stdout.fnmatch_lines_random([
        "plugin_host::conformance?toy-careless?::test_runs_on_a_small_image PASSED*",
        "plugin_host::conformance?toy-careless?::test_honours_cancel FAILED*",
        "plugin_host::conformance?toy-careless?::test_stops_when_cancelled_mid_run FAILED*",
        "plugin_host::conformance?toy-invert?::test_honours_cancel PASSED*",
        "plugin_host::conformance?toy-invert?::test_stops_when_cancelled_mid_run PASSED*",
        "plugin_host::conformance?toy-invert?::test_runs_at_every_bound PASSED*",
        "plugin_host::conformance?toy-blur?::test_runs_on_a_small_image PASSED*",
        "plugin_host::conformance?toy-blur?::test_runs_at_every_bound FAILED*",
        "plugin_host::conformance?toy-invert?::test_hooks_module_imports_no_torch PASSED*",
        "plugin_host::conformance?toy-heavy?::test_hooks_module_imports_no_torch FAILED*",
        "plugin_host::conformance?plugin broken?::test_plugin_loads FAILED*",
        "*plugin 'broken' failed: failed to load: ModuleNotFoundError*",
        "*toy-blur fails at 1 of 2 bounds:*",
        "*steps=9: RuntimeError: *",
        "*Failed: cancelled at the first step, the method went on for 1 more and returned a result*",
        "*importing and registering heavy_plugin imports torch (torch*"])


def test_the_option_takes_the_methods_to_check(installed):
    result = installed.runpytest_subprocess("--plugin-host-conformance=toy-invert", "-k", "not deterministic")
    result.assert_outcomes(passed=1 + CHECKS - 1)  # the project's own test and the checks but one


def test_an_unknown_method_is_a_usage_error(installed):
    result = installed.runpytest_subprocess("--plugin-host-conformance=toy-invrt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --plugin-host-conformance: no method named 'toy-invrt'; "
                                 "did you mean 'toy-invert'?"])


def test_without_the_option_nothing_is_added(installed):
    result = installed.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert "conformance" not in result.stdout.str()


#: A method whose default model is not installed (a generator that ships untrained).
NEEDS_MODEL = '''
from plugin_host.sdk import ImageInput, Method, ModelParam, Schema, hookimpl


def run(inputs, params, ctx):
    raise RuntimeError("no model: the checks should have been skipped")


@hookimpl
def register_methods(register):
    register(Method(name="toy-needs-model", title="t", description="d", inputs=(ImageInput("content"),),
                    schema=Schema((ModelParam("model", default="toy-model", model_kind="toy-kind"),)), run=run))
'''


def test_a_method_whose_default_model_is_not_installed_is_skipped_with_the_reason(installed):
    site = installed.path / "site"
    (site / "needs_model.py").write_text(NEEDS_MODEL)
    install(site, "needs_model", "needs = needs_model")
    result = installed.runpytest_subprocess("--plugin-host-conformance=toy-needs-model", "-rs")
    result.assert_outcomes(passed=1, skipped=CHECKS)
    result.stdout.fnmatch_lines(["*toy-needs-model: its default model 'toy-model' is not installed; install or "
                                 "train one to check the method*"])
