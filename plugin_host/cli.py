"""The ``plugin_host`` command: list, info, run, train, weights, and plugin-contributed commands.

``run METHOD`` and ``train METHOD`` get one typed flag per declared parameter, generated from
the method's schema, so ``plugin_host run gatys --help`` documents exactly that method.
Torch is imported only once a command needs it, so ``--help`` and ``list`` answer quickly.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__, host_options
from .errors import Cancelled, ExitCode, ParameterError, PluginHostError
from .image_files import IMAGE_SUFFIXES, check_input_file, folder_images, path_error
from .memory import use_huge_pages
from .method import Method
from .plugins import Registry, load_registry
from .progress import CancelToken, make_progress
from .schema import BoolParam, ImageInput, ModelParam, Param, Schema, deprecation_message



# -- parser generation ---------------------------------------------------------------------

_flag = host_options.flag


def _param_help(param: Param, registry: Registry) -> str:
    allowed = "" if isinstance(param, BoolParam) else param.describe_allowed()  # a flag takes no value
    if isinstance(param, ModelParam):
        from .weights.user_models import printable  # a card's name may hold terminal escapes

        allowed = ", ".join(printable(n) for n in registry.model_names().get(param.model_kind, [])) or "none installed"
    parts = [param.help.rstrip(".")] if param.help else []
    if allowed:
        parts.append(allowed)
    if param.default not in (None, "", {}):
        default = param.default
        if isinstance(param, BoolParam):
            default = "on" if default else "off"
        parts.append(f"default {','.join(map(str, default)) if isinstance(default, tuple) else default}")
    return "; ".join(parts).replace("%", "%%")


def add_schema_arguments(parser: argparse.ArgumentParser, schema: Schema, registry: Registry) -> None:
    """One flag per parameter. Values stay text: :meth:`Schema.validate` does all coercion."""
    group = parser.add_argument_group("method parameters")
    for param in schema:
        flags = [_flag(name) for name in (param.name, *param.cli_aliases)]
        if isinstance(param, BoolParam):
            group.add_argument(*flags, dest=param.name, default=None,
                               action=argparse.BooleanOptionalAction, help=_param_help(param, registry))
        else:
            group.add_argument(*flags, dest=param.name, default=None, metavar=param.kind.upper(),
                               help=_param_help(param, registry))
        _add_former_flags(group, param)


def _add_former_flags(group: argparse._ArgumentGroup, param: Param) -> None:
    """Hidden flags for the former names of ``param`` (``renamed_from``): they set it, with a warning."""
    if not param.renamed_from:
        return
    flags = [_flag(name) for name in param.renamed_from]
    base = argparse.BooleanOptionalAction if isinstance(param, BoolParam) else argparse._StoreAction

    class Former(base):  # type: ignore[misc, valid-type]
        def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
            old = option_string.removeprefix("--no-").removeprefix("--")
            print(f"warning: {deprecation_message(old, param.name, flag=True)}", file=sys.stderr)
            super().__call__(parser, namespace, values, option_string)

    extra = {} if isinstance(param, BoolParam) else {"metavar": param.kind.upper()}
    group.add_argument(*flags, dest=param.name, default=None, action=Former, help=argparse.SUPPRESS, **extra)


def _add_input_arguments(parser: argparse.ArgumentParser, inputs: Sequence[ImageInput]) -> None:
    for spec in inputs:
        if spec.role == "content":
            parser.add_argument(spec.name, nargs="+", type=Path,
                                help=f"{spec.help or 'image(s) to process'} (files or folders)")
            continue
        parser.add_argument(_flag(spec.name), dest=spec.name, type=Path, action="append",
                            required=spec.required, metavar="FILE",
                            help=spec.help + (" (repeat for several)" if spec.multiple else ""))
        if spec.weighted:
            parser.add_argument(_flag(spec.name + "_blend"), dest=spec.name + "_blend", metavar="W,W,…",
                                help=f"blend weights, one per {spec.name} image (normalised to sum 1)")


def _fill_run_parser(parser: argparse.ArgumentParser, method: Method, registry: Registry) -> None:
    _add_input_arguments(parser, method.inputs)
    add_schema_arguments(parser, method.schema, registry)
    host_options.add_arguments(parser.add_argument_group("output and runtime"), host_options.RUN)


def _fill_train_parser(parser: argparse.ArgumentParser, method: Method, registry: Registry) -> None:
    add_schema_arguments(parser, method.train_schema, registry)
    host_options.add_arguments(parser.add_argument_group("runtime"), host_options.TRAIN)


def _buildable(prog: str, fill: Callable[[argparse.ArgumentParser], None], drop: Callable[[str], None]) -> bool:
    """Fill a scratch parser first: a method or command whose flags argparse refuses is dropped as
    its plugin's failure instead of breaking every command, ``list`` included."""
    try:
        fill(argparse.ArgumentParser(prog=prog))
        return True
    except Exception as err:  # argparse.ArgumentError for clashing flags, or a plugin's own bug
        drop(f"the options of `{prog}` cannot be built: {type(err).__name__}: {err}")
        return False


