"""Discovery: entry points are faked (nothing is installed); failures stay with their plugin."""
import importlib.metadata as md
import json
import sys
import types
from pathlib import Path

import pytest

from plugin_host import Command, Method, hookimpl
from plugin_host.errors import MethodNotFound
from plugin_host.schema import FloatParam, ImageInput, Schema
from plugin_host.weights.registry import UrlSource, WeightsEntry


def make_method(name="toy", **changes):
    fields = dict(name=name, title="Toy", description="d", inputs=(ImageInput("content"),),
                  schema=Schema((FloatParam("strength", default=0.5, min=0, max=1),)), run="toy_mod:run")
    fields.update(changes)
    return Method(**fields)


def module(name, **hooks):
    mod = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(mod, hook_name, hookimpl(fn))
    return mod


def entry_point(name, value):
    return md.EntryPoint(name=name, value=value, group="plugin_host")


@pytest.fixture
def fake_modules(monkeypatch):
    def install(name, mod):
        monkeypatch.setitem(sys.modules, name, mod)
    return install


def test_good_plugin_registers_methods_weights_and_commands(make_registry):
    entry = WeightsEntry("toy-w", "toy.pth", "encoder", "vgg16", "raw", UrlSource("file:///x"), None)
    plugin = module("good",
                    register_methods=lambda register: register(make_method()),
                    register_weights=lambda register: register(entry),
                    register_commands=lambda register: register(Command("toy-eval", "h", lambda p: None,
                                                                        lambda a: 0)))
    registry = make_registry(plugin)
    assert registry.method("toy").title == "Toy"
    assert registry.weights["toy-w"] is entry and "toy-eval" in registry.commands
    assert registry.model_names() == {"encoder": ["toy-w"]} and not registry.failures


def test_broken_plugins_are_reported_and_do_not_break_others(make_registry, fake_modules):
    fake_modules("ok_plugin", module("ok_plugin", register_methods=lambda register: register(make_method("ok"))))

    def boom(register):
        raise RuntimeError("kaboom")

    fake_modules("raising_plugin", module("raising_plugin", register_methods=boom))
    misspelt = types.ModuleType("misspelt_plugin")
    misspelt.register_method = hookimpl(lambda register: None)  # missing 's'
    fake_modules("misspelt_plugin", misspelt)
    fake_modules("invalid_plugin", module("invalid_plugin", register_methods=lambda register: (
        register(make_method("Bad Name")), register(make_method("fine")), register("not a method"))))
    fake_modules("dup_plugin", module("dup_plugin", register_methods=lambda register: register(make_method("ok"))))

    registry = make_registry(entry_points=[
        entry_point("missing", "no_such_module_for_plugin_host_tests"),
        entry_point("ok", "ok_plugin"), entry_point("raising", "raising_plugin"),
        entry_point("misspelt", "misspelt_plugin"), entry_point("invalid", "invalid_plugin"),
        entry_point("zdup", "dup_plugin"),
    ])
    assert sorted(registry.methods) == ["fine", "ok"]
    reasons = {f.plugin: [] for f in registry.failures}
    for failure in registry.failures:
        reasons[failure.plugin].append(failure.reason)
    assert "ModuleNotFoundError" in reasons["missing"][0]
    assert "kaboom" in reasons["raising"][0]
    assert "register_method" in reasons["misspelt"][0]
    assert any("Bad Name" in r for r in reasons["invalid"]) and any("str" in r for r in reasons["invalid"])
    assert "already registered by plugin 'ok'" in reasons["zdup"][0]


def test_disabled_plugins_are_not_loaded(make_registry, fake_modules):
    fake_modules("ok_plugin", module("ok_plugin", register_methods=lambda register: register(make_method("ok"))))
    registry = make_registry(entry_points=[entry_point("ok", "ok_plugin")], disabled=["ok"])
    assert registry.methods == {} and registry.failures == []


def test_unknown_method_gets_a_suggestion(make_registry):
    registry = make_registry(module("p", register_methods=lambda register: register(make_method("gatys"))))
    with pytest.raises(MethodNotFound, match="did you mean 'gatys'"):
        registry.method("gatsy")


def test_invalid_declarations_are_explained():
    method = make_method(inputs=(ImageInput("photo"), ImageInput("picture")), run=42,
                         schema=Schema((FloatParam("device", default=1.0),)))
    problems = " ".join(method.problems())
    assert "at most one of role 'content'" in problems and "run must be callable" in problems
    assert "parameter 'device' is taken by the host (--device)" in problems


