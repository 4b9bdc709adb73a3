"""Perceptual-loss benchmark (Johnson et al.): style-transfer and ×4 super-resolution latency and peak
memory per size, model-only forward time, and training iterations per second.

Usage: ``.venv/bin/python benchmarks/perceptual.py [--quick] [--train] [--model NAME] ...`` (``--help``).
Prints one JSON document. Every measured configuration runs in a fresh child process (this
script with ``--child``) so that its peak RSS is its own.

Unless ``--model``/``--sr-model`` name installed models, random networks of the real shapes
(full- and half-width style networks, a ×4 SR network) are exported into a temporary folder
that the children see as their models folder (``PLUGIN_HOST_MODELS``): timing does not depend
on the weights' values, so the benchmark runs before any model is trained.
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
# Helpers of the AdaIN benchmark that apply here unchanged (square test images, step timestamps,
# linked training images, CUDA sync).
from adain import StepTimes, int_list, square_image, syncer, training_images

SCRIPT = str(Path(__file__).resolve())
STYLE_METHOD, SR_METHOD = "perceptual", "perceptual-sr"
RANDOM_STYLE = {"full": "perceptual-bench-random-full", "half": "perceptual-bench-random-half"}
RANDOM_SR = "perceptual-bench-random-sr-x4"
RANDOM_SR_SCALE = 4
BIG = 4096  # outputs from this side on get a single timed run on the CPU (minutes each)
WARM_SIDE = 512  # output side of the CPU warm-up run for BIG outputs

DEFAULTS: dict[str, Any] = dict(sizes=[512, 1024, 4096], sr_sizes=[128, 256, 1024], widths=["full", "half"],
                                warmup=1, repeats=3, train_batch=4, train_crop=256, sr_train_crop=288,
                                train_warmup=1, train_steps=5, train_images=8)
# Tiny sizes with a tile size small enough that the largest of each list still goes through tiling.
QUICK: dict[str, Any] = dict(sizes=[64, 128, 256], sr_sizes=[16, 32, 64], tile_size=128, widths=["full", "half"],
                             warmup=1, repeats=1, train_batch=2, train_crop=64, sr_train_crop=64,
                             train_warmup=1, train_steps=2, train_images=4)


# -- parent: random networks --------------------------------------------------------------------

def write_random_models(folder: Path, widths: list[str], style: bool, sr: bool) -> None:
    """Random style networks (one per width) and a ×4 SR network, exported (fp16) with a card each,
    exactly as ``plugin_host train perceptual[-sr]`` installs a model into the models folder."""
    import torch

    from plugin_host.training import export_model
    from plugin_host.weights.user_models import write_card
    from plugin_host_perceptual.net import SuperResolutionNet, TransformerNet
    from plugin_host_perceptual.schema import SR_KIND, STYLE_KIND

    torch.manual_seed(0)
    nets: list[tuple[str, torch.nn.Module, dict[str, Any]]] = []
    if style:
        nets += [(RANDOM_STYLE[w], TransformerNet(width=w), {"model_kind": STYLE_KIND, "kind": "style",
                                                            "architecture": "johnson-transformer"})
                 for w in widths]
    if sr:
        nets.append((RANDOM_SR, SuperResolutionNet(scale=RANDOM_SR_SCALE),
                     {"model_kind": SR_KIND, "kind": "sr", "architecture": "johnson-sr"}))
    for name, net, card in nets:
        metadata = {"name": name, **card, **net.config, "description": "random network (benchmark only)"}
        path = export_model(folder / f"{name}.pth", net, metadata)
        write_card(path, metadata)


def link_user_model(name: str, folder: Path) -> None:
    """Make a model from the user's models folder visible in ``folder`` too (file and card linked),
    since the children's ``PLUGIN_HOST_MODELS`` points at ``folder`` when random networks are in use."""
    from plugin_host.plugins import load_registry
    from plugin_host.weights.store import WeightsStore
    from plugin_host.weights.user_models import card_path

    registry = load_registry()
    entry = registry.weights.get(name)
    if entry is None or not entry.extra.get("user_model"):
        return  # shipped and published models do not depend on the models folder
    found = WeightsStore(registry.weights).locate(name)
    if found is not None:
        for path in (found, card_path(found)):
            (folder / path.name).symlink_to(path.resolve())


