"""The host's own options, in one table: the CLI flags, the Python keywords and the names methods may not use.

Each :class:`HostOption` says where it appears (the ``run`` and ``train`` command lines, a
:class:`~plugin_host.runner.Session` or :func:`~plugin_host.api.load_method` keyword, a keyword
of a loaded method's call) and how its value is checked: a parameter kind of
:mod:`plugin_host.schema`, so host options are validated like method parameters, with the same
messages. A method's parameters, train parameters, inputs and CLI aliases may not take any name
in this table (see :func:`clashes`). Standard library only: ``plugin_host list`` imports it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from .devices import DEVICE_CHOICES
from .errors import ParameterError
from .memory import MEMORY_CHOICES
from .precision import PRECISION_CHOICES
from .progress import CancelToken, Progress
from .schema import BoolParam, ChoiceParam, IntParam, Param, PathParam, Schema, StringParam

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from .method import Method

#: Where an option appears: on the command lines of ``run``/``train``, as a keyword of
#: ``Session``/``load_method`` ("session") or of a loaded method's call ("call").
RUN, TRAIN, SESSION, CALL = "run", "train", "session", "call"
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class _DeviceParam(StringParam):
    """``auto``, ``cpu``, ``cuda``, ``mps``, or an indexed device such as ``cuda:1``."""

    def coerce(self, value: Any) -> str:
        text = str(value).strip()
        base, _, index = text.partition(":")
        if base not in DEVICE_CHOICES or ":" in text and not (index.isdigit() and base in ("cuda", "mps")):
            raise self.fail(value, "unknown device")
        return text

    def describe_allowed(self) -> str:
        return ", ".join(DEVICE_CHOICES) + " or cuda:N"


@dataclass(frozen=True)
class HostOption:
    """One option the host owns.

    :param value: name, help, default and the check of a value given as text or typed.
    :param where: :data:`RUN`, :data:`TRAIN` (command lines), :data:`SESSION`, :data:`CALL` (Python).
    :param short: a one-letter flag besides the long one (``-o``).
    :param switch: a flag that takes no value (``--overwrite``).
    :param python_type: in Python (``call``), the object expected instead of text (a ``CancelToken``).
    """

    value: Param
    where: tuple[str, ...]
    short: str | None = None
    switch: bool = False
    python_type: type | None = None

    @property
    def name(self) -> str:
        return self.value.name

    @property
    def flag(self) -> str:
        return flag(self.name)

    def flags(self) -> list[str]:
        return [f for f in (self.short, self.flag) if f]

    def check(self, raw: Any, python: bool = False) -> Any:
        """The value to use for ``raw`` (``None``: the default), or :class:`ParameterError` naming the option.

        ``python``: ``raw`` is a keyword's value, which must be a ``python_type`` object where one is set.
        """
        if python and self.python_type is not None:
            if raw is None or isinstance(raw, self.python_type):
                return raw
            raise ParameterError(self.name, f"expected a {self.python_type.__name__} or None, got {raw!r}")
        return self.value.default if raw is None else self.value.coerce(raw)

    def help_text(self) -> str:
        allowed = "" if isinstance(self.value, (BoolParam, ChoiceParam)) else self.value.describe_allowed()
        parts = [p for p in (self.value.help, allowed) if p]
        if self.value.default not in (None, False):
            parts.append(f"default {self.value.default}")
        return "; ".join(parts).replace("%", "%%")


HOST_OPTIONS: tuple[HostOption, ...] = (
    HostOption(PathParam("output", help="output file (one input) or folder (several); default: CONTENT-METHOD.png "
                                        "here", must_exist=False), (RUN,), short="-o"),
    HostOption(BoolParam("overwrite", help="allow writing over an input file"), (RUN,), switch=True),
    HostOption(ChoiceParam("bit_depth", help="auto keeps the content's depth (16-bit needs .png or .tif)",
                           default="auto", choices=("auto", "8", "16")), (RUN,)),
    HostOption(IntParam("quality", help="JPEG/WebP quality", default=95, min=0, max=100), (RUN,)),
    HostOption(_DeviceParam("device", help="where the networks run", default="auto"), (RUN, TRAIN, SESSION)),
    HostOption(ChoiceParam("precision", help="network arithmetic: auto is bf16 where the CPU or GPU runs it "
                                             "natively (2-4x faster), else fp32",
                           default="auto", choices=PRECISION_CHOICES), (RUN, TRAIN, SESSION)),
    HostOption(ChoiceParam("memory", help="low keeps the peak small, high spends memory for speed (Gatys at "
                                          "512²: 15-18 % faster steps for 250-310 MiB more), auto chooses high "
                                          "when 4 GiB or more are free",
                           default="auto", choices=MEMORY_CHOICES), (RUN, SESSION)),
    HostOption(IntParam("seed", help="seed for bit-identical results on the CPU", min=0, max=2**32 - 1),
               (RUN, TRAIN, SESSION)),
    HostOption(IntParam("max_pixels", help="largest input in pixels (default 100 million)", min=1),
               (RUN, SESSION)),
    HostOption(ChoiceParam("progress", help="bar (terminal), json (one event per line on stderr) or none",
                           default="bar", choices=("bar", "json", "none")), (RUN, TRAIN, CALL), python_type=Progress),
    HostOption(BoolParam("quiet", help="no progress and no messages"), (RUN, TRAIN), short="-q", switch=True),
    HostOption(IntParam("threads", help="CPU threads torch may use (default: torch's choice; 1 is fastest on a busy "
                                        "machine)", min=1, max=1024), (RUN, TRAIN)),
    HostOption(BoolParam("cancel", help="cancel() on it stops the run at its next check", default=None),
               (CALL,), python_type=CancelToken),
)

#: Names the command-line parser uses itself; a method's names may not take them either.
PARSER_NAMES: Mapping[str, str] = {"help": "-h/--help", "method": "the METHOD argument",
                                   "command": "the COMMAND argument"}


def options(where: str) -> list[HostOption]:
    """The options that appear in ``where`` (:data:`RUN`, :data:`TRAIN`, :data:`SESSION` or :data:`CALL`)."""
    return [o for o in HOST_OPTIONS if where in o.where]


def option(name: str) -> HostOption:
    return next(o for o in HOST_OPTIONS if o.name == name)


def reserved_names() -> dict[str, str]:
    """Every host-owned name → what owns it (``--precision``, ``-h/--help``)."""
    return {**{o.name: o.flag if o.where != (CALL,) else f"the {o.name}= keyword of a method call"
               for o in HOST_OPTIONS},
            **PARSER_NAMES}


def flag(name: str) -> str:
    """The command-line flag of a parameter or option name: ``style_weight`` → ``--style-weight``."""
    return "--" + name.replace("_", "-")


def param_flags(param: Param) -> list[str]:
    """The flags ``run``/``train`` give a parameter: its name, ``cli_aliases`` and the hidden former names
    of ``renamed_from`` (``--no-X`` too for a bool)."""
    names = [flag(n) for n in (param.name, *param.cli_aliases, *param.renamed_from)]
    if isinstance(param, BoolParam):
        names += ["--no-" + f[2:] for f in names]
    return names


# -- the command line ---------------------------------------------------------------------------

def add_arguments(group: "argparse._ActionsContainer", where: str) -> None:
    """The flags of the options of ``where``; values stay text until :func:`check_namespace`."""
    for opt in options(where):
        if opt.switch:
            group.add_argument(*opt.flags(), dest=opt.name, action="store_true", help=opt.help_text())
        else:
            metavar = "{" + ",".join(opt.value.choices) + "}" if isinstance(opt.value, ChoiceParam) else None
            group.add_argument(*opt.flags(), dest=opt.name, default=None, metavar=metavar, help=opt.help_text())


def check_namespace(args: "argparse.Namespace", where: str) -> None:
    """Replace each option's text in ``args`` by its checked value (its default when not given)."""
    for opt in options(where):
        setattr(args, opt.name, opt.check(getattr(args, opt.name, None)))