def build_parser(registry: Registry) -> argparse.ArgumentParser:
    """The whole command line. A method or plugin command whose flags cannot be built moves from
    ``registry`` to ``registry.failures`` (see :func:`_buildable`)."""
    parser = argparse.ArgumentParser(prog="plugin_host", description="Neural style filters from the command line.")
    parser.add_argument("--version", action="version", version=f"plugin_host {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    listing = commands.add_parser("list", help="installed methods, their plugins, and failed plugins")
    listing.add_argument("--json", action="store_true")
    plugins = commands.add_parser("plugins", help="every plugin: distribution, version, what it contributed or "
                                                  "why it failed", description="Every plugin the host found: its "
                                                  "distribution and version, the methods, weights and commands it "
                                                  "contributed, and why any of it failed.")
    plugins.add_argument("--json", action="store_true")
    info = commands.add_parser("info", help="a method's inputs and parameters")
    info.add_argument("method")
    info.add_argument("--json", action="store_true")

    for name, entry in sorted(registry.methods.items()):  # trial builds first: a failure drops the method
        for command, fill in (("run", _fill_run_parser), ("train", _fill_train_parser)):
            if (command == "run" or entry.method.can_train) and name in registry.methods:
                _buildable(f"plugin_host {command} {name}", lambda p, m=entry.method, f=fill: f(p, m, registry),
                           lambda why, n=name: registry.drop_method(n, why))

    run = commands.add_parser("run", help="apply a method to images", description="Apply a method to images.")
    run_methods = run.add_subparsers(dest="method", metavar="METHOD", required=True)
    for name, entry in sorted(registry.methods.items()):
        _fill_run_parser(run_methods.add_parser(name, help=entry.method.title, description=entry.method.description),
                         entry.method, registry)

    train = commands.add_parser("train", help="train a model for a method")
    train_methods = train.add_subparsers(dest="method", metavar="METHOD", required=True)
    for name, entry in sorted(registry.methods.items()):
        if entry.method.can_train:
            _fill_train_parser(train_methods.add_parser(name, help=entry.method.title), entry.method, registry)

    weights = commands.add_parser("weights", help="list, fetch, verify or import weights files")
    weights_cmds = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    wl = weights_cmds.add_parser("list", help="registered weights and where they are")
    wl.add_argument("--json", action="store_true")
    wf = weights_cmds.add_parser("fetch", help="download (or build) weights into the cache")
    wf.add_argument("names", nargs="+")
    wf.add_argument("-q", "--quiet", action="store_true")
    wv = weights_cmds.add_parser("verify", help="check installed files against their digests")
    wv.add_argument("names", nargs="*")
    wi = weights_cmds.add_parser("import", help="copy a file you obtained yourself into the cache")
    wi.add_argument("path", type=Path)
    wi.add_argument("--name", help="registry name, if the digest is not known in advance")
    wp = weights_cmds.add_parser("package", help="copy a model and its card into a style pack's models folder",
                                 description="Copy a model you trained (its name in `weights list`, or a NAME.pth "
                                             "file beside its NAME.pth.json card) into the folder a style pack "
                                             "registers with packaged_models(), with its sha256 and size on the card.")
    wp.add_argument("model", help="an installed model's name, or a .pth file with its card")
    wp.add_argument("--into", type=Path, required=True, metavar="FOLDER", help="the pack's models folder")

    from .serve.cli import add_commands as add_bridge_commands

    add_bridge_commands(commands)  # serve, gimp install|uninstall|doctor

    for command in list(registry.commands.values()):
        if _buildable(f"plugin_host {command.name}", command.add_arguments,
                      lambda why, n=command.name: registry.drop_command(n, why)):
            sub = commands.add_parser(command.name, help=command.help)
            command.add_arguments(sub)
            sub.set_defaults(plugin_handler=command.handler)
    return parser


# -- commands -------------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace, registry: Registry) -> int:
    rows = [{"method": name, "title": e.method.title, "plugin": e.plugin.name,
             "distribution": e.plugin.distribution, "version": e.plugin.version, "builtin": e.plugin.builtin,
             "can_train": e.method.can_train, "status": "ok"}
            for name, e in sorted(registry.methods.items())]
    failures = [f.to_json() for f in registry.failures]
    if args.json:
        print(json.dumps({"methods": rows, "failures": failures}, indent=2))
        return ExitCode.OK
    width = max([len(r["method"]) for r in rows] + [6])
    for row in rows:
        origin = f"{row['plugin']} ({row['distribution']} {row['version']})" if row["distribution"] else row["plugin"]
        origin += ", built-in" if row["builtin"] else ""
        train = ", trains" if row["can_train"] else ""
        print(f"{row['method']:<{width}}  {row['title']}  [{origin}{train}]  {row['status']}")
    if not rows:
        print("no methods installed")
    for failure in registry.failures:
        print(f"FAILED {failure.plugin}: {failure.reason}")
    return ExitCode.OK


def cmd_plugins(args: argparse.Namespace, registry: Registry) -> int:
    rows = registry.report()
    if args.json:
        print(json.dumps({"plugins": [row.to_json() for row in rows]}, indent=2))
        return ExitCode.OK
    for row in rows:
        info = row.plugin
        origin = " ".join(p for p in (info.distribution, info.version) if p) or "not installed"
        print(f"{info.name}  ({origin}{', built-in' if info.builtin else ''})  {row.status}")
        for label, names in (("methods", row.methods), ("weights", row.weights), ("commands", row.commands)):
            if names:
                print(f"  {label}: {', '.join(names)}")
        for reason in row.failures:
            print(f"  FAILED: {reason}")
    if not rows:
        print("no plugins found")
    return ExitCode.OK


def cmd_info(args: argparse.Namespace, registry: Registry) -> int:
    method = registry.method(args.method)
    described = registry.describe(args.method)
    if args.json:
        print(json.dumps(described, indent=2))
        return ExitCode.OK
    print(f"{method.name}: {method.title}\n\n{method.description}\n\ninputs:")
    for spec in method.inputs:
        flags = ", ".join(k for k in ("required", "multiple", "weighted") if getattr(spec, k))
        print(f"  {spec.name:<20} {spec.role} ({flags}) {spec.help}")
    if not method.inputs:
        print("  none: it makes a picture from its parameters")
    print("parameters:")
    for param in method.schema:
        print(f"  {_flag(param.name):<24} {param.kind:<7} {_param_help(param, registry).replace('%%', '%')}")
    return ExitCode.OK


def expand_inputs(paths: Sequence[Path]) -> list[Path]:
    """Files as given (each checked to be a regular file); folders become their image files, sorted."""
    found: list[Path] = []
    for path in paths:
        found.extend(folder_images(path) if _is_folder(path) else [check_input_file(path)])
    return found


def _is_folder(path: Path, what: str = "input") -> bool:
    try:
        return path.is_dir()
    except OSError as exc:  # a name too long, a folder on the way not searchable
        raise path_error(path, exc, what) from exc


def cmd_run(args: argparse.Namespace, registry: Registry, cancel: CancelToken) -> int:
    from .imaging.io import check_output_path, ensure_not_overwriting, save_image
    from .runner import Session

    host_options.check_namespace(args, host_options.RUN)
    _set_threads(args.threads)
    session = Session(registry, device=args.device, seed=args.seed, max_pixels=args.max_pixels,
                      precision=args.precision, memory=args.memory)
    method = session.method(args.method)
    raw = {p.name: getattr(args, p.name) for p in method.schema}
    params = session.validate(method, raw)
    wanted = method.content_input
    contents: list[Path | None] = [None] if wanted is None else expand_inputs(getattr(args, wanted.name))
    extra = {s.name: getattr(args, s.name) for s in method.inputs if s.role != "content"}
    blends = {s.name: _parse_blend(getattr(args, s.name + "_blend"), s.name)
              for s in method.inputs if s.weighted and getattr(args, s.name + "_blend", None)}
    outputs = _plan_outputs(contents, args.output, method.name)
    every_input = [c for c in contents if c is not None] + [check_input_file(p) for v in extra.values() if v for p in v]
    for out in outputs:  # every output checked before the first run: none fails after minutes of work
        check_output_path(out)
        ensure_not_overwriting(out, every_input, args.overwrite)
    progress = make_progress("none" if args.quiet else args.progress)
    for content, out in zip(contents, outputs):
        images = {**({} if wanted is None else {wanted.name: content}), **{k: v for k, v in extra.items() if v}}
        session.context.preview_dir, session.context.preview_prefix = out.parent, f"{out.stem}-step"
        result = session.run(method.name, images, validated=params, blend_weights=blends,
                             progress=progress, cancel=cancel)
        depth = result.bit_depth if args.bit_depth == "auto" else int(args.bit_depth)
        if depth == 16 and out.suffix.lower() not in (".png", ".tif", ".tiff"):
            depth = 8
        save_image(out, result.rgb, result.alpha, bit_depth=depth, quality=args.quality)
        if not args.quiet:
            print(out)
    return ExitCode.OK


def _parse_blend(text: str | None, name: str) -> list[float] | None:
    if not text:
        return None
    from .schema import FloatParam, ListParam

    return list(ListParam(f"{name}_blend", item=FloatParam("w", min=0)).coerce(text))


def _plan_outputs(contents: list[Path | None], output: Path | None, method: str) -> list[Path]:
    """One output per content; ``[None]`` (a method without a content image) writes METHOD.png by default."""
    from .errors import InputImageError
    from .runner import output_path_for

    if len(contents) == 1 and output is not None and not _is_folder(output, "output"):
        return [output]
    if contents == [None]:
        return [(output or Path.cwd()) / f"{method}.png"]
    folder = output or Path.cwd()
    if len(contents) > 1 and output is not None and output.suffix.lower() in IMAGE_SUFFIXES:
        raise InputImageError(f"{len(contents)} inputs but -o names one file ({output})",
                              hint="give -o a folder for several inputs")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise path_error(folder, exc, "output folder") from exc
    outputs = [output_path_for(c, folder, method) for c in contents]
    if len(set(outputs)) != len(outputs):
        raise InputImageError("two inputs have the same file name and would write the same output",
                              hint="run them separately or rename one")
    return outputs


def cmd_train(args: argparse.Namespace, registry: Registry, cancel: CancelToken) -> int:
    from .runner import Session

    host_options.check_namespace(args, host_options.TRAIN)
    _set_threads(args.threads)
    local_rank = os.environ.get("LOCAL_RANK", "")
    if local_rank.isdigit() and args.device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():  # under torchrun: this rank's GPU, before anything touches cuda:0
            torch.cuda.set_device(int(local_rank))
    session = Session(registry, device=args.device, seed=args.seed, precision=args.precision)
    method = session.method(args.method)
    params = method.train_schema.validate({p.name: getattr(args, p.name) for p in method.train_schema},
                                          models=registry.model_names())
    ctx = session.context
    ctx.progress = make_progress("none" if args.quiet else args.progress)
    ctx.cancel = cancel
    result = method.resolve_train()(params, ctx)
    ctx.progress.close()
    if result is not None and not args.quiet:
        print(result)
    return ExitCode.OK


def _set_threads(threads: int | None) -> None:
    """``--threads``: torch's intra-op threads for this process (on a shared two-core machine two threads
    ran five times slower than one)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def cmd_weights(args: argparse.Namespace, registry: Registry, cancel: CancelToken) -> int:
    from .weights.store import WeightsStore, unchecked
    from .weights.user_models import printable

    store = WeightsStore(registry.weights)
    action = args.weights_command
    if action == "list":
        rows = store.status()
        for row in rows:  # who registered each entry
            owner = registry.weights_plugin.get(row["name"])
            row["plugin"], row["builtin"] = (owner.name, owner.builtin) if owner else (None, False)
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
        else:
            for row in rows:  # names and paths from cards and folders: escapes shown, not obeyed
                row = {key: printable(value) if isinstance(value, str) else value for key, value in row.items()}
                print(f"{row['name']:<34} {row['kind']:<18} {row['plugin'] or '-':<12} {row['location']}")
        return ExitCode.OK
    if action == "fetch":
        progress = make_progress("none" if args.quiet else "bar")
        for name in args.names:
            path = store.path(name, fetch=True, progress=progress, cancel=cancel)
            progress.close()
            print(f"{name}: {path}")
        return ExitCode.OK
    if action == "verify":
        results = store.verify(args.names or None)
        bad = 0
        for item in results:
            print(printable(f"{item.name:<24} {item.status:<11} {item.path or ''} {item.detail or ''}".rstrip()))
            bad += item.status == "bad-digest" or (bool(args.names) and item.status == "missing")
        return ExitCode.USAGE if bad else ExitCode.OK
    if action == "package":
        print(_package(args.model, args.into, store))
        return ExitCode.OK
    entry = store.import_file(args.path, name=args.name)
    note = ("; no digest of it is known, so only its contents were checked (weights only, finite, "
            "the expected layout)") if unchecked(entry) else ""
    print(printable(f"imported {args.path} as {entry.name}{note}"))
    return ExitCode.OK


def _package(model: str, into: Path, store: Any) -> Path:
    """``model`` (a registered name or a .pth file with a card) copied into ``into`` by :func:`package_model`."""
    from .errors import WeightsError
    from .weights.user_models import package_model, read_card

    path = Path(model)
    if not path.is_file():
        path = store.locate(store.entry(model).name) or Path(model)
        if not path.is_file():
            raise WeightsError(f"model {model!r} is registered but not installed",
                               hint=f"run `plugin_host weights fetch {model}` first")
    card = read_card(path)
    if card is None or not card.get("model_kind"):
        raise WeightsError(f"{path} has no card ({path.name}.json with its name and model_kind)",
                           hint="models written by `plugin_host train` have one; write it by hand otherwise")
    return package_model(path, into, {"name": path.name.removesuffix(".pth"), **card})


# -- entry point ----------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None, registry: Registry | None = None) -> int:
    use_huge_pages()  # before anything imports torch
    registry = registry if registry is not None else load_registry()
    parser = build_parser(registry)
    args = parser.parse_args(argv)
    if args.command not in ("list", "plugins"):  # these show failures themselves
        for failure in registry.failures:
            print(f"warning: plugin {failure.plugin} failed: {failure.reason}", file=sys.stderr)
    for problem in registry.user_model_problems:  # the user's own model cards, whatever the command
        print(f"warning: {problem}", file=sys.stderr)
    cancel = CancelToken()
    handlers: dict[str, Callable[[], int]] = {
        "list": lambda: cmd_list(args, registry),
        "plugins": lambda: cmd_plugins(args, registry),
        "info": lambda: cmd_info(args, registry),
        "run": lambda: cmd_run(args, registry, cancel),
        "train": lambda: cmd_train(args, registry, cancel),
        "weights": lambda: cmd_weights(args, registry, cancel),
        "serve": lambda: _bridge().cmd_serve(args, registry, cancel),
        "gimp": lambda: _bridge().cmd_gimp(args, registry),
    }
    handler = handlers.get(args.command) or (lambda: args.plugin_handler(args))
    try:
        with _cancel_on_signals(cancel):
            typed = list(argv) if argv is not None else sys.argv[1:]
            return _guarded(lambda: _flags_in_errors(handler, registry, args, typed), registry,
                            getattr(args, "method", None), args.command)
    except KeyboardInterrupt:  # the second signal, landed while the first one's cancel was being reported
        return ExitCode.CANCELLED


def _flags_in_errors(handler: Callable[[], int], registry: Registry, args: argparse.Namespace,
                     typed: Sequence[str]) -> int:
    """Name a bad parameter or host option by the flag the user typed (``--blur-sigma``), not ``blur_sigma``."""
    try:
        return handler()
    except ParameterError as err:
        flags = _flags_of(err.name, registry, args)
        if not flags:
            raise
        given = next((f for f in flags if any(t == f or t.startswith(f + "=") for t in typed)), flags[0])
        raise err.naming(given) from None


def _flags_of(name: str, registry: Registry, args: argparse.Namespace) -> list[str]:
    """The flags of parameter or host option ``name`` in the command that ran (none if it has none)."""
    entry = registry.methods.get(getattr(args, "method", None) or "")
    schema = None if entry is None else {"run": entry.method.schema, "train": entry.method.train_schema}.get(
        args.command)
    param = next((p for p in schema or () if p.name == name), None)
    if param is not None:
        return host_options.param_flags(param)
    if args.command not in (host_options.RUN, host_options.TRAIN):
        return []
    owned = [o for o in host_options.options(args.command) if o.name == name]
    return [owned[0].flag, *owned[0].flags()[:-1]] if owned else []  # the long flag first


def _bridge() -> Any:
    from .serve import cli as bridge_cli

    return bridge_cli


def _guarded(handler: Callable[[], int], registry: Registry, method: str | None, command: str = "") -> int:
    """Map outcomes to exit codes: user errors and cancels print one line, bugs get a log file."""
    try:
        return int(handler())
    except PluginHostError as err:
        print(f"error: {err}", file=sys.stderr)
        return ExitCode.USAGE
    except (Cancelled, KeyboardInterrupt):
        after = ("the last checkpoint is kept: run the same command to resume" if command == "train"
                 else "no partial output was written")
        print(f"cancelled: {after}", file=sys.stderr)
        return ExitCode.CANCELLED
    except Exception as err:
        if os.environ.get("PLUGIN_HOST_DEBUG"):
            raise
        culprit = "plugin_host"
        if method and method in registry.methods:
            info = registry.methods[method].plugin
            culprit = f"plugin {info.name} ({info.distribution or '?'} {info.version or '?'})"
        log = _write_log(traceback.format_exc())
        print(f"internal error in {culprit}: {type(err).__name__}: {err}\n"
              f"  the traceback is in {log}; set PLUGIN_HOST_DEBUG=1 to see it here", file=sys.stderr)
        return ExitCode.INTERNAL


def _write_log(text: str) -> Path:
    import tempfile

    import platformdirs

    folder = Path(platformdirs.user_log_dir("plugin_host"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir())
    path = folder / "last-error.log"
    path.write_text(text)
    return path


class _cancel_on_signals:
    """First Ctrl-C or SIGTERM asks the run to stop at its next check; a second one interrupts at once.

    Later ones are ignored, also after the block: cleanup (removing temp files) must finish, and
    the process must still end with status 130, not be killed by the signal.
    """

    def __init__(self, token: CancelToken) -> None:
        self.token = token
        self.previous: dict[int, Any] = {}
        self.signals = 0

    def _handle(self, signum: int, frame: Any) -> None:
        self.signals += 1
        if self.signals == 1:
            self.token.cancel()
        elif self.signals == 2:
            raise KeyboardInterrupt

    def __enter__(self) -> "_cancel_on_signals":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a server worker)
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, signal.SIG_IGN if self.signals else previous)
