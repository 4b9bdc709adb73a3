"""Jobs and the per-device worker: one job runs at a time, the rest wait in a bounded queue.

A request is checked and decoded in the caller's thread (:func:`prepare`), so a bad
parameter is answered at once; the worker only runs methods. Events (queued, stage,
progress, result, error, cancelled) go to the job's own queue, which the front end drains.
"""
from __future__ import annotations

import itertools
import queue
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from ..errors import Cancelled, InputImageError, PluginHostError
from ..progress import CancelToken, JsonProgress


WORKER_THREAD = "plugin_host-worker"
STOP_TIMEOUT_S = 30.0  # how long a stopping server waits for a cancelled method to reach its next check


class Busy(PluginHostError):
    kind = "busy"


@dataclass
class Job:
    id: str
    method: str
    images: dict[str, Any]
    params: Any
    blend: dict[str, Any]
    content: memoryview | None  # None for a method without a content input (a generator)
    content_spec: dict
    output_dtype: str
    keep_size: bool = False  # True: the result keeps the method's own size (for a new image)
    events: "queue.Queue[tuple[dict, Any]]" = field(default_factory=queue.Queue)  # (event, pixels or None)
    cancel: CancelToken = field(default_factory=CancelToken)
    state: str = "queued"

    def emit(self, event: dict, payload: Any = None) -> None:
        self.events.put((dict(event, job=self.id), payload))


class _JobProgress(JsonProgress):
    """The host's JSON progress events, delivered to a job's queue instead of a stream."""

    def __init__(self, job: Job) -> None:
        super().__init__(stream=None, min_interval=0.1)
        self._job = job

    def emit(self, event: dict[str, Any]) -> None:
        self._job.emit(event)


_ids = itertools.count(1)


def prepare(session: Any, header: dict, buffers: list[memoryview], max_pixels: int) -> Job:
    """Check a decoded request against the method's declaration; raise a PluginHostError if wrong
    (a WireError, naming the field, if the header's JSON has the wrong shape)."""
    from .wire import WireError

    from .pixels import to_tensor

    method_name, raw_params, blend_weights, output = _checked_shape(header)
    method = session.method(method_name)
    params = session.validate(method, raw_params)
    declared = {i.name: i for i in method.inputs}
    images: dict[str, Any] = {}
    for name, value in (header.get("images") or {}).items():
        if name not in declared:
            raise InputImageError(f"method {method.name!r} has no input named {name!r}",
                                  hint="its inputs are: " + ", ".join(declared))
        specs = value if isinstance(value, list) else [value]
        if not declared[name].multiple and len(specs) != 1:
            raise WireError(f"'images.{name}' takes one image, got a list of {len(specs)}")
        loaded = [_image(session, spec, buffers, max_pixels, to_tensor) for spec in specs]
        images[name] = loaded if declared[name].multiple else loaded[0]
    if method.content_input is None:  # a generator: the result at its own size, RGBA, opaque
        layout = {"width": 0, "height": 0, "channels": 4, "dtype": output.get("dtype") or "u8"}
        return Job(id=f"j{next(_ids)}", method=method.name, images=images, params=params, blend=blend_weights,
                   content=None, content_spec=layout, output_dtype=layout["dtype"], keep_size=True)
    content_name = method.content_input.name
    content_spec = (header.get("images") or {}).get(content_name)
    if content_spec is None:
        raise WireError(f"the request has no 'images.{content_name}': method {method.name!r} needs one")
    if not isinstance(content_spec, dict) or "buffer" not in content_spec:
        raise InputImageError(f"the {content_name} image must be sent as pixels, not as a path",
                              hint="the server writes its result back as pixels of the same layout")
    dtype = output.get("dtype") or content_spec["dtype"]
    return Job(id=f"j{next(_ids)}", method=method.name, images=images, params=params, blend=blend_weights,
               content=buffers[content_spec["buffer"]], content_spec=content_spec, output_dtype=dtype,
               keep_size=output.get("size") == "result")


