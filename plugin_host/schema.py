"""Declared parameters and inputs of a method: the one source for CLI flags, JSON, GIMP and validation.

A method lists its parameters once, as instances of the kinds below. Everything else is
generated from them: ``plugin_host run METHOD --help``, ``plugin_host info --json``, the
server API and the GIMP dialog. Values arrive as text (CLI, GIMP) or typed (JSON, Python);
:meth:`Schema.validate` coerces both and reports problems naming the parameter and what is
allowed. Standard library only: the GIMP bridge reads the JSON form, never this module.
"""
from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

from .errors import ParameterError, did_you_mean
from .image_files import shown_path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """Base of every parameter kind. ``name`` is a Python identifier (``style_weight``).

    ``cli_aliases``: further names the command line accepts for it (``content`` for ``content_dir``);
    JSON and GIMP use ``name`` only.

    ``renamed_from``: the parameter's former names, still accepted everywhere (command line, Python,
    JSON) for one release with a deprecation warning naming ``name``; the command line hides them.
    """

    name: str
    label: str = ""
    help: str = ""
    default: Any = None
    cli_aliases: tuple[str, ...] = field(default=(), kw_only=True)
    renamed_from: tuple[str, ...] = field(default=(), kw_only=True)
    kind: ClassVar[str] = "param"

    def coerce(self, value: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe_allowed(self) -> str:
        return ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind,
                               "label": self.label or self.name.replace("_", " ").capitalize(),
                               "help": self.help, "default": _jsonable(self.default)}
        for key, value in self._extra_json().items():
            out[key] = _jsonable(value)
        return out

    def _extra_json(self) -> dict[str, Any]:
        return {}

    def fail(self, value: Any, problem: str | None = None) -> ParameterError:
        allowed = self.describe_allowed()
        message = f"{problem or 'invalid value'} {value!r}" + (f"; allowed: {allowed}" if allowed else "")
        return ParameterError(self.name, message)


@dataclass(frozen=True)
class FloatParam(Param):
    min: float | None = None
    max: float | None = None
    step: float | None = None
    kind: ClassVar[str] = "float"

    def coerce(self, value: Any) -> float:
        if isinstance(value, bool):
            raise self.fail(value, "expected a number, got")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.fail(value, "expected a number, got") from None
        if not math.isfinite(number):
            raise self.fail(value, "expected a finite number, got")
        _check_range(self, number)
        return number

    def describe_allowed(self) -> str:
        return _range_text(self.min, self.max, "a number")

    def _extra_json(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max, "step": self.step}


@dataclass(frozen=True)
class IntParam(Param):
    min: int | None = None
    max: int | None = None
    kind: ClassVar[str] = "int"

    def coerce(self, value: Any) -> int:
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            raise self.fail(value, "expected a whole number, got")
        try:
            number = int(value) if not isinstance(value, str) else int(value.strip(), 10)
        except (TypeError, ValueError):
            raise self.fail(value, "expected a whole number, got") from None
        _check_range(self, number)
        return number

    def describe_allowed(self) -> str:
        return _range_text(self.min, self.max, "a whole number")

    def _extra_json(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max}