def describe_model(name: str, kind: str, random: bool) -> dict[str, Any]:
    """The model's registry entry and file; exits with a hint when it cannot be found or fetched."""
    from urllib.parse import unquote, urlparse

    from plugin_host import UrlSource
    from plugin_host.plugins import load_registry
    from plugin_host.weights.store import WeightsStore

    registry = load_registry()
    entry = registry.weights.get(name)
    if entry is None or entry.model_kind != kind:
        known = sorted(n for n, e in registry.weights.items() if e.model_kind == kind)
        sys.exit(f"benchmark: {name!r} is not a registered {kind} model; known: {', '.join(known) or 'none'}")
    found = WeightsStore(registry.weights).locate(name)
    source = entry.source
    local_only = source is None or (isinstance(source, UrlSource) and source.url.startswith("file:")
                                    and not Path(unquote(urlparse(source.url).path)).is_file())
    if found is None and local_only:
        sys.exit(f"benchmark: model {name!r} ({entry.file}) is not installed; leave out --model/--sr-model "
                 "to time random networks of the same shapes")
    card = entry.extra.get("card") or {}
    described = {"name": name, "random": random, "file": str(found.resolve()) if found else None,
                 "note": None if found else "not installed: the child downloads it during its warm-up"}
    if kind.endswith("-sr"):
        described["scale"] = int(card.get("scale", 4))  # the run reads it from the file's metadata too
    return described


# -- child: applying a network at one size ------------------------------------------------------

def time_forward(net: Any, image: Any, repeats: int, sync: Callable[[], None]) -> dict[str, Any]:
    """Model-only time: ``apply_net`` on a preloaded device tensor, untiled, no Session overhead."""
    import torch

    from plugin_host_perceptual.net import apply_net

    with torch.no_grad():
        seconds, times = timed_calls(lambda: apply_net(net, image), repeats, sync)
    return {"seconds": seconds, "repeats_s": times,
            "what": "apply_net (scale to 0..255, network, clamp) on a device tensor, untiled"}


