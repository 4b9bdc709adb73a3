"""The host option table: its flags, its checks, the Python keywords, and the names methods may not take.

Each clash is a plugin listed as failed with its reason while every other command keeps working.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import types

import pytest
from PIL import Image

from plugin_host import Command, Method, hookimpl, host_options
from plugin_host.api import MethodHandle, load_method
from plugin_host.cli import build_parser, main
from plugin_host.errors import ParameterError
from plugin_host.plugins import PluginInfo, RegisteredMethod, Registry
from plugin_host.runner import Session
from plugin_host.schema import BoolParam, FloatParam, ImageInput, IntParam, Schema


def invert(inputs, params, ctx):
    ctx.progress.stage("invert", total=1)
    ctx.progress.advance()
    return 1 - inputs["content"]


def method(name="good", **changes):
    fields = dict(name=name, title=name.title(), description="d",
                  inputs=(ImageInput("content"), ImageInput("style", role="style", required=False, weighted=True)),
                  schema=Schema((FloatParam("strength", default=0.5, min=0, max=1),)), run=invert)
    fields.update(changes)
    return Method(**fields)


def plugin(name, *methods, commands=()):
    mod = types.ModuleType(name)
    mod.register_methods = hookimpl(lambda register: [register(m) for m in methods])
    if commands:
        mod.register_commands = hookimpl(lambda register: [register(c) for c in commands])
    return mod


def cli(registry, *args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args], registry=registry)
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


CLASHES = {
    "param-precision": (method("clash", schema=Schema((FloatParam("precision", default=1.0),))),
                        "parameter 'precision' is taken by the host (--precision)"),
    "alias-max-pixels": (method("clash", schema=Schema((IntParam("limit", default=1, cli_aliases=("max-pixels",)),))),
                         "parameter 'limit': CLI alias 'max-pixels' is taken by the host (--max-pixels)"),
    "train-device": (method("clash", train=invert, train_schema=Schema((IntParam("device", default=0),))),
                     "train parameter 'device' is taken by the host (--device)"),
    "train-seed": (method("clash", train=invert, train_schema=Schema((IntParam("seed", default=0),))),
                   "train parameter 'seed' is taken by the host (--seed)"),
    "bool-cancel": (method("clash", schema=Schema((BoolParam("cancel"),))),
                    "parameter 'cancel' is taken by the host (the cancel= keyword of a method call)"),
    "input-output": (method("clash", inputs=(ImageInput("output"),)), "input 'output' is taken by the host (--output)"),
    "param-method": (method("clash", schema=Schema((IntParam("method", default=1),))),
                     "parameter 'method' is taken by the host (the METHOD argument)"),
    "alias-on-input": (method("clash", schema=Schema((FloatParam("amount", default=1.0, cli_aliases=("style",)),))),
                       "`run` flag --style of parameter 'amount' is already input 'style'"),
    "bool-negation": (method("clash", schema=Schema((BoolParam("smooth"), BoolParam("no_smooth")))),
                      "`run` flag --no-smooth of parameter 'no_smooth' is already parameter 'smooth'"),
    "former-seed": (method("clash", schema=Schema((FloatParam("amount", default=1.0, renamed_from=("seed",)),))),
                    "parameter 'amount': former name 'seed' is taken by the host (--seed)"),
    "former-is-a-parameter": (method("clash", schema=Schema((FloatParam("amount", default=1.0, renamed_from=("level",)),
                                                             FloatParam("level", default=1.0)))),
                              "`run` flag --level of parameter 'level' is already parameter 'amount'"),
    "former-is-an-alias": (method("clash", schema=Schema((FloatParam("amount", default=1.0, renamed_from=("level",)),
                                                          FloatParam("size", default=1.0, cli_aliases=("level",))))),
                           "`run` flag --level of parameter 'size' is already parameter 'amount'"),
    "former-on-input": (method("clash", schema=Schema((FloatParam("amount", default=1.0, renamed_from=("style",)),))),
                        "`run` flag --style of parameter 'amount' is already input 'style'"),
}


@pytest.mark.parametrize("case", sorted(CLASHES))
def test_a_clashing_plugin_is_listed_as_failed_and_every_other_command_works(case, make_registry, tmp_path):
    clash, reason = CLASHES[case]
    registry = make_registry(plugin("good_plugin", method("good")), plugin("clash_plugin", clash))
    assert list(registry.methods) == ["good"]
    assert [(f.plugin, reason in f.reason) for f in registry.failures] == [("clash_plugin", True)], registry.failures

    code, out, _ = cli(registry, "list")
    assert code == 0 and "good" in out and f"FAILED clash_plugin: invalid method 'clash': {reason}" in out
    assert cli(registry, "info", "good")[0] == 0
    assert cli(registry, "run", "good", "--help")[0] == 0
    content = tmp_path / "in.png"
    Image.new("RGB", (8, 6), (10, 20, 30)).save(content)
    code, out, err = cli(registry, "run", "good", content, "-o", tmp_path / "out.png", "--device", "cpu", "-q")
    assert code == 0, err
    assert Image.open(tmp_path / "out.png").getpixel((0, 0)) == (245, 235, 225)
    assert "warning: plugin clash_plugin failed" in err


def test_the_table_names_every_host_option_once_with_a_valid_default():
    names = [o.name for o in host_options.HOST_OPTIONS]
    assert len(names) == len(set(names))
    for option in host_options.HOST_OPTIONS:
        assert option.where and set(option.where) <= {"run", "train", "session", "call"}, option.name
        assert option.check(None) == option.value.default
    assert set(host_options.reserved_names()) == set(names) | {"help", "method", "command"}


@pytest.mark.parametrize("command", ["run", "train"])
def test_the_command_lines_get_exactly_the_tables_flags(command):
    registry = Registry()
    registry.methods["good"] = RegisteredMethod(method("good", train=invert), PluginInfo("p", None, None))
    parser = build_parser(registry)
    sub = parser._subparsers._group_actions[0].choices[command]._subparsers._group_actions[0].choices["good"]
    flags = {f for action in sub._actions for f in action.option_strings} - {"-h", "--help"}
    expected = {f for o in host_options.options(command) for f in o.flags()}
    assert expected <= flags
    assert flags - expected == ({"--strength", "--style", "--style-blend"} if command == "run" else set())


@pytest.mark.parametrize("flag, value, allowed", [
    ("--max-pixels", "0", "a whole number ≥ 1"), ("--max-pixels", "-3", "a whole number ≥ 1"),
    ("--quality", "1000", "a whole number from 0 to 100"), ("--quality", "-1", "a whole number from 0 to 100"),
    ("--seed", "-1", "a whole number from 0"), ("--device", "gpu", "auto, cpu, cuda, mps or cuda:N"),
    ("--precision", "fp16", "did you mean 'bf16'"), ("--quality", "high", "expected a whole number"),
])
def test_bad_host_options_are_one_line_naming_the_flag(make_registry, tmp_path, flag, value, allowed):
    registry = make_registry(plugin("good_plugin", method("good")))
    content = tmp_path / "in.png"
    Image.new("RGB", (8, 6)).save(content)
    code, out, err = cli(registry, "run", "good", content, "-o", tmp_path / "out.png", flag, value)
    assert code == 2 and err.startswith(f"error: {flag}: ") and allowed in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out.png").exists()


def test_parameter_errors_name_the_flag_the_user_typed(make_registry, tmp_path):
    limited = method("good", schema=Schema((FloatParam("blur_sigma", default=1.0, min=0, max=10,
                                                       cli_aliases=("sigma",)),)))
    registry = make_registry(plugin("good_plugin", limited))
    content = tmp_path / "in.png"
    Image.new("RGB", (8, 6)).save(content)
    for typed in ("--blur-sigma", "--sigma"):
        code, _, err = cli(registry, "run", "good", content, typed, "99")
        assert code == 2 and err.startswith(f"error: {typed}: out of range: 99.0"), err
        assert "blur_sigma" not in err
    code, _, err = cli(registry, "run", "good", content, "--sigma=-1")
    assert err.startswith("error: --sigma: out of range"), err


def test_python_keywords_are_the_tables():
    session_keywords = set(inspect.signature(load_method).parameters) - {"name", "session"}
    assert session_keywords == {o.name for o in host_options.options("session")}
    assert set(inspect.signature(Session).parameters) - {"registry", "store"} == session_keywords
    call = inspect.signature(MethodHandle.__call__).parameters
    assert call["content"].kind is inspect.Parameter.POSITIONAL_ONLY
    assert {n for n, p in call.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD} - {"self"} == \
        {o.name for o in host_options.options("call")}


def test_python_host_keywords_are_checked(make_registry, tiny_image):
    registry = make_registry(plugin("good_plugin", method("good")))
    with pytest.raises(ParameterError, match="'max_pixels': out of range: 0"):
        Session(registry, device="cpu", max_pixels=0)
    with pytest.raises(ParameterError, match="'seed'"):
        load_method("good", device="cpu", seed=-1)
    handle = load_method("good", session=Session(registry, device="cpu"))
    with pytest.raises(ParameterError, match="'cancel': expected a CancelToken or None, got True"):
        handle(tiny_image, cancel=True)
    with pytest.raises(ParameterError, match="'progress': expected a Progress"):
        handle(tiny_image, progress="bar")
    assert handle(tiny_image, strength=0.2).shape == tiny_image.shape


def test_a_parameter_named_content_is_a_keyword_of_the_call(make_registry, tiny_image):
    """The content image is positional-only, so a parameter may be called ``content``."""
    photo = method("good", inputs=(ImageInput("photo"),), schema=Schema((FloatParam("content", default=0.5),)),
                   run=lambda inputs, params, ctx: inputs["photo"] * params.content)
    registry = make_registry(plugin("good_plugin", photo))
    handle = load_method("good", session=Session(registry, device="cpu"))
    assert (handle(tiny_image, content=0.5) - tiny_image / 2).abs().max() < 1e-6


def test_a_method_whose_flags_argparse_refuses_is_dropped_at_build_time():
    """Defence in depth: a method that skipped registration's checks still cannot break the parser."""
    registry = Registry()
    info = PluginInfo("sneaky", "sneaky-dist", "1.0")
    registry.methods["good"] = RegisteredMethod(method("good"), PluginInfo("p", None, None))
    registry.methods["bad"] = RegisteredMethod(method("bad", schema=Schema((IntParam("seed", default=0),))), info)
    code, out, _ = cli(registry, "list", "--json")
    listing = json.loads(out)
    assert code == 0 and [m["method"] for m in listing["methods"]] == ["good"]
    assert listing["failures"][0]["plugin"] == "sneaky"
    assert "`plugin_host run bad` cannot be built: ArgumentError" in listing["failures"][0]["reason"]


