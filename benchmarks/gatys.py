"""Gatys benchmark: seconds per L-BFGS iteration, peak memory, and time to a fixed loss with multi-scale.

Usage: ``.venv/bin/python benchmarks/gatys.py [--quick] [--device auto|cpu|cuda] ...`` (``--help``).
Prints one JSON document. Every measured configuration runs in a fresh child process (this
script with ``--child``) so that its peak RSS is its own.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from _common import (benchmark_images, cuda_peak_mib, current_rss_mib, devices, header, median_of,
                     peak_rss_mib, precision_name, print_json, run_child, setup_environment)
from plugin_host.builtin_weights import DEFAULT_ENCODER
from plugin_host.errors import Cancelled
from plugin_host.progress import CancelToken, Progress

SCRIPT = str(Path(__file__).resolve())
METHOD = "gatys"

DEFAULTS: dict[str, Any] = dict(sizes=[256, 512], warmup=1, iterations=24, repeats=3, size=512,
                                target_iterations=100, levels=[2, 3], level_iterations=None,
                                max_iterations=None, multiscale_repeats=1)
QUICK: dict[str, Any] = dict(sizes=[128], warmup=1, iterations=2, repeats=1, size=128, target_iterations=5,
                             levels=[2], level_iterations=3, max_iterations=15, multiscale_repeats=1)


# -- child: one configuration in a fresh process -----------------------------------------------

@dataclass
class Step:
    stage: str
    time: float
    loss: float | None


def is_final_stage(name: str) -> bool:
    """Gatys names its stages ``level i/n``; anything else counts as a single (final) stage."""
    match = re.fullmatch(r"level (\d+)/(\d+)", name)
    return match is None or match.group(1) == match.group(2)


class TimingProgress(Progress):
    """Timestamps every stage start and step; with ``target``, cancels the run once the final
    stage's loss is at or below it (``hit`` is that step)."""

    def __init__(self, sync: Callable[[], None], target: float | None = None,
                 cancel: CancelToken | None = None) -> None:
        super().__init__()
        self.sync, self.target, self.cancel = sync, target, cancel
        self.stages: list[tuple[str, float]] = []
        self.steps: list[Step] = []
        self.hit: Step | None = None

    def _on_stage(self) -> None:
        self.sync()
        self.stages.append((self.stage_name, time.perf_counter()))

    def _on_advance(self, n: int, info: dict[str, Any]) -> None:
        self.sync()
        step = Step(self.stage_name, time.perf_counter(), info.get("loss"))
        self.steps.append(step)
        if self.target is not None and self.hit is None and reaches(step, self.target):
            self.hit = step
            if self.cancel is not None:
                self.cancel.cancel()


def reaches(step: Step, target: float) -> bool:
    return step.loss is not None and is_final_stage(step.stage) and step.loss <= target


def step_durations(progress: TimingProgress) -> list[float]:
    """Seconds per step of the (only) stage: the first from the stage start, then between advances."""
    times = [progress.stages[-1][1]] + [s.time for s in progress.steps]
    return [b - a for a, b in zip(times, times[1:])]


def measure_iterations(session: Any, images: dict[str, Any], cfg: dict[str, Any], sync: Callable[[], None]
                       ) -> dict[str, Any]:
    params = {"max_size": cfg["size"], "iterations": cfg["warmup"] + cfg["iterations"]}
    per_repeat: list[float] = []

    def one_repeat() -> float:
        progress = TimingProgress(sync)
        session.run(METHOD, images, params, progress=progress)
        per_repeat.append(statistics.median(step_durations(progress)[cfg["warmup"]:]))
        return per_repeat[-1]

    seconds = median_of(one_repeat, cfg["repeats"])
    return {"seconds_per_iteration": seconds, "repeats_s": per_repeat,
            "iterations_per_repeat": cfg["iterations"], "warmup": cfg["warmup"]}


def measure_to_target(session: Any, images: dict[str, Any], cfg: dict[str, Any], sync: Callable[[], None]
                      ) -> dict[str, Any]:
    """Wall time from calling ``run`` until the final level's loss reaches ``target``.

    Without a target (the single-scale reference) the run does ``target_iterations`` final-level
    steps and the loss after them becomes the target for every repeat.
    """
    levels, target = cfg["levels"], cfg.get("target")
    params: dict[str, Any] = {"max_size": cfg["size"], "levels": levels,
                              "iterations": cfg["target_iterations"] if target is None else cfg["max_iterations"]}
    if cfg.get("level_iterations") is not None:
        params["level_iterations"] = cfg["level_iterations"]
    runs: list[dict[str, Any]] = []

    def one_repeat() -> float:
        nonlocal target
        cancel = CancelToken()
        progress = TimingProgress(sync, target, cancel)
        started = time.perf_counter()
        try:
            session.run(METHOD, images, params, progress=progress, cancel=cancel)
        except Cancelled:
            pass
        if target is None:  # reference run: its final loss defines the target
            target = progress.steps[-1].loss
            progress.hit = next(s for s in progress.steps if reaches(s, target))
        per_stage: dict[str, int] = {}
        for step in progress.steps:
            per_stage[step.stage] = per_stage.get(step.stage, 0) + 1
            if step is progress.hit:
                break
        seconds = progress.hit.time - started if progress.hit else float("inf")
        runs.append({"seconds": seconds, "reached": progress.hit is not None, "iterations_per_level":
                     list(per_stage.values()), "iterations": sum(per_stage.values()),
                     "last_loss": progress.steps[-1].loss})
        return seconds

    seconds = median_of(one_repeat, cfg["repeats"])
    reached = all(r["reached"] for r in runs)
    return {"levels": levels, "target_loss": target, "seconds": seconds if reached else None,
            "reached": reached, "iterations_per_level": runs[0]["iterations_per_level"],
            "iterations": runs[0]["iterations"],
            "repeats_s": [r["seconds"] if r["reached"] else None for r in runs],
            "last_loss": runs[0]["last_loss"]}