@dataclass(frozen=True)
class BoolParam(Param):
    default: bool = False
    kind: ClassVar[str] = "bool"

    def coerce(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise self.fail(value, "expected true or false, got")

    def describe_allowed(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class ChoiceParam(Param):
    choices: tuple[str, ...] = ()
    kind: ClassVar[str] = "choice"

    def coerce(self, value: Any) -> str:
        text = str(value).strip()
        if text in self.choices:
            return text
        raise _unknown(self.name, text, self.choices, "value")

    def describe_allowed(self) -> str:
        return ", ".join(self.choices)

    def _extra_json(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}


@dataclass(frozen=True)
class StringParam(Param):
    default: str = ""
    max_length: int = 4096
    kind: ClassVar[str] = "string"

    def coerce(self, value: Any) -> str:
        text = str(value)
        if len(text) > self.max_length:
            raise self.fail(text[:20] + "…", f"longer than {self.max_length} characters:")
        return text

    def _extra_json(self) -> dict[str, Any]:
        return {"max_length": self.max_length}


@dataclass(frozen=True)
class PathParam(Param):
    """A file (or, with ``directory``, a folder) path. ``must_exist`` is checked at validation;
    ``None`` (no path) is allowed when the default is None."""

    must_exist: bool = True
    directory: bool = False
    kind: ClassVar[str] = "path"

    def coerce(self, value: Any) -> Path | None:
        if value is None or value == "":
            if self.default is None:
                return None
            raise self.fail(value, "a file is required, got")
        path = Path(value).expanduser()
        try:
            exists = path.is_dir() if self.directory else path.is_file()
        except OSError as exc:  # a name too long, a folder on the way not searchable
            raise ParameterError(self.name, f"cannot look up {shown_path(path)!r}: {exc.strerror or exc}",
                                 hint="use shorter names, or check the folders' permissions") from None
        if self.must_exist and not exists:
            what = "folder" if self.directory else "file"
            raise ParameterError(self.name, f"no such {what}: {str(path)!r}",
                                 hint="check the path, or leave the parameter out")
        return path

    def _extra_json(self) -> dict[str, Any]:
        return {"must_exist": self.must_exist, "directory": self.directory}


@dataclass(frozen=True)
class ModelParam(Param):
    """The name of a registered weights entry of a given ``model_kind`` (e.g. ``"encoder"``).

    Its choices come from the weights registry when validating, so newly installed models
    appear everywhere (CLI help, GIMP dialog) without changing the method.
    """

    model_kind: str = "encoder"
    kind: ClassVar[str] = "model"

    def coerce(self, value: Any, models: Sequence[str] | None = None) -> str:
        text = str(value).strip()
        if models is None or text in models:
            return text
        raise _unknown(self.name, text, models, f"{self.model_kind} model",
                       hint="`plugin_host weights list` shows the installed models")

    def _extra_json(self) -> dict[str, Any]:
        return {"model_kind": self.model_kind}


@dataclass(frozen=True)
class ListParam(Param):
    """Several values of one kind, given as a list or as comma-separated text (``"a,b,c"``)."""

    item: Param = field(default_factory=lambda: FloatParam("item"))
    min_length: int = 1
    max_length: int | None = None
    kind: ClassVar[str] = "list"

    def coerce(self, value: Any) -> tuple:
        if isinstance(value, str):
            parts: Iterable[Any] = [p for p in (s.strip() for s in value.split(",")) if p]
        elif isinstance(value, (list, tuple)):
            parts = value
        else:
            raise self.fail(value, "expected a comma-separated list, got")
        items = []
        for part in parts:
            try:
                items.append(self.item.coerce(part))
            except ParameterError as err:
                raise ParameterError(self.name, err.detail) from None
        if len(items) < self.min_length or self.max_length is not None and len(items) > self.max_length:
            most = "" if self.max_length is None else f" and at most {self.max_length}"
            raise ParameterError(self.name, f"expected at least {self.min_length}{most} items, got {len(items)}")
        return tuple(items)

    def describe_allowed(self) -> str:
        return f"comma-separated list of {self.item.describe_allowed() or self.item.kind}"

    def _extra_json(self) -> dict[str, Any]:
        return {"item": self.item.to_json(), "min_length": self.min_length, "max_length": self.max_length}


@dataclass(frozen=True)
class WeightsParam(Param):
    """Non-negative weights over named ``choices`` (a blend): ``{"monet": 0.6, "ukiyoe": 0.4}``.

    Text form ``"monet=0.6,ukiyoe=0.4"`` (command line, GIMP); JSON and Python may also give a mapping.
    Names left out weigh 0; the empty value means "not given". GIMP shows one slider per choice from 0
    to ``max``. With no ``choices`` (nothing to offer yet) any name is accepted and the method checks it.
    """

    default: Mapping[str, float] = field(default_factory=dict)
    choices: tuple[str, ...] = ()
    max: float = 1.0
    kind: ClassVar[str] = "weights"

    def coerce(self, value: Any) -> dict[str, float]:
        if isinstance(value, Mapping):
            pairs = [(str(name).strip(), weight) for name, weight in value.items()]
        elif isinstance(value, str):
            pairs = [self._split(part) for part in (p.strip() for p in value.split(",")) if part]
        else:
            raise self.fail(value, "expected NAME=WEIGHT,... or a mapping, got")
        weights: dict[str, float] = {}
        for name, weight in pairs:
            number = _number(weight)
            if not (name and math.isfinite(number) and number >= 0):
                raise self.fail(f"{name}={weight}", "expected a name and a finite weight ≥ 0, got")
            if self.choices and name not in self.choices:
                raise _unknown(self.name, name, self.choices, "name")
            if name in weights:
                raise ParameterError(self.name, f"{name!r} is named twice", hint="name each one once")
            weights[name] = number
        if weights and not sum(weights.values()) > 0:
            raise ParameterError(self.name, "all weights are 0", hint="give at least one a weight above 0")
        return weights

    def _split(self, part: str) -> tuple[str, Any]:
        name, equals, weight = (s.strip() for s in part.partition("="))
        if not equals:
            raise self.fail(part, "expected NAME=WEIGHT, got")
        return name, weight

    def describe_allowed(self) -> str:
        over = f" over {', '.join(self.choices)}" if self.choices else ""
        return f"NAME=WEIGHT,... (weights ≥ 0){over}"

    def _extra_json(self) -> dict[str, Any]:
        return {"choices": list(self.choices), "max": self.max}


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class ImageInput:
    """An image a method reads: the content, style images, masks.

    ``multiple`` inputs accept several images; ``weighted`` ones also take one blend weight
    per image (normalised to sum 1 by the host).
    """

    name: str
    label: str = ""
    help: str = ""
    role: str = "content"  # content | style | mask
    required: bool = True
    multiple: bool = False
    weighted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label or self.name.replace("_", " ").capitalize(), "help": self.help,
                "role": self.role, "required": self.required, "multiple": self.multiple,
                "weighted": self.weighted}


class Params(Mapping[str, Any]):
    """Validated parameter values: read-only, by key or attribute (``params.style_weight``)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = MappingProxyType(dict(values))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({dict(self._values)!r})"

    def replace(self, **changes: Any) -> "Params":
        return Params({**self._values, **changes})


Check = Callable[[Params], None]


@dataclass(frozen=True)
class Schema:
    """A method's parameters, plus cross-parameter ``checks`` that raise :class:`ParameterError`."""

    params: tuple[Param, ...] = ()
    checks: tuple[Check, ...] = ()

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        duplicated = {n for n in names if names.count(n) > 1}
        if duplicated:
            raise ValueError(f"parameter names declared twice: {sorted(duplicated)}")
        for param in self.params:
            if not param.name.isidentifier():
                raise ValueError(f"parameter name {param.name!r} is not a Python identifier")
            if param.default is not None and not isinstance(param, ModelParam):
                param.coerce(param.default)  # a default outside its own range is a plugin bug

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def get(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise _unknown("", name, [p.name for p in self.params], "parameter")

    def defaults(self) -> Params:
        return Params({p.name: p.default for p in self.params})

    def validate(self, raw: Mapping[str, Any] | None = None,
                 models: Mapping[str, Sequence[str]] | None = None) -> Params:
        """Coerce and check ``raw`` values; missing ones take their defaults.

        :param raw: name → value, as text or typed. ``None`` values count as not given.
        :param models: for :class:`ModelParam`, model kind → installed names.
        :raises ParameterError: naming the first bad parameter, its value and what is allowed.
        """
        raw = self.rename_old({k: v for k, v in (raw or {}).items() if v is not None})
        known = {p.name for p in self.params}
        for name in raw:
            if name not in known:
                raise _unknown("", name, sorted(known), "parameter")
        values: dict[str, Any] = {}
        for param in self.params:
            value = raw.get(param.name, param.default)
            if value is None:
                values[param.name] = None if not isinstance(param, PathParam) else param.coerce(None)
            elif isinstance(param, ModelParam):
                # no model of that kind at all: any name passes, and the method says how to get one
                installed = None if models is None else models.get(param.model_kind) or None
                if installed and param.name not in raw and value not in installed:
                    value = installed[0]  # the declared default is not installed: the first of its kind is
                values[param.name] = param.coerce(value, installed)
            else:
                values[param.name] = param.coerce(value)
        params = Params(values)
        for check in self.checks:
            check(params)
        return params

    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.params]

    def rename_old(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """``raw`` with each former name (``renamed_from``) replaced by the current one, warning once per name.

        :raises ParameterError: when a value is given under both names.
        """
        current = {old: p.name for p in self.params for old in p.renamed_from}
        renamed: dict[str, Any] = {}
        for name, value in raw.items():
            new = current.get(name)
            if new is None:
                renamed.setdefault(name, value)
                continue
            if new in raw:
                raise ParameterError(new, f"given twice, also as its former name {name!r}",
                                     hint=f"keep {new!r} only")
            warnings.warn(deprecation_message(name, new), DeprecationWarning, stacklevel=_callers_level())
            renamed[new] = value
        return renamed


def _callers_level() -> int:
    """The ``stacklevel`` of the first frame outside plugin_host, for the caller of this one's caller:
    Python shows a DeprecationWarning only when it is attributed to the user's code."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "plugin_host":
        frame, level = frame.f_back, level + 1
    return level


def deprecation_message(old: str, new: str, flag: bool = False) -> str:
    """The one line saying that a parameter's former name ``old`` is now ``new`` (as flags with ``flag``)."""
    shown = (lambda n: "--" + n.replace("_", "-")) if flag else repr
    return f"{shown(old)} is deprecated and will be removed in the next release: use {shown(new)}"


def _check_range(param: FloatParam | IntParam, number: float) -> None:
    if param.min is not None and number < param.min or param.max is not None and number > param.max:
        raise param.fail(number, "out of range:")


def _range_text(low: float | None, high: float | None, what: str) -> str:
    if low is not None and high is not None:
        return f"{what} from {low} to {high}"
    if low is not None:
        return f"{what} ≥ {low}"
    if high is not None:
        return f"{what} ≤ {high}"
    return what


def _unknown(owner: str, value: str, known: Sequence[str], what: str, hint: str | None = None) -> ParameterError:
    close = did_you_mean(value, known)
    suggestion = f"; {close}" if close else ""
    listing = ", ".join(known) if len(known) <= 12 else ", ".join(list(known)[:12]) + ", …"
    return ParameterError(owner or value, f"unknown {what} {value!r}{suggestion} (known: {listing})", hint)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value
