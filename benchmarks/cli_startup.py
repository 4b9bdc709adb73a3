"""CLI start-up benchmark: wall time of ``plugin_host --help`` and ``plugin_host list`` in fresh processes.

Usage: ``.venv/bin/python benchmarks/cli_startup.py [--repeats N]``. Prints one JSON document
with the median (and every run) per command, and which heavy modules each command imported.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

from _common import header, median_of, print_json, run_child

COMMANDS: dict[str, list[str]] = {"--help": ["--help"], "list": ["list"]}
HEAVY_MODULES = ("torch", "torchvision", "numpy", "PIL")

# Runs main() in-process with stdout silenced, then reports which heavy modules got imported.
PROBE = """
import contextlib, io, json, sys
from plugin_host.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main({argv!r})
    except SystemExit as exit:
        code = exit.code
print(json.dumps({{"exit": code, "imported": {{m: m in sys.modules for m in {modules!r}}}}}))
"""


def time_once(argv: list[str]) -> float:
    """Seconds for ``python -m plugin_host ARGV`` from spawn to exit; fails loudly on a non-zero exit."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "plugin_host", *argv], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"plugin_host {' '.join(argv)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return elapsed


def measure(argv: list[str], repeats: int, warmup: int) -> dict[str, Any]:
    for _ in range(warmup):  # untimed: fills the file cache so every timed run starts alike
        time_once(argv)
    runs: list[float] = []

    def one() -> float:
        runs.append(time_once(argv))
        return runs[-1]

    median = median_of(one, repeats)
    probe = run_child(["-c", PROBE.format(argv=argv, modules=HEAVY_MODULES)])
    return {"command": f"{sys.executable} -m plugin_host {' '.join(argv)}", "median_s": round(median, 4),
            "min_s": round(min(runs), 4), "runs_s": [round(r, 4) for r in runs], "exit": probe["exit"],
            "torch_imported": probe["imported"]["torch"], "heavy_modules_imported": probe["imported"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="plugin_host --help / list start-up time (prints JSON).")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per command (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    args = parser.parse_args(argv)
    results = {name: measure(cmd, args.repeats, args.warmup) for name, cmd in COMMANDS.items()}
    print_json({**header(), "repeats": args.repeats, "warmup": args.warmup, "commands": results})


if __name__ == "__main__":
    main()
