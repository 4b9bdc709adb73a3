"""Errors a user can fix, and the exit codes the CLI maps them to.

A :class:`PluginHostError` carries a message that names the problem *and* the fix; front
ends print it without a traceback. Anything else escaping a method is a bug.
"""
from __future__ import annotations

import difflib
import enum
from typing import Iterable


class ExitCode(enum.IntEnum):
    """Process exit codes of the ``plugin_host`` command."""

    OK = 0
    #: An error the user can fix (bad parameter, unreadable image, missing weights).
    USAGE = 2
    #: A bug: an unexpected exception in the host or a plugin. The traceback goes to a log file.
    INTERNAL = 3
    #: Ctrl-C, SIGTERM or a cancel request; no partial output was written.
    CANCELLED = 130


class PluginHostError(Exception):
    """An error the user can fix. ``str(err)`` says what is wrong and what to do."""

    kind = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message

    def to_json(self) -> dict:
        return {"error": self.message, "kind": self.kind, "hint": self.hint}


class ParameterError(PluginHostError):
    """A parameter value is unknown, of the wrong type or out of range."""

    kind = "parameter"

    def __init__(self, name: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"parameter {name!r}: {message}", hint)
        self.name, self.detail = name, message

    def naming(self, label: str) -> "ParameterError":
        """The same error, naming the parameter as the user wrote it (``--blur-sigma``, a dialog label)."""
        renamed = ParameterError(self.name, self.detail, self.hint)
        renamed.message = f"{label}: {self.detail}"
        renamed.args = (renamed.message,)
        return renamed

    def to_json(self) -> dict:
        """Adds ``param`` (the parameter's name) and ``detail`` (the message without it), for front ends
        that name the parameter their own way (the GIMP bridge shows its label)."""
        return {**super().to_json(), "param": self.name, "detail": self.detail}


class InputImageError(PluginHostError):
    """An input image cannot be read, is too large, or would be overwritten."""

    kind = "input"


class WeightsError(PluginHostError):
    """A weights file is missing, fails verification, or has the wrong layout."""

    kind = "weights"


class MethodNotFound(PluginHostError):
    kind = "method"


class PluginError(PluginHostError):
    """What a user asked for comes from a plugin that failed to load or registered it invalid."""

    kind = "plugin"

    def __init__(self, plugin: str, reason: str, distribution: str | None = None,
                 version: str | None = None, hint: str | None = None) -> None:
        where = " ".join(p for p in (distribution, version) if p)
        super().__init__(f"plugin {plugin!r}" + (f" ({where})" if where else "") + f": {reason}", hint)
        self.plugin, self.reason = plugin, reason
        self.distribution, self.version = distribution, version


def did_you_mean(word: str, known: Iterable[str], n: int = 1) -> str:
    """``"did you mean 'gatys'?"`` naming up to ``n`` of ``known`` closest to ``word``; ``""`` when none is close.

    The one place suggestions are made (parameters, choices, methods, weights), so every message reads alike.
    """
    close = difflib.get_close_matches(word, list(known), n=n)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class Cancelled(Exception):
    """Raised inside a run when the user cancelled it. Not a PluginHostError: it is not a fault."""
