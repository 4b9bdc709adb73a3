"""Helpers shared by the benchmark scripts: data paths, repeats, memory, machine info, JSON.

Each measured configuration runs in a fresh child process that reports its own peak RSS
(``getrusage(RUSAGE_SELF)``) as one JSON line on stdout; the parent only collects. Measuring
``RUSAGE_CHILDREN`` in the parent would give the maximum over all children, not per child.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
CONTENT_IMAGE = "images/content/tubingen.jpg"
STYLE_IMAGE = "images/style/starry_night.jpg"


def shared_dir() -> Path:
    """``$PLUGIN_HOST_SHARED``, else ``../shared`` beside the checkout; exits with a message if missing."""
    env = os.environ.get("PLUGIN_HOST_SHARED")
    path = Path(env) if env else REPO.parent / "shared"
    if not path.is_dir():
        sys.exit(f"benchmark: shared data folder {str(path)!r} not found; set PLUGIN_HOST_SHARED to the "
                 "folder holding weights/ and images/")
    return path


def setup_environment() -> None:
    """Point the weights search path at the shared weights unless the caller already chose one, and
    let torch use huge pages as the CLI does (children inherit both; call it before importing torch)."""
    from plugin_host.memory import use_huge_pages

    use_huge_pages()
    if "PLUGIN_HOST_WEIGHTS_PATH" not in os.environ:
        os.environ["PLUGIN_HOST_WEIGHTS_PATH"] = str(shared_dir() / "weights")


def benchmark_images() -> tuple[Path, Path]:
    """The content and style images every Gatys benchmark uses; exits with a message if missing."""
    shared = shared_dir()
    paths = (shared / CONTENT_IMAGE, shared / STYLE_IMAGE)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        sys.exit("benchmark: missing image(s): " + ", ".join(missing))
    return paths


def devices(choice: str) -> list[str]:
    """Devices to measure for ``--device``: ``auto`` is the CPU plus CUDA when torch sees a GPU."""
    import torch

    if choice == "auto":
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    if choice == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmark: --device cuda was asked for but torch sees no CUDA GPU")
    return [choice]


def median_of(fn: Callable[[], float], repeats: int) -> float:
    """Median of ``repeats`` calls of ``fn``, which returns one measurement."""
    return statistics.median(fn() for _ in range(max(1, repeats)))


def timed_calls(call: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> tuple[float, list[float]]:
    """Median seconds of ``call`` over ``repeats`` timed calls after one untimed warm-up (allocator, kernel
    selection), and each call's seconds; ``sync`` waits for the device before and after each call."""
    def once() -> float:
        sync()
        start = time.perf_counter()
        call()
        sync()
        return time.perf_counter() - start

    once()
    times = [once() for _ in range(max(1, repeats))]
    return statistics.median(times), times


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mib() -> dict[str, float] | None:
    """Current RSS split into anonymous memory and mapped files (shared libraries), in MiB; Linux only."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    fields = {"VmRSS": "total", "RssAnon": "anon", "RssFile": "file"}
    values = {fields[k]: round(int(v.split()[0]) / 1024, 1)
              for k, v in (line.split(":", 1) for line in lines if ":" in line) if k in fields}
    return values or None


def cuda_peak_mib(device: Any) -> float | None:
    """Peak CUDA memory allocated by torch on ``device`` since the last reset, or None off CUDA."""
    import torch

    if torch.device(device).type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / (1024 * 1024)


def precision_name(session: Any) -> str:
    """What the session's networks compute in: "float32" or "bfloat16"."""
    return str(session.context.compute_dtype).removeprefix("torch.")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    import torch

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "cpu": cpu_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def header(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line, date and machine: the first fields of every benchmark document."""
    argv = sys.argv if argv is None else argv
    return {
        "command": shlex.join([sys.executable, *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
    }


def print_json(document: Any, indent: int | None = 2) -> None:
    print(json.dumps(document, indent=indent), flush=True)


def run_child(args: list[str], timeout: float | None = None) -> dict[str, Any]:
    """Run ``python ARGS`` in a fresh process and return the JSON object on its last stdout line."""
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child {shlex.join(args)} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}")
    return json.loads(lines[-1])


def alternating_children(script: str, configs: dict[str, dict[str, Any]], rounds: int,
                         timeout: float | None = None) -> dict[str, list[dict[str, Any]]]:
    """Each configuration of ``configs`` (label → child config) in a fresh child of ``script``, all of
    them once per round for ``rounds`` rounds, so a slow spell of the machine hits every side alike."""
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in configs}
    for round_number in range(max(1, rounds)):
        for label, cfg in configs.items():
            print(f"benchmark: round {round_number + 1}/{rounds} {label}: {json.dumps(cfg)}", file=sys.stderr,
                  flush=True)
            results[label].append(run_child([script, "--child", json.dumps(cfg)], timeout=timeout))
    return results


def median_summary(runs: list[dict[str, Any]], key: str = "seconds") -> dict[str, Any]:
    """Median of ``key`` and of the peak RSS over the children of one configuration, with each child's value."""
    return {key: statistics.median(r[key] for r in runs), f"{key}_per_child": [r[key] for r in runs],
            "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs),
            "peak_rss_mib_per_child": [r["peak_rss_mib"] for r in runs]}
