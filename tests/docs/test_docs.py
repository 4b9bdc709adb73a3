"""The plugin author docs stay true to the code: hook headings, example plugin, tutorial, links."""
from __future__ import annotations

import importlib.metadata as metadata
import inspect
import json
import re
import sys
import types
from pathlib import Path

import pytest

from plugin_host import hookspecs
from plugin_host.plugins import load_registry
from plugin_host.runner import Session

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "plugins"
EXAMPLE = DOCS / "example"
HOOK_HEADING = re.compile(r"^## (\w+)\((.*)\)\s*$")


def hookspec_signatures() -> dict[str, list[str]]:
    specs = {}
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if getattr(fn, "plugin_host_spec", None) is not None:
            specs[name] = list(inspect.signature(fn).parameters)
    return specs


def documented_hooks() -> dict[str, list[str]]:
    text = (DOCS / "hooks.md").read_text(encoding="utf-8")
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("## ") and "(" in line:
            match = HOOK_HEADING.match(line)
            assert match, f"hooks.md heading is not of the form '## name(arg, ...)': {line!r}"
            name, args = match.groups()
            assert name not in found, f"hooks.md documents {name} twice"
            found[name] = [a.strip() for a in args.split(",") if a.strip()]
    return found


def test_hooks_md_has_one_exact_heading_per_hookspec():
    specs, documented = hookspec_signatures(), documented_hooks()
    assert specs, "no hookspecs found in plugin_host.hookspecs"
    assert sorted(documented) == sorted(specs), "hooks.md must document exactly the hooks in hookspecs.py"
    for name, params in specs.items():
        assert documented[name] == params, f"hooks.md heading for {name} should be '## {name}({', '.join(params)})'"


def test_hooks_md_says_implementations_may_take_a_subset_of_arguments():
    intro = (DOCS / "hooks.md").read_text(encoding="utf-8").split("\n## ", 1)[0]
    assert "subset" in intro


@pytest.fixture
def example_on_path(monkeypatch):
    """The example package importable from its folder, freshly imported (nothing installed)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for name in ("plugin_host_posterize", "plugin_host_posterize.run"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_example_plugin_loads_through_an_entry_point_and_runs(example_on_path, tiny_image):
    entry = metadata.EntryPoint(name="posterize", value="plugin_host_posterize", group="plugin_host")
    registry = load_registry(entry_points=[entry], disabled=[])
    assert registry.failures == []
    assert list(registry.methods) == ["posterize"]
    assert registry.methods["posterize"].plugin.name == "posterize"
    assert "plugin_host_posterize.run" not in sys.modules, "registering must not import the run module"

    session = Session(registry=registry, device="cpu", seed=0)
    out = session.run("posterize", {"content": tiny_image}, {"levels": "2", "strength": "1"}).rgb
    assert out.shape == tiny_image.shape
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    untouched = session.run("posterize", {"content": tiny_image}, {"strength": 0}).rgb
    assert (untouched - tiny_image).abs().max() < 1e-6


def test_example_plugins_own_tests_pass(example_on_path, monkeypatch):
    """Runs docs/plugins/example/tests with the example's own pytest configuration, in this process."""
    monkeypatch.delitem(sys.modules, "test_posterize", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the inner run adds the tests folder
    outcomes = _Outcomes()
    code = pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", str(EXAMPLE),
                        "-c", str(EXAMPLE / "pyproject.toml"), str(EXAMPLE / "tests")], plugins=[outcomes])
    assert code == pytest.ExitCode.OK
    assert outcomes.counts.get("passed", 0) >= 10 and set(outcomes.counts) == {"passed"}, outcomes.counts


