"""Ours against a plain-PyTorch baseline of the same algorithm, in one run (the baselines: ``plain.py``).

Usage: ``.venv/bin/python benchmarks/versus_plain.py [--methods gatys,adain,johnson] [--quick] ...`` (``--help``).
Every configuration runs in a fresh child (this script with ``--child``), the baseline and each of
our configurations once per round, ``--rounds`` (3) rounds, so both sides see the same machine;
the figures are medians over the rounds and ``ratio`` is the baseline's time over ours (above 1:
ours is faster). Prints one JSON document.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (CONTENT_IMAGE, REPO, STYLE_IMAGE, alternating_children, header, median_summary, peak_rss_mib,
                     print_json, setup_environment, shared_dir, timed_calls)

SCRIPT = str(Path(__file__).resolve())
ENCODER_FILE = "vgg16-caffe-hed.pth"  # the default encoder, in <shared>/weights
JOHNSON_MODEL = "perceptual-starry-night"
JOHNSON_FILE = REPO / f"plugins/perceptual/weights/{JOHNSON_MODEL}.pth"
ADAIN_STYLE_SIZE = 512  # the method's default style_size

DEFAULTS = {"gatys": 512, "adain": 512, "johnson": 1024}
QUICK = {"gatys": 64, "adain": 128, "johnson": 128}


# -- child: one side, one configuration, in a fresh process ------------------------------------

def image_tensor(path: Path, size: tuple[int, int]):
    """``path`` resized (Lanczos) to ``size`` = (height, width), as a (1, 3, H, W) float tensor in 0..1."""
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB").resize((size[1], size[0]), Image.LANCZOS)
    return torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


def long_side(path: Path, side: int) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
    factor = side / max(width, height)
    return max(16, round(height * factor)), max(16, round(width * factor))


def inputs(cfg: dict[str, Any], style_side: int):
    shared = shared_dir()
    content = image_tensor(shared / CONTENT_IMAGE, (cfg["size"], cfg["size"]))  # stretched to N×N
    style = image_tensor(shared / STYLE_IMAGE, long_side(shared / STYLE_IMAGE, style_side))
    return content, style


def state_dict(path: Path) -> dict[str, Any]:
    """A plain state dict, or the one inside one of our exports (``{"state_dict": ..., "metadata": ...}``)."""
    import torch

    loaded = torch.load(path, map_location="cpu", weights_only=True)
    return loaded["state_dict"] if "state_dict" in loaded else loaded


def encoder_path() -> Path:
    for folder in os.environ.get("PLUGIN_HOST_WEIGHTS_PATH", "").split(os.pathsep):
        if folder and (Path(folder) / ENCODER_FILE).is_file():
            return Path(folder) / ENCODER_FILE
    sys.exit(f"benchmark: {ENCODER_FILE} not found on PLUGIN_HOST_WEIGHTS_PATH")


def session(cfg: dict[str, Any]):
    from plugin_host.runner import Session

    return Session(device="cpu", seed=0, precision=cfg["precision"], memory=cfg.get("memory", "auto"))


def as_ours(cfg: dict[str, Any], call):
    """``call`` for a baseline, given our memory policy when ``cfg["heap_kept"]``: freed memory stays in glibc's
    heap during each call and lingers after it (trimmed once no call came for ``HEAP_LINGER_S``), as
    ``Session.run`` does with memory to spend. It separates what the policy gains from what our code does."""
    from plugin_host.memory import HEAP_LINGER_S, heap_kept

    def kept(*args, **kwargs):
        with heap_kept(linger_s=HEAP_LINGER_S):
            return call(*args, **kwargs)
    return kept if cfg.get("heap_kept") else call


def gatys_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Median seconds per L-BFGS step over ``steps`` steps after ``warmup`` (dropped)."""
    content, style = inputs(cfg, cfg["size"])
    total = cfg["warmup"] + cfg["steps"]
    if cfg["side"] == "plain":
        from plain import PlainGatys, step_times

        gatys = PlainGatys(state_dict(encoder_path()), content, style)
        durations, losses = step_times(as_ours(cfg, lambda on_step: gatys.run(total, on_step)))
        precision = "float32"
    else:
        from plugin_host.progress import Progress

        class Marks(Progress):
            def __init__(self) -> None:
                super().__init__()
                self.marks: list[float] = []
                self.losses: list[float] = []

            def _on_stage(self) -> None:
                self.marks.append(time.perf_counter())

            def _on_advance(self, n: int, info: dict[str, Any]) -> None:
                self.marks.append(time.perf_counter())
                self.losses.append(info.get("loss"))

        ours = session(cfg)
        images = {"content": content, "style": [style]}
        ours.run("gatys", images, {"max_size": cfg["size"], "iterations": 1})  # loads the encoder
        marks = Marks()
        ours.run("gatys", images, {"max_size": cfg["size"], "iterations": total}, progress=marks)
        durations = [b - a for a, b in zip(marks.marks, marks.marks[1:])]
        losses = marks.losses
        precision = str(ours.context.compute_dtype).removeprefix("torch.")
    timed = durations[cfg["warmup"]:]
    return {"seconds": statistics.median(timed), "steps_s": [round(t, 4) for t in durations],
            "first_loss": losses[0], "last_loss": losses[-1], "precision": precision}