def apply_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Session.run of ``perceptual`` (style) or ``perceptual-sr`` at one square input size."""
    import torch

    from plugin_host.imaging.tiling import tile_grid
    from plugin_host.runner import Session
    from plugin_host_perceptual.models import load_model
    from plugin_host_perceptual.run import STATS_SIDE, TILE_OVERLAP

    baseline = current_rss_mib()  # torch and plugin_host imported, nothing run yet
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    session = Session(device=cfg["device"], seed=0, precision=cfg.get("precision", "auto"),
                      memory=cfg.get("memory", "auto"))
    device = session.context.device
    sync = syncer(device)
    method = STYLE_METHOD if cfg["kind"] == "style" else SR_METHOD
    size, tile = cfg["size"], cfg["tile_size"]
    params = {"model": cfg["model"], "tile_size": tile}
    content_path, _ = benchmark_images()
    image = square_image(content_path, size)

    # The first run loads (and verifies) the network; its metadata then gives the SR scale.
    big_cpu = device.type == "cpu" and cfg["out_side"] >= BIG
    warm_size = max(1, WARM_SIDE * size // cfg["out_side"]) if big_cpu else size
    warm_image = image if warm_size == size else square_image(content_path, warm_size)
    for _ in range(max(1, cfg["warmup"])):
        session.run(method, {"content": warm_image}, params)
    del warm_image
    net, metadata = load_model(session.context, cfg["model"], cfg["kind"])  # cached by the warm-up
    factor = int(metadata.get("scale", 4)) if cfg["kind"] == "sr" else 1
    out_side = size * factor
    models_rss = current_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    # run_sr counts tile_size in output pixels; the overlap rule mirrors run.forward.
    tile_in = tile // factor if tile else 0
    tiled = bool(tile_in) and size > tile_in
    repeats = 1 if big_cpu else cfg["repeats"]
    times: list[float] = []

    def one_run() -> float:
        sync()
        start = time.perf_counter()
        out = session.run(method, {"content": image}, params)
        sync()
        times.append(time.perf_counter() - start)
        assert tuple(out.rgb.shape[-2:]) == (out_side, out_side), out.rgb.shape
        return times[-1]

    seconds = median_of(one_run, repeats)
    result: dict[str, Any] = {
        "device": str(device), "precision": precision_name(session),
        "model": cfg["model"], "config": dict(getattr(net, "config", {})),
        "parameters": sum(p.numel() for p in net.parameters()),
        "input_hw": [size, size], "output_hw": [out_side, out_side], "tile_size": tile, "tiled": tiled,
        "tiles": len(tile_grid(size, size, tile_in, min(TILE_OVERLAP, tile_in // 4))) if tiled else 1,
        "statistics_side": STATS_SIDE if tiled else None, "torch_threads": torch.get_num_threads(),
        "warmup_runs": max(1, cfg["warmup"]), "warmup_size": warm_size, "repeats": repeats,
        "session_run_s": seconds, "repeats_s": times,
        "peak_rss_mib": round(peak_rss_mib(), 1), "cuda_peak_mib": cuda_peak_mib(device),
    }
    if not tiled and cfg.get("forward", True):
        result["forward"] = time_forward(net, image.to(device=device, dtype=session.context.dtype), repeats, sync)
        result["peak_rss_with_forward_mib"] = round(peak_rss_mib(), 1)
        if device.type == "cuda":
            result["cuda_peak_with_forward_mib"] = cuda_peak_mib(device)
    result.update(rss_after_imports_mib=baseline, rss_after_warmup_mib=models_rss)
    return result


# -- child: training steps ----------------------------------------------------------------------

def train_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """``warmup + steps`` steps of the method's own training; times from the progress callbacks."""
    import torch

    from plugin_host.builtin_weights import DEFAULT_ENCODER
    from plugin_host.runner import Session

    baseline = current_rss_mib()
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    session = Session(device=cfg["device"], seed=0, precision=cfg.get("precision", "auto"),
                      memory=cfg.get("memory", "auto"))
    device = session.context.device
    sync = syncer(device)
    sr = cfg["kind"] == "train-sr"
    method = session.method(SR_METHOD if sr else STYLE_METHOD)
    total = cfg["warmup"] + cfg["steps"]
    _, style_path = benchmark_images()
    with tempfile.TemporaryDirectory(prefix="perceptual-bench-train-") as tmp:
        folder = Path(tmp)
        contents = training_images("content", cfg["images"], folder / "content")
        values: dict[str, Any] = {
            "content_dir": folder / "content", "out": folder / "net.pth", "encoder": DEFAULT_ENCODER,
            "iterations": total, "batch_size": cfg["batch_size"], "crop": cfg["crop"],
            "resize_short": cfg["resize_short"], "checkpoint_every": total, "log_every": total,
            "preview_every": 0, "resume": False, "workers": cfg["workers"],
        }
        values.update({"scale": str(cfg["scale"]), "loss": "feature"} if sr
                      else {"style": style_path, "width": cfg["width"]})
        params = method.train_schema.validate(values, models=session.registry.model_names())
        progress = StepTimes(sync)
        session.context.progress = progress
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        method.resolve_train()(params, session.context)
    # The export after the last step comes after its progress mark, so no step includes it.
    durations = [b - a for a, b in zip(progress.marks, progress.marks[1:])]
    timed = durations[cfg["warmup"]:]
    network = {"scale": cfg["scale"], "loss": "feature"} if sr else {"width": cfg["width"],
                                                                    "style_size": params.style_size}
    return {"device": str(device), "precision": precision_name(session),
            "command": f"train {method.name}", **network, "batch_size": cfg["batch_size"],
            "crop": cfg["crop"], "resize_short": cfg["resize_short"], "encoder": DEFAULT_ENCODER,
            "workers": cfg["workers"], "torch_threads": torch.get_num_threads(),
            "warmup_steps": cfg["warmup"], "timed_steps": len(timed),
            "iterations_per_s": len(timed) / sum(timed), "images_per_s": len(timed) * cfg["batch_size"] / sum(timed),
            "median_step_s": statistics.median(timed), "steps_s": durations,
            "data": {"content": contents, "style": None if sr else str(style_path),
                     "note": "real photos linked from <shared>/datasets/content; decoded and cropped inside each "
                             "step (workers 0: on the training thread)"},
            "peak_rss_mib": round(peak_rss_mib(), 1), "rss_after_imports_mib": baseline,
            "cuda_peak_mib": cuda_peak_mib(device)}


