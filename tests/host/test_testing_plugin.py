"""The pytest plugin plugin_host ships (entry point pytest11): ``--plugin-host-conformance``.

Each test installs a small distribution into a folder on ``PYTHONPATH`` (a module and its
``.dist-info`` with an entry point), as pip would, and runs pytest in a subprocess on a project
with one test of its own.
"""
from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

PLUGIN = '''
from plugin_host import ImageInput, IntParam, Method, Schema, hookimpl


def invert(inputs, params, ctx):
    ctx.progress.stage("invert", total=params.steps)
    for _ in range(params.steps):
        ctx.cancel.raise_if_cancelled()
        ctx.progress.advance()
    return 1 - inputs["content"]


def careless(inputs, params, ctx):  # never looks at the cancel token
    ctx.progress.stage("work", total=1)
    ctx.progress.advance()
    return inputs["content"]


def _method(name, run):
    return Method(name=name, title=name, description="d", inputs=(ImageInput("content"),),
                  schema=Schema((IntParam("steps", default=2, min=1, max=9),)), run=run)


@hookimpl
def register_methods(register):
    register(_method("toy-invert", invert))
    register(_method("toy-careless", careless))
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
    install(site, "toy_plugin", "toy = toy_plugin")
    install(site, "broken_plugin", "broken = no_such_module_for_conformance")
    monkeypatch.setenv("PYTHONPATH", str(site))  # the runs are subprocesses: torch does not survive
    # being imported twice in one process, which an in-process run's module cleanup would cause
    monkeypatch.setenv("PLUGIN_HOST_DISABLE", "adain,encoders,gatys,perceptual")
    pytester.makepyfile(test_nothing="def test_own():\n    pass\n")
    return pytester


def test_the_option_runs_the_checks_over_every_installed_method(installed):
    result = installed.runpytest_subprocess("--plugin-host-conformance", "-v")
    result.assert_outcomes(passed=1 + 9, failed=2)
    result.stdout.fnmatch_lines(["plugin_host::conformance?toy-careless?::test_runs_on_a_small_image PASSED*",
                                 "plugin_host::conformance?toy-careless?::test_honours_cancel FAILED*",
                                 "plugin_host::conformance?toy-invert?::test_honours_cancel PASSED*",
                                 "plugin_host::conformance?plugin broken?::test_plugin_loads FAILED*",
                                 "*plugin 'broken' failed: failed to load: ModuleNotFoundError*"])


def test_the_option_takes_the_methods_to_check(installed):
    result = installed.runpytest_subprocess("--plugin-host-conformance=toy-invert", "-k", "not deterministic")
    result.assert_outcomes(passed=1 + 4)  # the project's own test and four checks


def test_an_unknown_method_is_a_usage_error(installed):
    result = installed.runpytest_subprocess("--plugin-host-conformance=toy-invrt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --plugin-host-conformance: no method named 'toy-invrt'; "
                                 "did you mean 'toy-invert'?"])


def test_without_the_option_nothing_is_added(installed):
    result = installed.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert "conformance" not in result.stdout.str()