def child(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    from plugin_host.runner import Session

    baseline = current_rss_mib()  # torch and plugin_host imported, nothing run yet
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    session = Session(device=cfg["device"], seed=0, precision=cfg.get("precision", "auto"),
                      memory=cfg.get("memory", "auto"))
    device = session.context.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    content, style = benchmark_images()
    images: dict[str, Any] = {"content": str(content), "style": [str(style)]}
    if cfg.get("square"):  # the content stretched to exactly size x size, as the "512²"
        from PIL import Image

        with Image.open(content) as image:
            images["content"] = image.convert("RGB").resize((cfg["size"], cfg["size"]), Image.LANCZOS)
    # Warm-up: loads and verifies the encoder so no measurement includes it.
    warm = session.run(METHOD, images, {"max_size": cfg["size"], "iterations": 1})
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    measure = measure_iterations if cfg["kind"] == "iterations" else measure_to_target
    result = measure(session, images, cfg, sync)
    return {"device": str(device), "precision": precision_name(session),
            "size": cfg["size"], "image_hw": list(warm.rgb.shape[-2:]),
            "torch_threads": torch.get_num_threads(), **result,
            "peak_rss_mib": round(peak_rss_mib(), 1), "rss_after_imports_mib": baseline,
            "cuda_peak_mib": cuda_peak_mib(device)}


# -- parent: plan configurations, run each in a child, collect ---------------------------------

def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Gatys benchmark (prints one JSON document).")
    p.add_argument("--quick", action="store_true", help="smoke run: 128 px, few iterations, 1 repeat")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: cpu, plus cuda when torch sees a GPU")
    p.add_argument("--what", choices=("all", "iterations", "multiscale"), default="all",
                   help="which measurements to run (default all)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads in each child (default: torch's)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="network arithmetic, as `plugin_host run --precision` (default auto)")
    p.add_argument("--memory", choices=("auto", "low", "high"), default="auto",
                   help="memory/speed trade-off, as `plugin_host run --memory` (default auto)")
    g = p.add_argument_group("seconds per iteration and peak memory")
    g.add_argument("--sizes", type=int_list, help="max sides, comma-separated (default 256,512)")
    g.add_argument("--square", action="store_true",
                   help="stretch the content to size x size (default: keep its 4:3 shape, so 512 is 512x384)")
    g.add_argument("--warmup", type=int, help="iterations discarded per repeat (default 1)")
    g.add_argument("--iterations", type=int,
                   help="timed iterations per repeat (default 24: past the L-BFGS history of 20, so the "
                        "peak memory includes a full history)")
    g.add_argument("--repeats", type=int, help="repeats; the median is reported (default 3)")
    g = p.add_argument_group("time to a fixed loss, single- vs multi-scale")
    g.add_argument("--size", type=int, help="max side (default 512)")
    g.add_argument("--target-iterations", type=int,
                   help="single-scale iterations whose final loss is the target (default 100)")
    g.add_argument("--levels", type=int_list, help="multi-scale level counts to compare (default 2,3)")
    g.add_argument("--level-iterations", type=int, help="iterations per coarse level (default: the method's)")
    g.add_argument("--max-iterations", type=int,
                   help="cap on final-level iterations of a multi-scale run (default 3 x target iterations)")
    g.add_argument("--multiscale-repeats", type=int, help="repeats per run (default 1)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.max_iterations is None:
        args.max_iterations = 3 * args.target_iterations
    return args


def run_config(cfg: dict[str, Any]) -> dict[str, Any]:
    print(f"benchmark: {json.dumps(cfg)}", file=sys.stderr, flush=True)
    return run_child([SCRIPT, "--child", json.dumps(cfg)])


def multiscale(device: str, args: argparse.Namespace) -> dict[str, Any]:
    common = {"kind": "to_target", "device": device, "size": args.size, "threads": args.threads,
              "precision": args.precision, "memory": args.memory,
              "target_iterations": args.target_iterations, "max_iterations": args.max_iterations,
              "level_iterations": args.level_iterations, "repeats": args.multiscale_repeats}
    single = run_config({**common, "levels": 1})
    runs = [single]
    for levels in args.levels:
        run = run_config({**common, "levels": levels, "target": single["target_loss"]})
        if run["seconds"] and single["seconds"]:
            run["speedup_vs_single"] = round(single["seconds"] / run["seconds"], 3)
        runs.append(run)
    return {"device": device, "size": args.size, "target_loss": single["target_loss"],
            "target_iterations": args.target_iterations, "runs": runs}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_environment()
    content, style = benchmark_images()  # fail early with a clear message
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return
    doc: dict[str, Any] = {**header(), "method": METHOD, "quick": args.quick,
                           "setup": f"{DEFAULT_ENCODER} (default encoder), default layers and weights, "
                                    "L-BFGS, init content, seed 0",
                           "images": {"content": str(content), "style": str(style)}}
    if args.what in ("all", "iterations"):
        doc["iterations"] = [run_config({"kind": "iterations", "device": device, "size": size, "square": args.square,
                                         "warmup": args.warmup, "iterations": args.iterations,
                                         "repeats": args.repeats, "threads": args.threads,
                                         "precision": args.precision, "memory": args.memory})
                             for device in devices(args.device) for size in args.sizes]
    if args.what in ("all", "multiscale"):
        doc["multiscale"] = [multiscale(device, args) for device in devices(args.device)]
    print_json(doc)


if __name__ == "__main__":
    main()