def check_keywords(where: str, **given: Any) -> dict[str, Any]:
    """Checked values of Python keywords of ``where``, e.g. ``check_keywords("session", seed=-1)`` raises."""
    known = {o.name: o for o in options(where)}
    return {name: known[name].check(value, python=True) for name, value in given.items()}


# -- what a method may not use ------------------------------------------------------------------

def clashes(method: "Method") -> list[str]:
    """Why ``method``'s names collide with the host's or with each other (empty when they don't).

    Checks input names, the names, ``cli_aliases`` and ``renamed_from`` of ``schema`` and ``train_schema``
    against :func:`reserved_names`, then every flag ``run METHOD`` and ``train METHOD`` would get for
    uniqueness (a former name that is another parameter's name or alias clashes there).
    """
    reserved = reserved_names()
    found: list[str] = []

    def owned(what: str, name: str) -> None:
        taken = reserved.get(name.replace("-", "_"))
        if taken:
            found.append(f"{what} is taken by the host ({taken}): choose another name")

    inputs = [i for i in method.inputs if hasattr(i, "name")]
    for spec in inputs:
        owned(f"input {spec.name!r}", spec.name)
        if getattr(spec, "weighted", False):
            owned(f"input {spec.name!r} (its blend weights {spec.name}_blend)", f"{spec.name}_blend")
    for label, schema in (("parameter", method.schema), ("train parameter", method.train_schema)):
        for param in schema if isinstance(schema, Schema) else ():
            owned(f"{label} {param.name!r}", param.name)
            for alias in param.cli_aliases:
                if not isinstance(alias, str) or not _ALIAS.match(alias):
                    found.append(f"{label} {param.name!r}: CLI alias {alias!r} must match {_ALIAS.pattern}")
                else:
                    owned(f"{label} {param.name!r}: CLI alias {alias!r}", alias)
            for former in param.renamed_from:
                if not isinstance(former, str) or not former.isidentifier():
                    found.append(f"{label} {param.name!r}: former name {former!r} must be a Python identifier")
                else:
                    owned(f"{label} {param.name!r}: former name {former!r}", former)
    if not found:
        found += _flag_clashes("run", _run_flags(method, inputs)) + _flag_clashes("train", _train_flags(method))
    return found