def gatys_to_loss_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Seconds from the start of the optimisation until the loss is first at or below ``target`` (the baseline,
    without a target, runs ``steps`` steps and its last loss becomes the round's target)."""
    content, style = inputs(cfg, cfg["size"])
    target = cfg.get("target")
    if cfg["side"] == "plain":
        from plain import PlainGatys, step_times

        weights = state_dict(encoder_path())
        PlainGatys(weights, content, style).run(1)  # warm-up, as ours gets: first allocations, L-BFGS's imports
        gatys = PlainGatys(weights, content, style)
        durations, losses = step_times(lambda on_step: gatys.run(cfg["steps"], on_step))
        precision = "float32"
    else:
        from plugin_host.errors import Cancelled
        from plugin_host.progress import CancelToken, Progress

        cancel = CancelToken()

        class StopAtTarget(Progress):
            def __init__(self) -> None:
                super().__init__()
                self.marks: list[float] = []
                self.losses: list[float] = []

            def _on_advance(self, n: int, info: dict[str, Any]) -> None:
                self.marks.append(time.perf_counter())
                self.losses.append(info.get("loss"))
                if info.get("loss") is not None and info["loss"] <= target:
                    cancel.cancel()

        ours = session(cfg)
        images = {"content": content, "style": [style]}
        ours.run("gatys", images, {"max_size": cfg["size"], "iterations": 1})  # loads the encoder
        progress = StopAtTarget()
        started = time.perf_counter()
        try:
            ours.run("gatys", images, {"max_size": cfg["size"], "iterations": 3 * cfg["steps"]}, progress=progress,
                     cancel=cancel)
        except Cancelled:
            pass
        marks = [started, *progress.marks]
        durations, losses = [b - a for a, b in zip(marks, marks[1:])], progress.losses
        precision = str(ours.context.compute_dtype).removeprefix("torch.")
    goal = losses[-1] if target is None else target
    hit = next((i for i, loss in enumerate(losses) if loss <= goal), None)
    return {"seconds": sum(durations[:hit + 1]) if hit is not None else None, "steps": None if hit is None else hit + 1,
            "target_loss": goal, "reached": hit is not None, "last_loss": losses[-1], "precision": precision,
            "note": "ours includes computing the content and style targets inside Session.run; the baseline's are "
                    "computed before its clock starts"}


def adain_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Median seconds of the whole call (encode style and content, AdaIN, decode) after a warm-up call."""
    import torch

    from adain import RANDOM_DECODER, make_session

    content, style = inputs(cfg, ADAIN_STYLE_SIZE)
    if cfg["side"] == "plain":
        from plain import VGG16, plain_adain, plain_decoder, plain_vgg, vgg_layer_index

        encoder = plain_vgg(state_dict(encoder_path()), vgg_layer_index("relu4_1", VGG16) + 1)
        decoder = plain_decoder(state_dict(Path(cfg["decoder_dir"]) / f"{RANDOM_DECODER}.pth"))
        call = as_ours(cfg, lambda: plain_adain(encoder, decoder, content, style))
        precision = "float32"
    else:
        shipped = cfg.get("shipped_decoder")
        ours = make_session({**cfg, "device": "cpu", "random_decoder_dir": None if shipped else cfg["decoder_dir"]})
        params = {} if shipped else {"decoder": RANDOM_DECODER}
        styles = iter(range(1 << 30))

        def call():
            # Ours remembers a style's statistics by its pixels; a new style each call (one pixel changed) times
            # the whole call, the same style each call ("same_style") what a warm server does when restyling.
            given = style if cfg.get("same_style") else style.index_put((torch.tensor(0),) * 4,
                                                                         torch.tensor(next(styles) % 256 / 255))
            return ours.run("adain", {"content": content, "style": [given]}, params)
        precision = str(ours.context.compute_dtype).removeprefix("torch.")
    seconds, times = timed_calls(call, cfg["repeats"], lambda: None)
    with torch.no_grad():
        out = call()
    rgb = out if isinstance(out, torch.Tensor) else out.rgb
    return {"seconds": seconds, "calls_s": times, "precision": precision, "output_hw": list(rgb.shape[-2:])}


def johnson_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Median seconds of one stylisation (the network on the whole picture) after a warm-up call."""
    content, _ = inputs(cfg, 16)
    if cfg["side"] == "plain":
        from plain import PlainTransformerNet, plain_johnson

        net = PlainTransformerNet().load_ours(state_dict(JOHNSON_FILE))
        call = as_ours(cfg, lambda: plain_johnson(net, content))
        precision = "float32"
    else:
        ours = session(cfg)
        call = lambda: ours.run("perceptual", {"content": content}, {"model": JOHNSON_MODEL})  # noqa: E731
        precision = str(ours.context.compute_dtype).removeprefix("torch.")
    seconds, times = timed_calls(call, cfg["repeats"], lambda: None)
    return {"seconds": seconds, "calls_s": times, "precision": precision}


CHILDREN = {"gatys": gatys_child, "adain": adain_child, "johnson": johnson_child, "gatys-to-loss": gatys_to_loss_child}


def child(cfg: dict[str, Any]) -> dict[str, Any]:
    import resource

    import torch

    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    result = CHILDREN[cfg["method"]](cfg)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {**result, "torch_threads": torch.get_num_threads(), "peak_rss_mib": round(peak_rss_mib(), 1),
            "loadavg_after": os.getloadavg()[0], "cpu_user_s": round(usage.ru_utime, 1),
            "cpu_system_s": round(usage.ru_stime, 1), "minor_page_faults": usage.ru_minflt}


# -- parent --------------------------------------------------------------------------------------

def plan(method: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The baseline and our configurations of ``method``: label → child config."""
    size = args.size or (QUICK if args.quick else DEFAULTS)[method]
    common: dict[str, Any] = {"method": method, "size": size, "threads": args.threads}
    if method == "gatys":
        common.update(warmup=1, steps=args.steps or (2 if args.quick else 8))
    else:
        common.update(repeats=args.repeats or (1 if args.quick else 3))
    configs = {"plain": {**common, "side": "plain"}}
    if args.plain_heap_kept:
        configs["plain-heap-kept"] = {**common, "side": "plain", "heap_kept": True}
    for precision in args.precisions:
        for memory in (args.memory if method == "gatys" else ["auto"]):
            label = f"ours-{precision}" + (f"-memory-{memory}" if method == "gatys" else "")
            configs[label] = {**common, "side": "ours", "precision": precision, "memory": memory}
        if method == "adain":
            configs[f"ours-{precision}-same-style"] = {**common, "side": "ours", "precision": precision,
                                                      "same_style": True}
            configs[f"ours-{precision}-shipped-decoder"] = {**common, "side": "ours", "precision": precision,
                                                           "shipped_decoder": True}
    return configs


def compare(method: str, args: argparse.Namespace) -> dict[str, Any]:
    configs = plan(method, args)
    with tempfile.TemporaryDirectory(prefix="versus-plain-") as folder:
        if method == "adain":
            # Both sides decode with the paper's decoder (relu4_1 only), random weights of the trained layout:
            # the same algorithm. The shipped decoder adds a colour and a detail path (its own configuration).
            from adain import write_random_decoder

            write_random_decoder(Path(folder))
            configs = {label: {**cfg, "decoder_dir": folder} for label, cfg in configs.items()}
        runs = alternating_children(SCRIPT, configs, args.rounds)
    summary = {label: {**median_summary(results), "precision": results[0]["precision"],
                       "cpu_system_s": statistics.median(r["cpu_system_s"] for r in results)}
               for label, results in runs.items()}
    plain, kept = summary["plain"]["seconds"], summary.get("plain-heap-kept", {}).get("seconds")
    for label, entry in summary.items():
        entry["ratio_plain_over_ours"] = round(plain / entry["seconds"], 3) if label != "plain" else 1.0
        if kept and label.startswith("ours"):
            entry["ratio_plain_heap_kept_over_ours"] = round(kept / entry["seconds"], 3)
    what = {"gatys": "seconds per L-BFGS step (median of the timed steps of a child)",
            "adain": "seconds per whole call (encode style and content, AdaIN, decode; median of a child's calls; "
                     "both sides the paper's relu4_1 decoder, random weights of the trained layout; 'same-style': "
                     "the style's statistics remembered from the call before; 'shipped-decoder': ours with the "
                     "shipped decoder, which adds a colour and a detail path, so not the same network)",
            "johnson": "seconds per stylisation (median of a child's calls)"}[method]
    return {"method": method, "size": configs["plain"]["size"], "measure": what, "summary": summary, "children": runs,
            "configs": configs}


def compare_to_loss(args: argparse.Namespace) -> dict[str, Any]:
    """Gatys time to a fixed loss: per round the baseline runs ``--to-loss`` steps, then each of ours runs
    until its loss is at or below the baseline's last one (at most three times as many steps)."""
    from _common import run_child

    size = args.size or (QUICK if args.quick else DEFAULTS)["gatys"]
    common = {"method": "gatys-to-loss", "size": size, "threads": args.threads, "steps": args.to_loss}
    ours = {f"ours-{p}-memory-{m}": {**common, "side": "ours", "precision": p, "memory": m}
            for p in args.precisions for m in args.memory}
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], **{label: [] for label in ours}}
    for round_number in range(args.rounds):
        print(f"benchmark: to-loss round {round_number + 1}/{args.rounds}", file=sys.stderr, flush=True)
        runs["plain"].append(run_child([SCRIPT, "--child", json.dumps({**common, "side": "plain"})]))
        target = runs["plain"][-1]["target_loss"]
        for label, cfg in ours.items():
            runs[label].append(run_child([SCRIPT, "--child", json.dumps({**cfg, "target": target})]))
    summary = {}
    for label, results in runs.items():
        times = [r["seconds"] for r in results if r["reached"]]
        summary[label] = {"seconds": statistics.median(times) if len(times) == len(results) else None,
                          "seconds_per_child": [r["seconds"] for r in results],
                          "steps_per_child": [r["steps"] for r in results], "precision": results[0]["precision"]}
    plain = summary["plain"]["seconds"]
    for label, entry in summary.items():
        entry["ratio_plain_over_ours"] = round(plain / entry["seconds"], 3) if entry["seconds"] else None
    return {"method": "gatys", "size": size, "measure": f"seconds to the loss the baseline has after {args.to_loss} "
            "L-BFGS steps (single scale, the method's default schedule)", "summary": summary, "children": runs}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Ours against plain-PyTorch baselines (prints one JSON document).")
    p.add_argument("--methods", default="gatys,adain,johnson", help="comma list of gatys, adain, johnson")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 1 round, few steps")
    p.add_argument("--size", type=int, help="square side (default: gatys 512, adain 512, johnson 1024)")
    p.add_argument("--precisions", default="fp32,auto", help="our precisions to measure (default fp32,auto)")
    p.add_argument("--memory", default="low,high", help="Gatys: our --memory settings to measure (default low,high)")
    p.add_argument("--rounds", type=int, help="alternations of all configurations (default 3; quick 1)")
    p.add_argument("--steps", type=int, help="Gatys: timed L-BFGS steps per child after 1 warm-up (default 8)")
    p.add_argument("--repeats", type=int, help="AdaIN/Johnson: timed calls per child after 1 warm-up (default 3)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads in every child (default: torch's)")
    p.add_argument("--to-loss", type=int, metavar="STEPS",
                   help="Gatys only: time to the loss the baseline reaches in STEPS steps, instead of time per step")
    p.add_argument("--plain-heap-kept", action="store_true",
                   help="also time each baseline with freed memory kept in the heap (our --memory high policy)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = set(args.methods) - {"gatys", "adain", "johnson"}
    if unknown:
        p.error(f"unknown method(s) {', '.join(sorted(unknown))}; choose from gatys, adain, johnson")
    args.precisions = [x for x in args.precisions.split(",") if x]
    args.memory = [x for x in args.memory.split(",") if x]
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_environment()
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return
    doc: dict[str, Any] = {**header(), "quick": args.quick, "rounds": args.rounds,
                           "baselines": "benchmarks/plain.py: plain nn.Sequential VGG16 / decoder / TransformerNet, "
                                        "nn.MaxPool2d, torch.optim.LBFGS (torch's defaults, history 100), fp32, "
                                        "the same weights as ours",
                           "results": [compare_to_loss(args)] if args.to_loss else
                                      [compare(method, args) for method in args.methods]}
    print_json(doc)


if __name__ == "__main__":
    main()
