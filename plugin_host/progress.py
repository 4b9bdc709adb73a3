"""Progress reporting and cancellation, owned by the host; methods only report.

A method calls ``progress.stage("optimise", total=300)`` then ``progress.advance()`` per step
and ``cancel.raise_if_cancelled()`` between steps. The front end picks the renderer: a tqdm
bar with ETA on a terminal, one JSON object per line for programs (``--progress json``, the
GIMP bridge, the server), or nothing (``--quiet``).
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from .errors import Cancelled


class CancelToken:
    """Set by Ctrl-C, SIGTERM or a server cancel; checked by methods between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


class Progress:
    """Silent reporter and base class. ``stage`` starts a named phase of ``total`` steps."""

    def __init__(self) -> None:
        self.stage_name = ""
        self.total: int | None = None
        self.step = 0
        self._started = time.monotonic()
        self._stages_begun = 0

    def stage(self, name: str, total: int | None = None) -> None:
        self.close()
        self.stage_name, self.total, self.step = name, total, 0
        self._started = time.monotonic()
        self._stages_begun += 1
        self._on_stage()

    @contextmanager
    def nested(self) -> Iterator[None]:
        """Let work inside a stage (a first download, an evaluation) show stages of its own, then resume.

        On leaving, the outer stage comes back with its name, total, step count and clock, and is announced
        again (``stage`` event with its ``step``; a bar starting where it was), so the caller's later
        ``advance`` calls continue its count. Costs nothing when no stage was begun inside.
        """
        saved = self.stage_name, self.total, self.step, self._started
        begun = self._stages_begun
        try:
            yield
        finally:
            if self._stages_begun != begun:
                self.close()
                self.stage_name, self.total, self.step, self._started = saved
                self._on_stage()

    def advance(self, n: int = 1, **info: Any) -> None:
        self.step += n
        self._on_advance(n, info)

    def preview(self, path: str) -> None:
        """Announce an intermediate image written to ``path``."""
        self._on_preview(path)

    def eta(self) -> float | None:
        if not self.total or not self.step:
            return None
        elapsed = time.monotonic() - self._started
        return elapsed / self.step * max(self.total - self.step, 0)

    def close(self) -> None:
        pass

    def _on_stage(self) -> None:
        pass

    def _on_advance(self, n: int, info: dict[str, Any]) -> None:
        pass

    def _on_preview(self, path: str) -> None:
        pass


class TqdmProgress(Progress):
    """A bar with rate and ETA on stderr (tqdm handles terminal width and refresh rate)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self._stream = stream or sys.stderr
        self._bar: Any = None

    def _on_stage(self) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=self.total, initial=self.step, desc=self.stage_name, file=self._stream,
                         leave=False, dynamic_ncols=True, unit="it")

    def _on_advance(self, n: int, info: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.update(n)
            if info:
                self._bar.set_postfix({k: _short(v) for k, v in info.items()}, refresh=False)

    def _on_preview(self, path: str) -> None:
        if self._bar is not None:
            self._bar.write(f"preview: {path}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class JsonProgress(Progress):
    """One JSON event per line: ``{"event": "progress", "stage", "step", "total", "eta"}``; a stage begins
    with ``{"event": "stage", "stage", "total", "step"}`` (``step`` is 0 unless a nested stage ended).

    Events are throttled to ``min_interval`` seconds except the last step of a stage.
    """

    def __init__(self, stream: IO[str] | None = None, min_interval: float = 0.1) -> None:
        super().__init__()
        self._stream = stream or sys.stderr
        self._min_interval = min_interval
        self._last = 0.0
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._stream.write(json.dumps(event) + "\n")
            self._stream.flush()

    def _on_stage(self) -> None:
        self.emit({"event": "stage", "stage": self.stage_name, "total": self.total, "step": self.step})

    def _on_advance(self, n: int, info: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self._last < self._min_interval and self.step != self.total:
            return
        self._last = now
        eta = self.eta()
        event = {"event": "progress", "stage": self.stage_name, "step": self.step, "total": self.total,
                 "eta": None if eta is None else round(eta, 2)}
        event.update({k: _short(v) for k, v in info.items()})
        self.emit(event)

    def _on_preview(self, path: str) -> None:
        self.emit({"event": "preview", "stage": self.stage_name, "step": self.step, "path": str(path)})


def make_progress(mode: str, stream: IO[str] | None = None) -> Progress:
    """``mode`` is ``bar`` (tqdm; silent when stderr is not a terminal), ``json`` or ``none``."""
    stream = stream or sys.stderr
    if mode == "json":
        return JsonProgress(stream)
    if mode == "bar" and getattr(stream, "isatty", lambda: False)():
        return TqdmProgress(stream)
    return Progress()


def _short(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
