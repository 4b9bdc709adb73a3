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


class Busy(PluginHostError):
    kind = "busy"


@dataclass
class Job:
    id: str
    method: str
    images: dict[str, Any]
    params: Any
    blend: dict[str, Any]
    content: memoryview
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
    """Check a decoded request against the method's declaration; raise a PluginHostError if wrong."""
    from .pixels import to_tensor

    method = session.method(str(header.get("method")))
    params = session.validate(method, header.get("params") or {})
    declared = {i.name: i for i in method.inputs}
    images: dict[str, Any] = {}
    for name, value in (header.get("images") or {}).items():
        if name not in declared:
            raise InputImageError(f"method {method.name!r} has no input named {name!r}",
                                  hint="its inputs are: " + ", ".join(declared))
        specs = value if isinstance(value, list) else [value]
        loaded = [_image(session, spec, buffers, max_pixels, to_tensor) for spec in specs]
        images[name] = loaded if declared[name].multiple else loaded[0]
    content_name = method.content_input.name
    content_spec = (header.get("images") or {}).get(content_name)
    if not isinstance(content_spec, dict) or "buffer" not in content_spec:
        raise InputImageError(f"the {content_name} image must be sent as pixels, not as a path",
                              hint="the server writes its result back as pixels of the same layout")
    output = header.get("output") or {}
    dtype = output.get("dtype") or content_spec["dtype"]
    if dtype not in ("u8", "f32"):
        raise InputImageError(f"output dtype must be u8 or f32, got {dtype!r}")
    if output.get("size", "content") not in ("content", "result"):
        raise InputImageError(f"output size must be 'content' or 'result', got {output.get('size')!r}")
    blend = {k: tuple(float(w) for w in v) for k, v in (header.get("blend") or {}).items()}
    return Job(id=f"j{next(_ids)}", method=method.name, images=images, params=params, blend=blend,
               content=buffers[content_spec["buffer"]], content_spec=content_spec, output_dtype=dtype,
               keep_size=output.get("size") == "result")


def _image(session: Any, spec: Any, buffers: list[memoryview], max_pixels: int, to_tensor: Any) -> Any:
    if isinstance(spec, dict) and "path" in spec:
        return session.load(spec["path"])  # the host's loader: EXIF, modes, its own pixel cap
    if not isinstance(spec, dict) or "buffer" not in spec:
        raise InputImageError(f"an image must be pixels or {{'path': ...}}, got {spec!r}")
    pixels = spec["width"] * spec["height"]
    if pixels > max_pixels:
        raise InputImageError(f"image of {spec['width']}x{spec['height']} = {pixels} pixels is over the "
                              f"server's limit of {max_pixels}",
                              hint="work on a smaller selection, or restart the server with a larger --max-pixels")
    return to_tensor(buffers[spec["buffer"]], spec)


class Worker:
    """Runs jobs one at a time on the session's device."""

    def __init__(self, session: Any, max_queue: int = 8) -> None:
        self.session = session
        self.max_queue = max_queue
        self._queue: "queue.Queue[Job | None]" = queue.Queue()
        self._lock = threading.Lock()
        self._waiting: list[Job] = []
        self.current: Job | None = None
        self.jobs: dict[str, Job] = {}
        self._thread = threading.Thread(target=self._loop, name="plugin_host-worker", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> int:
        """Queue ``job``; returns how many jobs are ahead of it."""
        with self._lock:
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

    def stop(self) -> None:
        self._queue.put(None)

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
                # one line per job in the server's log (next to its server file when the bridge started it)
                print(f"plugin_host serve: job {job.id} {job.method}: {job.state} after "
                      f"{time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
                job.images, job.content = {}, memoryview(b"")  # a finished job keeps no pixels
                with self._lock:
                    self.current = None
                    finished = [k for k, j in self.jobs.items() if j.state not in ("queued", "running")]
                    for old in finished[:-32]:  # recent finished jobs stay for status queries
                        del self.jobs[old]

    def _run(self, job: Job) -> None:
        from .pixels import from_result

        if job.cancel.cancelled:
            job.state = "cancelled"
            job.emit({"event": "cancelled"})
            return
        job.state = "running"
        job.emit({"event": "started", "method": job.method})
        try:
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
        except Exception as err:  # a bug in a method: say whose, keep the traceback in a log
            job.state = "failed"
            job.emit({"event": "error", **internal_error(self.session, job.method, err)})
        else:
            job.state = "done"
            job.emit({"event": "result", **layout, "method_s": round(method_s, 4)}, data)


def internal_error(session: Any, method: str, err: BaseException) -> dict:
    from ..cli import _write_log

    entry = session.registry.methods.get(method)
    culprit = (f"plugin {entry.plugin.name} ({entry.plugin.distribution or '?'} {entry.plugin.version or '?'})"
               if entry is not None else "plugin_host")
    log = _write_log(traceback.format_exc())
    return {"error": f"internal error in {culprit}: {type(err).__name__}: {err}", "kind": "internal",
            "hint": f"the traceback is in {log}; please report it"}