class _Outcomes:
    """A pytest plugin that counts the inner run's test outcomes."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" or report.outcome != "passed":
            self.counts[report.outcome] = self.counts.get(report.outcome, 0) + 1


def test_tutorial_shows_the_example_files_verbatim():
    """Paths are the method example's (docs/plugins/example), or under style-pack/ the style pack's."""
    text = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```\n", text, re.S)
    shown = {path for path, _ in blocks}
    assert shown == {"pyproject.toml", "plugin_host_posterize/__init__.py", "plugin_host_posterize/run.py",
                     "tests/test_posterize.py", "style-pack/pyproject.toml",
                     "style-pack/plugin_host_example_styles/__init__.py"}
    for path, body in blocks:
        where = DOCS / path if path.startswith("style-pack/") else EXAMPLE / path
        assert body == where.read_text(encoding="utf-8"), f"tutorial.md is out of date for {path}"


def test_minimal_plugin_in_index_md_works(tiny_image):
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    code = re.search(r"## A minimal plugin\n+```python\n(.*?)```", text, re.S).group(1)
    assert 10 <= len(code.strip().splitlines()) <= 20
    module = types.ModuleType("plugin_host_invert")
    exec(compile(code, "index.md", "exec"), module.__dict__)
    registry = load_registry(entry_points=[], extra_plugins=[("invert", module)], disabled=[])
    assert registry.failures == [] and list(registry.methods) == ["invert"]
    out = Session(registry=registry, device="cpu").run("invert", {"content": tiny_image}).rgb
    assert (out - (1 - tiny_image)).abs().max() < 1e-6


def test_command_only_plugin_in_hooks_md_works(capsys, samples_dir):
    from plugin_host.cli import main

    text = (DOCS / "hooks.md").read_text(encoding="utf-8")
    code = re.search(r"## register_commands\(register\).*?```python\n(.*?)```", text, re.S).group(1)
    module = types.ModuleType("plugin_host_count_colours")
    exec(compile(code, "hooks.md", "exec"), module.__dict__)
    registry = load_registry(entry_points=[], extra_plugins=[("count-colours", module)], disabled=[])
    assert main(["count-colours", str(samples_dir / "parrots.jpg")], registry=registry) == 0
    assert re.fullmatch(r".*parrots\.jpg: \d+ colours\n", capsys.readouterr().out)
    assert main(["plugins", "--json"], registry=registry) == 0
    [row] = json.loads(capsys.readouterr().out)["plugins"]
    assert (row["plugin"], row["status"], row["commands"], row["methods"]) == ("count-colours", "ok",
                                                                               ["count-colours"], [])


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_anchors_resolve():
    broken = []
    for page in sorted(DOCS.rglob("*.md")):
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(DOCS)}: {target}")
            elif anchor and dest.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{page.relative_to(DOCS)}: {target} (no such heading)")
    assert not broken, broken


def test_cli_reference_is_up_to_date():
    """docs/cli.md is generated from the parser; regenerate with `python docs/make_reference.py`."""
    import runpy

    module = runpy.run_path(str(Path(__file__).resolve().parents[2] / "docs" / "make_reference.py"))
    assert module["OUTPUT"].read_text() == module["render"](), "run: python docs/make_reference.py"


def test_cli_reference_ignores_third_party_plugins(monkeypatch):
    """An installed third-party plugin (a method and a command) leaves docs/cli.md as it is."""
    import runpy

    from plugin_host import Command, Method, hookimpl
    from plugin_host.schema import FloatParam, ImageInput, Schema

    extra = types.ModuleType("third_party_for_docs")
    extra.register_methods = hookimpl(lambda register: register(Method(
        name="aaa-extra", title="Extra", description="d", inputs=(ImageInput("content"),),
        schema=Schema((FloatParam("amount", default=1.0),)), run="x:y")))
    extra.register_commands = hookimpl(lambda register: register(Command("aaa-tool", "h", lambda p: None, lambda a: 0)))
    monkeypatch.setitem(sys.modules, "third_party_for_docs", extra)
    original = metadata.entry_points
    fake = metadata.EntryPoint(name="aaa-extra", value="third_party_for_docs", group="plugin_host")
    monkeypatch.setattr(metadata, "entry_points", lambda **kw: [*original(**kw), fake] if kw == {"group": "plugin_host"}
                        else original(**kw))
    assert "aaa-extra" in load_registry(disabled=[]).methods  # it is installed, as far as discovery can tell

    module = runpy.run_path(str(Path(__file__).resolve().parents[2] / "docs" / "make_reference.py"))
    rendered = module["render"]()
    assert "aaa-extra" not in rendered and "aaa-tool" not in rendered
    assert module["OUTPUT"].read_text() == rendered