def _checked_shape(header: dict) -> tuple[str, dict, dict, dict]:
    """The header's method, params, blend and output, their JSON types checked (images are checked by
    ``decode_job``); raises WireError naming the field, so a client hears what it sent wrong."""
    from .wire import WireError, shown

    def field(name: str, kind: type, what: str, default: Any) -> Any:
        value = header.get(name)
        if value is None:
            return default
        if not isinstance(value, kind):
            raise WireError(f"'{name}' must be {what}, got {shown(value)}")
        return value

    method = field("method", str, "a method name", None)
    if not method:
        raise WireError("'method' must be a method name, got nothing")
    params = field("params", dict, "an object of parameter names to values", {})
    blend: dict[str, tuple[float, ...]] = {}
    for name, weights in field("blend", dict, "an object of input names to lists of weights", {}).items():
        if not (isinstance(weights, list) and all(_is_number(w) for w in weights)):
            raise WireError(f"'blend.{name}' must be a list of numbers, one per image, got {shown(weights)}")
        blend[name] = tuple(float(w) for w in weights)
    output = field("output", dict, 'an object such as {"dtype": "f32", "size": "result"}', {})
    if output.get("dtype") not in (None, "u8", "f32"):
        raise WireError(f"'output.dtype' must be \"u8\" or \"f32\", got {shown(output['dtype'])}")
    if output.get("size") not in (None, "content", "result"):
        raise WireError(f"'output.size' must be \"content\" or \"result\", got {shown(output['size'])}")
    return method, params, blend, output


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _image(session: Any, spec: dict, buffers: list[memoryview], max_pixels: int, to_tensor: Any) -> Any:
    if "path" in spec:  # the host's loader (EXIF, modes), under the server's cap as well as the session's
        return _load_path(spec["path"], min(max_pixels, session.max_pixels or max_pixels))
    pixels = spec["width"] * spec["height"]
    if pixels > max_pixels:
        raise InputImageError(f"image of {spec['width']}x{spec['height']} = {pixels} pixels is over the "
                              f"server's limit of {max_pixels}", hint=_MAX_PIXELS_HINT)
    return to_tensor(buffers[spec["buffer"]], spec)


_MAX_PIXELS_HINT = "work on a smaller selection, or restart the server with a larger --max-pixels"


def _load_path(path: str, max_pixels: int) -> Any:
    from ..imaging.io import load_image

    try:
        return load_image(path, max_pixels=max_pixels)
    except InputImageError as err:
        if f"limit of {max_pixels:,}" in err.message:  # the loader's hint names its own setting, not the server's
            err.hint = _MAX_PIXELS_HINT
        raise


