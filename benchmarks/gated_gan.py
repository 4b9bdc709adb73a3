"""Gated-GAN benchmark: stylisation latency and peak memory per size (tiled from the default tile size up),
model-only forward time, and training iterations per second.

Usage: ``.venv/bin/python benchmarks/gated_gan.py [--quick] [--ngf 32,64] [--sizes ...] [--no-train] ...``
(``--help``). Prints one JSON document. Every measured configuration runs in a fresh child process (this
script with ``--child``) so that its peak RSS is its own.

Unless ``--model`` names an installed model, random four-style generators of the real shapes (one per
``--ngf``) are exported into a temporary folder that the children see as their models folder
(``PLUGIN_HOST_MODELS``): timing does not depend on the weights' values, so the benchmark runs before any
model is trained. Training uses the real collections of ``<shared>/datasets/style`` (linked, a few images
each) and photos of ``<shared>/datasets/content``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from _common import (benchmark_images, cuda_peak_mib, current_rss_mib, devices, header, median_of,
                     peak_rss_mib, precision_name, print_json, run_child, setup_environment, shared_dir, timed_calls)
from adain import StepTimes, int_list, square_image, syncer

SCRIPT = str(Path(__file__).resolve())
METHOD = "gated-gan"
STYLES = ("cezanne", "monet", "ukiyoe", "vangogh")
BIG = 4096  # sizes from here on get a single timed run on the CPU, after a warm-up at WARM_SIDE
WARM_SIDE = 512

DEFAULTS: dict[str, Any] = dict(sizes=[512, 1024, 4096], ngf=[32, 64], repeats=3, train_ngf=[32], train_crop=128,
                                train_resize=143, train_batch=1, train_warmup=2, train_steps=10, train_images=4)
QUICK: dict[str, Any] = dict(sizes=[128, 256], ngf=[32], repeats=1, tile_size=128, train_ngf=[16], train_crop=64,
                             train_resize=72, train_batch=1, train_warmup=1, train_steps=3, train_images=2)


def random_name(ngf: int) -> str:
    return f"gated-gan-bench-random-ngf{ngf}"


def write_random_models(folder: Path, widths: list[int]) -> None:
    """Random four-style generators (one per width), exported (fp16) with a card each, as
    ``plugin_host train gated-gan --name NAME`` installs a model into the models folder."""
    import torch

    from plugin_host.training import export_model
    from plugin_host.weights.user_models import write_card
    from plugin_host_gated_gan.net import Generator, init_weights

    for ngf in widths:
        torch.manual_seed(0)
        net = Generator(len(STYLES), ngf)
        init_weights(net)
        path = folder / f"{random_name(ngf)}.pth"
        export_model(path, net, {**net.config, "styles": list(STYLES)})
        write_card(path, {"name": random_name(ngf), "model_kind": "gated-gan", "styles": list(STYLES),
                          "description": f"random generator, ngf {ngf} (benchmark only)"})


# -- child: stylisation at one size --------------------------------------------------------------

def time_forward(net: Any, image: Any, gate: Any, repeats: int, sync: Callable[[], None]) -> dict[str, Any]:
    """Model-only time: the generator on a preloaded device tensor in -1..1, untiled, no Session overhead."""
    import torch

    with torch.no_grad():
        seconds, times = timed_calls(lambda: net(image, gate), repeats, sync)
    return {"seconds": seconds, "ms": round(seconds * 1000, 1), "repeats_s": times,
            "what": "Generator(image, one-hot gate) on a device tensor, untiled"}


def apply_child(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    from plugin_host.imaging.tiling import tile_grid
    from plugin_host.runner import Session
    from plugin_host_gated_gan.models import load_model
    from plugin_host_gated_gan.net import one_hot
    from plugin_host_gated_gan.run import STATS_SIDE, TILE_OVERLAP

    baseline = current_rss_mib()
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    session = Session(device=cfg["device"], seed=0, precision=cfg.get("precision", "auto"))
    device = session.context.device
    sync = syncer(device)
    size, tile = cfg["size"], cfg["tile_size"]
    params = {"model": cfg["model"], "style": "vangogh", "tile_size": tile}
    content_path, _ = benchmark_images()
    image = square_image(content_path, size)
    big_cpu = device.type == "cpu" and size >= BIG
    warm = square_image(content_path, WARM_SIDE) if big_cpu else image
    session.run(METHOD, {"content": warm}, params)  # loads the network
    del warm
    net, styles = load_model(session.context, cfg["model"])
    models_rss = current_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tiled = bool(tile) and size > tile
    repeats = 1 if big_cpu else cfg["repeats"]
    times: list[float] = []

    def one_run() -> float:
        sync()
        start = time.perf_counter()
        out = session.run(METHOD, {"content": image}, params)
        sync()
        times.append(time.perf_counter() - start)
        assert tuple(out.rgb.shape[-2:]) == (size, size), out.rgb.shape
        return times[-1]

    seconds = median_of(one_run, repeats)
    overlap = min(TILE_OVERLAP, (tile - 1) // 2) if tiled else 0
    result: dict[str, Any] = {
        "device": str(device), "precision": precision_name(session), "model": cfg["model"],
        "config": dict(net.config), "parameters": sum(p.numel() for p in net.parameters()),
        "size": size, "tile_size": tile, "tiled": tiled,
        "tiles": len(tile_grid(size, size, tile, overlap)) if tiled else 1, "overlap": overlap,
        "statistics_side": STATS_SIDE if tiled else None, "torch_threads": torch.get_num_threads(),
        "repeats": repeats, "session_run_s": seconds, "repeats_s": times,
        "peak_rss_mib": round(peak_rss_mib(), 1), "cuda_peak_mib": cuda_peak_mib(device),
    }
    if not tiled:
        gate = one_hot(len(styles), styles.index("vangogh")).to(device)
        result["forward"] = time_forward(net, (image * 2 - 1).to(device), gate, repeats, sync)
        result["peak_rss_with_forward_mib"] = round(peak_rss_mib(), 1)
    result.update(rss_after_imports_mib=baseline, rss_after_warmup_mib=models_rss)
    return result


# -- child: training steps -------------------------------------------------------------------------

def link_training_data(folder: Path, count: int) -> dict[str, list[str]]:
    """``folder/content`` and ``folder/styles/<collection>``: links to the first ``count`` images of each."""
    source = shared_dir() / "datasets"
    used: dict[str, list[str]] = {}
    for kind, target in [("content", folder / "content"), *((f"style/{s}", folder / "styles" / s) for s in STYLES)]:
        files = sorted(p for p in (source / kind).iterdir() if p.suffix.lower() in (".jpg", ".png"))[:count]
        if not files:
            sys.exit(f"benchmark: no training images under {source / kind}")
        target.mkdir(parents=True)
        for i, path in enumerate(files):
            (target / f"{i:03d}{path.suffix.lower()}").symlink_to(path)
        used[kind] = [p.name for p in files]
    return used


def train_child(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    from plugin_host.runner import Session

    baseline = current_rss_mib()
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    session = Session(device=cfg["device"], seed=0, precision=cfg.get("precision", "auto"))
    device = session.context.device
    sync = syncer(device)
    method = session.method(METHOD)
    total = cfg["warmup"] + cfg["steps"]
    with tempfile.TemporaryDirectory(prefix="gated-gan-bench-train-") as tmp:
        folder = Path(tmp)
        data = link_training_data(folder, cfg["images"])
        params = method.train_schema.validate({
            "content_dir": folder / "content", "styles_dir": folder / "styles", "out": folder / "model.pth",
            "iterations": total, "ngf": cfg["ngf"], "crop": cfg["crop"], "resize_short": cfg["resize_short"],
            "batch_size": cfg["batch_size"], "checkpoint_every": total, "log_every": total, "preview_every": 0,
            "resume": False}, models=session.registry.model_names())
        progress = StepTimes(sync)
        session.context.progress = progress
        method.resolve_train()(params, session.context)
    durations = [b - a for a, b in zip(progress.marks, progress.marks[1:])]
    timed = durations[cfg["warmup"]:]
    return {"device": str(device), "precision": precision_name(session), "ngf": cfg["ngf"], "ndf": 64,
            "crop": cfg["crop"], "resize_short": cfg["resize_short"], "batch_size": cfg["batch_size"],
            "torch_threads": torch.get_num_threads(), "warmup_steps": cfg["warmup"], "timed_steps": len(timed),
            "iterations_per_s": len(timed) / sum(timed), "median_step_s": statistics.median(timed),
            "steps_s": durations, "data": data,
            "note": "one step = G forward on 2B images (style + identity gates), D on B stylised, D on B "
                    "paintings + B pooled fakes, both backward passes; images loaded and cropped in the step",
            "peak_rss_mib": round(peak_rss_mib(), 1), "rss_after_imports_mib": baseline,
            "cuda_peak_mib": cuda_peak_mib(device)}


# -- parent ------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Gated-GAN benchmark (prints one JSON document).")
    p.add_argument("--quick", action="store_true", help="smoke run: sizes 128,256 (tile 128), ngf 32; training "
                                                        "ngf 16 at 64 px, 1+3 steps")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, help="torch.set_num_threads in each child (default: torch's)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--model", help="an installed gated-gan model to time instead of random ones")
    p.add_argument("--ngf", type=int_list, help="widths of the random generators (default 32,64)")
    p.add_argument("--sizes", type=int_list, help="square input sides (default 512,1024,4096)")
    p.add_argument("--tile-size", type=int, default=None, help="the method's tile_size (default 1024, its own)")
    p.add_argument("--repeats", type=int, help="timed runs per size (default 3; 1 from 4096 up on the CPU)")
    p.add_argument("--no-train", action="store_true", help="skip the training measurement")
    p.add_argument("--train-ngf", type=int_list, help="generator widths to train (default 32)")
    p.add_argument("--train-steps", type=int, help="timed training steps (default 10)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.tile_size is None:
        args.tile_size = 1024
    return args


def run_config(cfg: dict[str, Any]) -> dict[str, Any]:
    print(f"benchmark: {json.dumps(cfg)}", file=sys.stderr, flush=True)
    try:
        return run_child([SCRIPT, "--child", json.dumps(cfg)])
    except RuntimeError as err:
        print(f"benchmark: {err}", file=sys.stderr, flush=True)
        return {"config": cfg, "error": str(err)[-2000:]}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_environment()
    content, _ = benchmark_images()
    if args.child:
        cfg = json.loads(args.child)
        print(json.dumps(train_child(cfg) if cfg["kind"] == "train" else apply_child(cfg)), flush=True)
        return
    folder = None if args.model else Path(tempfile.mkdtemp(prefix="gated-gan-bench-models-"))
    try:
        if folder is not None:
            write_random_models(folder, args.ngf)
            os.environ["PLUGIN_HOST_MODELS"] = str(folder)  # inherited by every child
        models = [args.model] if args.model else [random_name(ngf) for ngf in args.ngf]
        common = {"threads": args.threads, "precision": args.precision, "tile_size": args.tile_size,
                  "repeats": args.repeats}
        doc: dict[str, Any] = {
            **header(), "method": METHOD, "quick": args.quick, "models": models, "random": folder is not None,
            "image": str(content),
            "notes": ["square inputs (the content image stretched); style vangogh, strength 1, no colour "
                      "preservation; tiled runs first run the network once on a copy of at most statistics_side "
                      "pixels a side (shared instance-norm statistics), then tile by tile",
                      f"on the CPU, sides ≥ {BIG} get 1 timed run after a warm-up at {WARM_SIDE}²",
                      "forward times the generator alone, untiled sizes only; peak_rss_mib is the whole "
                      "child's, imports included",
                      "random generators cost the same as trained ones of the same shape"],
        }
        for device in devices(args.device):
            doc.setdefault("stylise", []).extend(
                run_config({**common, "kind": "apply", "device": device, "model": model, "size": size})
                for model in models for size in args.sizes)
            if not args.no_train:
                doc.setdefault("train", []).extend(
                    run_config({"kind": "train", "device": device, "threads": args.threads,
                                "precision": args.precision, "ngf": ngf, "crop": args.train_crop,
                                "resize_short": args.train_resize, "batch_size": args.train_batch,
                                "warmup": args.train_warmup, "steps": args.train_steps,
                                "images": args.train_images})
                    for ngf in args.train_ngf)
        print_json(doc)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