def test_a_plugin_command_that_raises_while_adding_arguments_is_dropped(make_registry):
    def broken(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--x")
        parser.add_argument("--x")

    good = Command("good-cmd", "fine", lambda p: p.add_argument("--n", type=int), lambda a: print(a.n) or 0)
    registry = make_registry(plugin("cmds", commands=(good, Command("broken-cmd", "h", broken, lambda a: 0))))
    code, out, _ = cli(registry, "list")
    assert code == 0 and "FAILED cmds: command 'broken-cmd': the options of `plugin_host broken-cmd`" in out
    assert cli(registry, "good-cmd", "--n", "7")[:2] == (0, "7\n")
    assert cli(registry, "broken-cmd")[0] == 2  # argparse: no such command


def fill(inputs, params, ctx):
    return inputs["content"] * 0 + (params.strength if params.smooth else 0.0)


def renamed_registry(make_registry):
    schema = Schema((FloatParam("strength", default=0.5, min=0, max=1, renamed_from=("alpha",)),
                     BoolParam("smooth", renamed_from=("soft",))))
    return make_registry(plugin("good_plugin", method("good", schema=schema, run=fill)))


def test_a_former_name_is_a_hidden_flag_that_warns_and_sets_the_new_one(make_registry, tmp_path):
    registry = renamed_registry(make_registry)
    content = tmp_path / "in.png"
    Image.new("RGB", (8, 6)).save(content)
    code, _, err = cli(registry, "run", "good", content, "--alpha", "0.25", "--soft", "-o", tmp_path / "o.png", "-q",
                       "--device", "cpu")
    assert code == 0 and Image.open(tmp_path / "o.png").getpixel((0, 0)) == (64, 64, 64), err
    assert err.splitlines() == [
        "warning: --alpha is deprecated and will be removed in the next release: use --strength",
        "warning: --soft is deprecated and will be removed in the next release: use --smooth"], err
    code, _, err = cli(registry, "run", "good", content, "--strength", "0.75", "--no-smooth", "-o", tmp_path / "n.png",
                       "-q", "--device", "cpu")
    assert code == 0 and Image.open(tmp_path / "n.png").getpixel((0, 0)) == (0, 0, 0) and err == "", err
    code, help_text, _ = cli(registry, "run", "good", "--help")
    assert code == 0 and "--strength" in help_text and "--alpha" not in help_text and "--soft" not in help_text


def test_a_former_name_out_of_range_is_named_as_typed(make_registry, tmp_path):
    content = tmp_path / "in.png"
    Image.new("RGB", (8, 6)).save(content)
    code, _, err = cli(renamed_registry(make_registry), "run", "good", content, "--alpha", "7")
    assert code == 2 and "error: --alpha: out of range: 7.0" in err, err


def test_a_former_name_works_as_a_python_keyword_with_a_deprecation_warning(make_registry):
    handle = MethodHandle(Session(registry=renamed_registry(make_registry), device="cpu"), "good")
    import torch

    with pytest.warns(DeprecationWarning, match="'alpha' is deprecated .*use 'strength'") as caught:
        out = handle(torch.zeros(1, 3, 4, 4), alpha=0.25, smooth=True)
    assert caught[0].filename == __file__  # the caller's line: Python shows it by default only there
    assert torch.allclose(out, torch.full((1, 3, 4, 4), 0.25))