class Worker:
    """Runs jobs one at a time on the session's device.

    ``threads``: torch's CPU threads for every job; None chooses before each job from the CPUs other
    programs leave free (:func:`plugin_host.threads.threads_for_next_job`), so a busy GIMP keeps its core.
    """

    def __init__(self, session: Any, max_queue: int = 8, threads: int | None = None) -> None:
        self.session = session
        self.max_queue = max_queue
        self.threads = threads
        self._queue: "queue.Queue[Job | None]" = queue.Queue()
        self._lock = threading.Lock()
        self._waiting: list[Job] = []
        self._stopping = False
        self.current: Job | None = None
        self.jobs: dict[str, Job] = {}
        self._thread = threading.Thread(target=self._loop, name=WORKER_THREAD, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> int:
        """Queue ``job``; returns how many jobs are ahead of it."""
        with self._lock:
            if self._stopping:
                raise Busy("the server is stopping", hint="try again once a new server has started")
            if len(self._waiting) >= self.max_queue:
                raise Busy(f"the server already has {len(self._waiting)} jobs waiting",
                           hint="wait for them to finish or cancel one")
            ahead = len(self._waiting) + (self.current is not None)
            self._waiting.append(job)
            self.jobs[job.id] = job
        job.emit({"event": "queued", "position": ahead})
        self._queue.put(job)
        return ahead

    def position(self, job: Job) -> int:
        with self._lock:
            return self._waiting.index(job) + (self.current is not None) if job in self._waiting else 0

    def cancel(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.state not in ("queued", "running"):
            return False
        job.cancel.cancel()
        return True

    @property
    def busy(self) -> bool:
        with self._lock:
            return self.current is not None or bool(self._waiting)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, cancel: bool = True, timeout: float | None = None) -> bool:
        """Refuse new jobs, cancel the running and waiting ones (each still ends with its frame), and
        wait up to ``timeout`` seconds for the worker thread to end; returns whether it did.

        Joining matters: a thread still inside torch when the interpreter exits aborts the whole
        process in C++ ("terminate called without an active exception") instead of exiting.
        """
        with self._lock:
            self._stopping = True
            jobs = [*self._waiting, *([self.current] if self.current else [])]
        if cancel:
            for job in jobs:
                job.cancel.cancel()
        self._queue.put(None)  # after every queued job: each is taken and ends as cancelled
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._waiting.remove(job)
                self.current = job
            started = time.monotonic()
            try:
                self._run(job)
            finally:
                job.images, job.content = {}, None  # a finished job keeps no pixels
                with self._lock:
                    self.current = None
                    finished = [k for k, j in self.jobs.items() if j.state not in ("queued", "running")]
                    for old in finished[:-32]:  # recent finished jobs stay for status queries
                        del self.jobs[old]
                # one line per job in the server's log (next to its server file when the bridge started it)
                _log(f"plugin_host serve: job {job.id} {job.method}: {job.state} after "
                     f"{time.monotonic() - started:.1f} s")

    def _run(self, job: Job) -> None:
        from .pixels import from_result

        if job.cancel.cancelled:
            job.state = "cancelled"
            job.emit({"event": "cancelled"})
            return
        job.state = "running"
        job.emit({"event": "started", "method": job.method})
        try:
            if self.session.context.device.type == "cpu":
                _set_threads(self.threads)
            started = time.perf_counter()
            result = self.session.run(job.method, job.images, validated=job.params, blend_weights=job.blend,
                                      progress=_JobProgress(job), cancel=job.cancel)
            method_s = time.perf_counter() - started  # reported so clients can tell overhead from compute
            data, layout = from_result(result.rgb, job.content, job.content_spec, job.output_dtype, job.keep_size)
        except Cancelled:
            job.state = "cancelled"
            job.emit({"event": "cancelled"})
        except PluginHostError as err:
            job.state = "failed"
            job.emit({"event": "error", **err.to_json()})
        except BaseException as err:  # noqa: B036
            # a method's SystemExit or KeyboardInterrupt is a bug like any other: this job ends with an
            # error and the worker goes on (dead, it would leave every later job queued for ever)
            job.state = "failed"
            job.emit({"event": "error", **internal_error(self.session, job.method, err)})
        else:
            job.state = "done"
            job.emit({"event": "result", **layout, "method_s": round(method_s, 4)}, data)


def _set_threads(threads: int | None) -> None:
    """torch's intra-op threads for the job this thread runs next (OpenMP keeps the setting per calling thread)."""
    import torch

    from ..threads import threads_for_next_job

    torch.set_num_threads(threads or threads_for_next_job())


def _log(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # no stderr (closed, or a detached parent): the job's frames still went out
        pass


def internal_error(session: Any, method: str, err: BaseException) -> dict:
    from ..cli import _write_log

    entry = session.registry.methods.get(method)
    culprit = (f"plugin {entry.plugin.name} ({entry.plugin.distribution or '?'} {entry.plugin.version or '?'})"
               if entry is not None else "plugin_host")
    try:
        hint = f"the traceback is in {_write_log(traceback.format_exc())}; please report it"
    except OSError as log_err:
        hint = f"the traceback could not be logged ({log_err.strerror}); please report it"
    return {"error": f"internal error in {culprit}: {type(err).__name__}: {err}", "kind": "internal", "hint": hint}