def test_builtin_methods_register_through_entry_points():
    """Every plugins/*/ folder is declared on the public group and shows in the registry."""
    from pathlib import Path

    from plugin_host.plugins import builtin_entry_points, load_registry

    repo = Path(__file__).resolve().parents[2]
    folders = sorted(p.name for p in (repo / "plugins").iterdir() if (p / "__init__.py").exists())
    group = {ep.name: ep.value for ep in builtin_entry_points()}
    registry = load_registry(entry_points=builtin_entry_points(), disabled=[])  # third-party plugins aside
    for folder in folders:
        assert group.get(folder) == f"plugin_host_{folder}", f"plugins/{folder} has no entry point"
        assert any(e.plugin.name == folder for e in registry.methods.values())
    assert not registry.failures


def test_every_shipped_data_file_is_in_the_package_data():
    """A wheel must carry each built-in plugin's weights and cards: a model without its card is not registered."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[2]
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, folder in setuptools["package-dir"].items():
        patterns = setuptools.get("package-data", {}).get(package, [])
        for path in (root / folder).rglob("*"):
            if path.is_file() and path.suffix not in (".py", ".pyc"):
                relative = path.relative_to(root / folder).as_posix()
                assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{folder}/{relative} is not packaged"


# -- names owned by the built-ins -----------------------------------------------------------------

def _takeover(module_name):
    """A third-party plugin that registers the built-in gatys method, the default encoder's name and its file."""
    from plugin_host.builtin_weights import DEFAULT_ENCODER

    fake = WeightsEntry(DEFAULT_ENCODER, "evil.pth", "encoder", "vgg16", "caffe", UrlSource("file:///tmp/evil.pth"),
                        None)
    same_file = WeightsEntry("my-encoder", "vgg16-caffe-hed.pth", "encoder", "vgg16", "caffe",
                             UrlSource("file:///tmp/vgg16-caffe-hed.pth"), None)
    mod = types.ModuleType(module_name)
    mod.register_methods = hookimpl(tryfirst=True)(lambda register: register(make_method("gatys")))
    mod.register_weights = hookimpl(tryfirst=True)(lambda register: (register(fake), register(same_file)))
    return mod


@pytest.mark.parametrize("entry_name", ["aaa-takeover", "zzz-takeover"])
def test_a_third_party_plugin_cannot_replace_what_a_builtin_registers(fake_modules, entry_name):
    """Whichever way the entry-point names sort, the built-ins keep their method, weights name and file."""
    from plugin_host.builtin_weights import DEFAULT_ENCODER, ENCODERS
    from plugin_host.plugins import builtin_entry_points, load_registry

    fake_modules("takeover_plugin", _takeover("takeover_plugin"))
    builtins = builtin_entry_points()
    registry = load_registry(entry_points=[*builtins, entry_point(entry_name, "takeover_plugin")], disabled=[])

    gatys = registry.methods["gatys"]
    assert gatys.plugin.name == "gatys" and gatys.plugin.builtin and gatys.method.title != "Toy"
    assert registry.weights[DEFAULT_ENCODER] is next(e for e in ENCODERS if e.name == DEFAULT_ENCODER)
    assert registry.weights[DEFAULT_ENCODER].sha256 is not None  # the digest is still checked
    assert registry.weights_plugin[DEFAULT_ENCODER].name == "encoders" and "my-encoder" not in registry.weights
    assert {f.plugin for f in registry.failures} == {entry_name}
    reasons = " | ".join(f.reason for f in registry.failures)
    assert "method name 'gatys' is already registered by plugin 'gatys' (built-in)" in reasons
    assert f"weights name '{DEFAULT_ENCODER}' is already registered by plugin 'encoders' (built-in)" in reasons
    assert f"file 'vgg16-caffe-hed.pth' is already the file of weights '{DEFAULT_ENCODER}'" in reasons
    assert reasons.count("a plugin cannot replace what a built-in registers") == 3


def test_list_says_which_plugin_owns_each_method_and_weights_entry(fake_modules, capsys):
    from plugin_host.cli import main
    from plugin_host.plugins import builtin_entry_points, load_registry

    fake_modules("ok_plugin", module("ok_plugin", register_methods=lambda register: register(make_method("toy"))))
    registry = load_registry(entry_points=[*builtin_entry_points(), entry_point("ok", "ok_plugin")], disabled=[])
    assert main(["list", "--json"], registry=registry) == 0
    rows = {row["method"]: row for row in json.loads(capsys.readouterr().out)["methods"]}
    assert rows["gatys"]["builtin"] and rows["gatys"]["distribution"] == "plugin_host"
    assert rows["toy"]["plugin"] == "ok" and not rows["toy"]["builtin"]
    assert main(["list"], registry=registry) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "built-in" in lines["gatys"] and "built-in" not in lines["toy"]
    assert main(["weights", "list", "--json"], registry=registry) == 0
    owners = {row["name"]: row["plugin"] for row in json.loads(capsys.readouterr().out)}
    assert owners["vgg16-caffe-hed"] == "encoders" and owners["adain-decoder-vgg19"] == "adain"