def _run_flags(method: "Method", inputs: list[Any]) -> Iterator[tuple[str, str]]:
    for spec in inputs:
        if getattr(spec, "role", None) != "content":
            yield flag(spec.name), f"input {spec.name!r}"
            if getattr(spec, "weighted", False):
                yield flag(spec.name + "_blend"), f"input {spec.name!r}'s blend weights"
    yield from _schema_flags("parameter", method.schema)


def _train_flags(method: "Method") -> Iterator[tuple[str, str]]:
    yield from _schema_flags("train parameter", method.train_schema)


def _schema_flags(label: str, schema: Any) -> Iterator[tuple[str, str]]:
    for param in schema if isinstance(schema, Schema) else ():
        for name in param_flags(param):
            yield name, f"{label} {param.name!r}"


def _flag_clashes(command: str, flags: Iterator[tuple[str, str]]) -> list[str]:
    owners: dict[str, str] = {f: f"the host's {f}" for o in options(command) for f in o.flags()}
    owners.update({"-h": "the host's -h/--help", "--help": "the host's -h/--help"})
    found = []
    for name, owner in flags:
        if name in owners and owners[name] != owner:
            found.append(f"`{command}` flag {name} of {owner} is already {owners[name]}")
        owners.setdefault(name, owner)
    return found

