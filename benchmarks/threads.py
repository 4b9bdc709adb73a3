"""The server's thread count with a concurrent load: 1 vs N torch threads for AdaIN and perceptual requests.

Usage: ``.venv/bin/python benchmarks/threads.py [--busy 0,1] [--threads 1,2] [--quick]`` (``--help``).
A request is what the warm server does for a job, ``Session.run`` on a tensor, timed in a fresh
child after one warm-up call (which loads the models). With ``--busy K``, K busy-loop processes
(pure Python spinning, standing in for GIMP rendering) run for the whole measurement. Thread
counts alternate within each round; figures are medians over ``--rounds`` (3). Each row also
says what :func:`plugin_host.threads.threads_for_next_job` chose at that moment. Prints one JSON document.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import (CONTENT_IMAGE, STYLE_IMAGE, alternating_children, header, peak_rss_mib, print_json,
                     setup_environment, shared_dir, timed_calls)

SCRIPT = str(Path(__file__).resolve())
REQUESTS = {"adain": 512, "perceptual": 1024}  # the method and the square side of its request
QUICK_SIDE = 128
PERCEPTUAL_MODEL = "perceptual-starry-night"
BUSY_LOOP = "while True: pass"


def child(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    from plugin_host.runner import Session
    from plugin_host.threads import threads_for_next_job
    from versus_plain import image_tensor, long_side

    chosen = threads_for_next_job()  # before this child computes anything: the others' load only
    torch.set_num_threads(cfg["threads"])
    shared = shared_dir()
    side = cfg["size"]
    content = image_tensor(shared / CONTENT_IMAGE, (side, side))
    session = Session(device="cpu", seed=0, precision=cfg["precision"])
    if cfg["method"] == "adain":
        style = image_tensor(shared / STYLE_IMAGE, long_side(shared / STYLE_IMAGE, 512))
        images, params = {"content": content, "style": [style]}, {}
    else:
        images, params = {"content": content}, {"model": PERCEPTUAL_MODEL}
    seconds, times = timed_calls(lambda: session.run(cfg["method"], images, params), cfg["repeats"], lambda: None)
    return {"seconds": seconds, "calls_s": times, "threads_policy_chose": chosen,
            "precision": str(session.context.compute_dtype).removeprefix("torch."),
            "peak_rss_mib": round(peak_rss_mib(), 1), "loadavg_after": os.getloadavg()[0]}


def measure(busy: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    spinners = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
    try:
        rows = []
        for method, side in REQUESTS.items():
            side = QUICK_SIDE if args.quick else side
            configs = {f"{n} thread(s)": {"method": method, "size": side, "threads": n, "repeats": args.repeats,
                                         "precision": args.precision} for n in args.threads}
            runs = alternating_children(SCRIPT, configs, args.rounds)
            for label, results in runs.items():
                rows.append({"busy_loops": busy, "method": method, "size": side, "threads": configs[label]["threads"],
                             "seconds": statistics.median(r["seconds"] for r in results),
                             "seconds_per_child": [r["seconds"] for r in results],
                             "policy_chose": [r["threads_policy_chose"] for r in results],
                             "precision": results[0]["precision"]})
        return rows
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Server thread count under a concurrent load (prints one JSON document).")
    p.add_argument("--busy", default="0,1", help="busy-loop process counts to measure with (default 0,1)")
    p.add_argument("--threads", default="1,2", help="torch thread counts to compare (default 1,2)")
    p.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (default auto, as the server)")
    p.add_argument("--rounds", type=int, default=3, help="alternations (default 3)")
    p.add_argument("--repeats", type=int, default=3, help="timed requests per child after a warm-up (default 3)")
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_SIDE}² requests, 1 round, 1 repeat")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.busy = [int(x) for x in args.busy.split(",") if x]
    args.threads = [int(x) for x in args.threads.split(",") if x]
    if args.quick:
        args.rounds, args.repeats = 1, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_environment()
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return
    rows = [row for busy in args.busy for row in measure(busy, args)]
    print_json({**header(), "quick": args.quick, "rounds": args.rounds, "repeats": args.repeats,
                "requests": "Session.run on a tensor: adain 512² (style 512), perceptual 1024² "
                            f"({PERCEPTUAL_MODEL}), as the server runs a job", "rows": rows})


if __name__ == "__main__":
    main()