# -- plugin_host plugins ---------------------------------------------------------------------------

def installed_distribution(folder, name, version, entry_points):
    """The entry points of a distribution installed (metadata only) in ``folder``, as pip writes them."""
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[plugin_host]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points))
    return list(md.PathDistribution(info).entry_points)


def test_plugins_lists_each_plugin_with_what_it_contributed_or_why_it_failed(fake_modules, tmp_path, capsys):
    from plugin_host.cli import main
    from plugin_host.plugins import builtin_entry_points, load_registry

    pack = WeightsEntry("ink-wash", "ink-wash.pth", "perceptual-style", "johnson-transformer", "raw",
                        UrlSource("file:///x/ink-wash.pth"), "0" * 64, size=3)
    fake_modules("pack_plugin", module("pack_plugin", register_weights=lambda register: register(pack)))
    fake_modules("mixed_plugin", module("mixed_plugin", register_methods=lambda register: (
        register(make_method("toy")), register(make_method("Bad Name")))))
    third_party = [*installed_distribution(tmp_path, "ink-pack", "1.2", [("ink", "pack_plugin")]),
                   *installed_distribution(tmp_path, "mixed", "0.3", [("mixed", "mixed_plugin:hooks")]),
                   *installed_distribution(tmp_path, "broken", "0.1", [("broken", "no_such_module_here")]),
                   *installed_distribution(tmp_path, "off", "2.0", [("off", "pack_plugin")])]
    fake_modules("mixed_plugin", types.SimpleNamespace(hooks=sys.modules["mixed_plugin"]))
    registry = load_registry(entry_points=[*builtin_entry_points(), *third_party], disabled=["off"])

    assert main(["plugins", "--json"], registry=registry) == 0
    rows = {row["plugin"]: row for row in json.loads(capsys.readouterr().out)["plugins"]}
    assert rows["ink"] == {"plugin": "ink", "distribution": "ink-pack", "version": "1.2", "builtin": False,
                           "module": "pack_plugin", "status": "ok", "methods": [], "weights": ["ink-wash"],
                           "commands": [], "failures": []}
    assert rows["mixed"]["status"] == "partly failed" and rows["mixed"]["methods"] == ["toy"]
    assert "invalid method 'Bad Name'" in rows["mixed"]["failures"][0]
    assert rows["broken"]["status"] == "failed" and "ModuleNotFoundError" in rows["broken"]["failures"][0]
    assert rows["off"]["status"] == "disabled" and rows["off"]["version"] == "2.0"
    assert rows["perceptual"]["builtin"] and rows["perceptual"]["commands"] == ["sr-eval"]
    assert rows["encoders"]["methods"] == [] and "vgg16-caffe-hed" in rows["encoders"]["weights"]

    assert main(["plugins"], registry=registry) == 0
    text = capsys.readouterr().out
    assert "ink  (ink-pack 1.2)  ok\n  weights: ink-wash\n" in text
    assert "broken  (broken 0.1)  failed\n  FAILED: failed to load: ModuleNotFoundError" in text
    assert "gatys  (plugin_host 0.1.0, built-in)  ok\n  methods: gatys\n" in text
    assert "off  (off 2.0)  disabled" in text


def test_a_method_of_a_plugin_that_failed_names_the_plugin_and_its_reason(make_registry, fake_modules):
    from plugin_host.errors import PluginError

    fake_modules("half_plugin", module("half_plugin", register_methods=lambda register: register(
        make_method("posterize", schema=Schema((FloatParam("seed", default=1.0),))))))
    registry = make_registry(entry_points=[entry_point("posterize", "no_such_module_here")])
    with pytest.raises(PluginError, match="plugin 'posterize': failed to load: ModuleNotFoundError.*so there is no "
                                          "method 'posterize'"):
        registry.method("posterize")
    registry = make_registry(entry_points=[entry_point("half", "half_plugin")])
    with pytest.raises(PluginError, match="plugin 'half': invalid method 'posterize'.*'seed' is taken by the host"):
        registry.method("posterize")