# -- parent: plan configurations, run each in a child, collect ----------------------------------

PARTS = ("style", "sr", "train")


def part_list(text: str) -> list[str]:
    parts = [x.strip() for x in text.split(",") if x.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    return parts


def width_list(text: str) -> list[str]:
    widths = [x.strip() for x in text.split(",") if x.strip()]
    if not widths or set(widths) - set(RANDOM_STYLE):
        raise argparse.ArgumentTypeError(f"widths: a comma list of {', '.join(RANDOM_STYLE)}")
    return widths


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from plugin_host.sdk import TILE_SIZE as TILE

    p = argparse.ArgumentParser(description="Perceptual-loss benchmark (prints one JSON document).")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: tiny sizes with tile size 128 (the largest size still tiled), 1 repeat; "
                        "training batch 2, crop 64, 1+2 steps")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: cpu, plus cuda when torch sees a GPU")
    p.add_argument("--threads", type=int, help="torch.set_num_threads in each child (default: torch's)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="network arithmetic, as `plugin_host run --precision` (default auto)")
    p.add_argument("--memory", choices=("auto", "low", "high"), default="auto",
                   help="memory/speed trade-off, as `plugin_host run --memory` (default auto)")
    p.add_argument("--what", type=part_list, default=["style", "sr"],
                   help="comma list of parts: style, sr, train (default style,sr)")
    p.add_argument("--train", action="store_true", help="add training (same as listing train in --what)")
    p.add_argument("--train-only", action="store_true", help="measure training only (--what train)")
    p.add_argument("--model", help="installed style model to time instead of the random full- and half-width ones")
    p.add_argument("--sr-model", help="installed super-resolution model to time instead of the random ×4 one")
    p.add_argument("--widths", type=width_list,
                   help="widths of the random style networks and of style training (default full,half)")
    g = p.add_argument_group("latency and peak memory")
    g.add_argument("--sizes", type=int_list, help="square style input sides (default 512,1024,4096)")
    g.add_argument("--sr-sizes", type=int_list, help="square low-resolution SR input sides (default 128,256,1024)")
    g.add_argument("--tile-size", type=int,
                   help=f"the methods' tile_size, in output pixels (default: the method's, {TILE.default})")
    g.add_argument("--warmup", type=int, help="untimed runs before timing (default 1)")
    g.add_argument("--repeats", type=int, help=f"timed runs, median reported (default 3; 1 on CPU from {BIG} out)")
    g.add_argument("--no-forward", action="store_true", help="skip the model-only forward timing")
    g = p.add_argument_group("training")
    g.add_argument("--train-batch", type=int, help="batch size (default 4, the method's)")
    g.add_argument("--train-crop", type=int, help="style training crop (default 256, the method's)")
    g.add_argument("--sr-train-crop", type=int, help="SR training high-resolution crop (default 288, the method's)")
    g.add_argument("--train-resize", type=int, default=0, help="short side before cropping (default 0: keep)")
    g.add_argument("--train-warmup", type=int, help="untimed steps (default 1)")
    g.add_argument("--train-steps", type=int, help="timed steps (default 5)")
    g.add_argument("--train-images", type=int, help="photos linked from <shared>/datasets/content (default 8)")
    g.add_argument("--train-workers", type=int, default=0, help="data-loading processes (default 0)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for key, value in {"tile_size": TILE.default, **(QUICK if args.quick else DEFAULTS)}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.train_only:
        args.what = ["train"]
    elif args.train and "train" not in args.what:
        args.what = [*args.what, "train"]
    return args


def run_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """One configuration in a child; a failed child (e.g. out of memory) is recorded, not fatal."""
    print(f"benchmark: {json.dumps(cfg)}", file=sys.stderr, flush=True)
    try:
        return run_child([SCRIPT, "--child", json.dumps(cfg)])
    except RuntimeError as err:
        print(f"benchmark: {err}", file=sys.stderr, flush=True)
        return {"config": cfg, "error": str(err)[-2000:]}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_environment()
    content, style = benchmark_images()  # fail early with a clear message
    if args.child:
        cfg = json.loads(args.child)
        result = train_child(cfg) if cfg["kind"].startswith("train") else apply_child(cfg)
        print(json.dumps(result), flush=True)
        return
    if "train" in args.what:
        shared = shared_dir() / "datasets" / "content"
        if not shared.is_dir():
            sys.exit(f"benchmark: training photos {shared} not found")
    random_style = "style" in args.what and not args.model
    random_sr = "sr" in args.what and not args.sr_model
    folder = Path(tempfile.mkdtemp(prefix="perceptual-bench-models-")) if random_style or random_sr else None
    try:
        models: dict[str, Any] = {}
        if folder is not None:
            # Named user models must stay visible once the children's models folder is the temporary one.
            for name in (args.model, args.sr_model):
                if name:
                    link_user_model(name, folder)
            write_random_models(folder, args.widths, random_style, random_sr)
            os.environ["PLUGIN_HOST_MODELS"] = str(folder)  # inherited by every child
        style_models = ([args.model] if args.model else [RANDOM_STYLE[w] for w in args.widths]) \
            if "style" in args.what else []
        sr_model = (args.sr_model or RANDOM_SR) if "sr" in args.what else None
        from plugin_host_perceptual.schema import SR_KIND, STYLE_KIND

        if style_models:
            models["style"] = [describe_model(n, STYLE_KIND, random_style) for n in style_models]
        if sr_model:
            models["sr"] = describe_model(sr_model, SR_KIND, random_sr)
            scale = models["sr"]["scale"]
        common = {"threads": args.threads, "precision": args.precision, "memory": args.memory,
                  "tile_size": args.tile_size, "warmup": args.warmup,
                  "repeats": args.repeats, "forward": not args.no_forward}
        doc: dict[str, Any] = {
            **header(), "method": [STYLE_METHOD, SR_METHOD], "quick": args.quick, "device": args.device,
            "models": models,
            "setup": (f"input {CONTENT_NOTE}; default parameters (strength 1, no colour preservation, content "
                      f"scale 1) except tile_size {args.tile_size}; seed 0; the network is loaded in each "
                      "child's warm-up run"),
            "images": {"content": str(content), "style (training)": str(style)},
            "notes": [f"on the CPU, outputs of side ≥ {BIG} get 1 timed run after a warm-up with a {WARM_SIDE}² "
                      "output (minutes per run)",
                      "tile_size counts output pixels (perceptual-sr tiles its input in tile_size / scale); "
                      "tiled runs first run the network once on a copy of at most statistics_side pixels a "
                      "side (shared instance-norm statistics), then tile by tile",
                      "session_run_s times Session.run (input copy, tiling, output to CPU) with "
                      "cuda.synchronize on the GPU; forward.seconds times apply_net alone, untiled sizes only",
                      "peak_rss_mib is the whole child's (imports included); cuda_peak_mib is "
                      "torch.cuda.max_memory_allocated over the timed runs",
                      "random networks (models.*.random) cost the same as trained ones of the same shape"],
        }
        for device in devices(args.device):
            if style_models:
                doc.setdefault("style", []).extend(
                    run_config({**common, "kind": "style", "device": device, "model": name, "size": size,
                                "out_side": size})
                    for name in style_models for size in args.sizes)
            if sr_model:
                doc.setdefault("sr", []).extend(
                    run_config({**common, "kind": "sr", "device": device, "model": sr_model, "size": size,
                                "out_side": size * scale})
                    for size in args.sr_sizes)
            if "train" in args.what:
                train = {"device": device, "threads": args.threads, "precision": args.precision,
                         "batch_size": args.train_batch,
                         "resize_short": args.train_resize, "warmup": args.train_warmup, "steps": args.train_steps,
                         "images": args.train_images, "workers": args.train_workers}
                doc.setdefault("train", []).extend(
                    [*(run_config({**train, "kind": "train-style", "width": w, "crop": args.train_crop})
                       for w in args.widths),
                     run_config({**train, "kind": "train-sr", "scale": RANDOM_SR_SCALE, "crop": args.sr_train_crop})])
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    print_json(doc)


CONTENT_NOTE = "images/content/tubingen.jpg (1024×768) stretched to N×N, passed as a tensor"

if __name__ == "__main__":
    main()
