"""AdaIN benchmark: stylisation latency and peak memory per content size, model-only forward time,
and training iterations per second.

Usage: ``.venv/bin/python benchmarks/adain.py [--quick] [--random-decoder] [--train] ...`` (``--help``).
Prints one JSON document. Every measured configuration runs in a fresh child process (this
script with ``--child``) so that its peak RSS is its own.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Callable

from _common import (benchmark_images, cuda_peak_mib, current_rss_mib, devices, header, median_of,
                     peak_rss_mib, precision_name, print_json, run_child, setup_environment, shared_dir)
from plugin_host.builtin_weights import DEFAULT_ENCODER
from plugin_host.progress import Progress

SCRIPT = str(Path(__file__).resolve())
METHOD = "adain"
DEFAULT_DECODER = "adain-decoder-vgg16-hed"
RANDOM_DECODER = "adain-decoder-random-vgg16"
STYLE_SIZE = 512
TILE_SIZE = 1024  # the method's default tile size
BIG = 4096  # sizes from here on get a single run on the CPU
TRAIN_DATA = "datasets"  # <shared>/datasets/{content,style}

DEFAULTS: dict[str, Any] = dict(sizes=[512, 1024, 4096], warmup=1, repeats=3, train_batch=8, train_crop=256,
                                train_warmup=1, train_steps=5, train_images=8)
QUICK: dict[str, Any] = dict(sizes=[128, 256], warmup=1, repeats=1, train_batch=2, train_crop=128,
                             train_warmup=1, train_steps=2, train_images=4)


# -- shared by parent and children -------------------------------------------------------------

def random_decoder_entry(folder: Path):
    from plugin_host import UrlSource, WeightsEntry

    path = folder / f"{RANDOM_DECODER}.pth"
    return WeightsEntry(RANDOM_DECODER, path.name, "adain-decoder", "vgg16", "caffe", UrlSource(path.as_uri()), None,
                        description="random full-width vgg16 decoder (benchmark only)",
                        extra={"encoder": DEFAULT_ENCODER})


def write_random_decoder(folder: Path) -> Path:
    """A random, full-width (1.0) vgg16 decoder for the default encoder, exported as the trained one would be (fp16)."""
    import torch

    from plugin_host.training import export_model
    from plugin_host_adain.net import Decoder

    torch.manual_seed(0)
    return export_model(folder / f"{RANDOM_DECODER}.pth", Decoder("vgg16", width=1.0),
                        {"method": METHOD, "encoder": DEFAULT_ENCODER, "architecture": "vgg16", "width": 1.0})


def make_session(cfg: dict[str, Any]):
    """A Session on ``cfg["device"]``; with ``random_decoder_dir``, one whose registry and store also know
    the random decoder in that folder (an extra plugin, as tests/plugins/test_adain.py does)."""
    from plugin_host import hookimpl
    from plugin_host.plugins import load_registry
    from plugin_host.runner import Session
    from plugin_host.weights.store import WeightsStore, default_search_path

    folder = cfg.get("random_decoder_dir")
    if not folder:
        return Session(device=cfg["device"], seed=0, precision=cfg.get("precision", "auto"),
                       memory=cfg.get("memory", "auto"))
    entry = random_decoder_entry(Path(folder))
    plugin = types.ModuleType("adain_benchmark_decoder")
    plugin.register_weights = hookimpl(lambda register: register(entry))  # type: ignore[attr-defined]
    registry = load_registry(extra_plugins=[("adain_benchmark_decoder", plugin)])
    # Found in place through the search path: never copied into the user's cache.
    store = WeightsStore(registry.weights, search_path=[*default_search_path(), Path(folder)])
    return Session(registry=registry, device=cfg["device"], seed=0, precision=cfg.get("precision", "auto"),
                   memory=cfg.get("memory", "auto"), store=store)


def syncer(device: Any) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


# -- child: stylisation at one size ------------------------------------------------------------

def square_image(path: Path, size: int):
    """The image at ``path`` resized (stretched, antialiased) to exactly ``size``×``size``: (1, 3, N, N) on the CPU."""
    from plugin_host.imaging.io import load_image
    from plugin_host.imaging.resize import resize_to

    return resize_to(load_image(path).rgb, (size, size)).contiguous()


def time_forward(session: Any, decoder_name: str, content: Any, style: Any, repeats: int,
                 sync: Callable[[], None]) -> dict[str, Any]:
    """Model-only time: encoder to relu4_1 + AdaIN + decoder on a preloaded device tensor, no I/O, no
    Session overhead; the style statistics are computed once beforehand (timed separately)."""
    import torch

    from plugin_host.losses import mean_std
    from plugin_host_adain.models import load_models
    from plugin_host_adain.net import adain, encode

    ctx = session.context
    encoder, decoder = load_models(ctx, decoder_name)
    content = content.to(device=ctx.device, dtype=ctx.dtype)
    style = style.to(device=ctx.device, dtype=ctx.dtype)

    def style_stats() -> tuple[Any, float]:
        sync()
        start = time.perf_counter()
        stats = mean_std(encode(encoder, style)["relu4_1"])
        sync()
        return stats, time.perf_counter() - start

    def forward() -> float:
        sync()
        start = time.perf_counter()
        decoder(adain(encode(encoder, content)["relu4_1"], *stats))
        sync()
        return time.perf_counter() - start

    with torch.no_grad():
        style_stats()  # warm-up
        stats, _ = style_stats()
        style_s = [style_stats()[1] for _ in range(max(1, repeats))]
        forward()  # warm-up
        times: list[float] = []

        def timed() -> float:
            times.append(forward())
            return times[-1]

        seconds = median_of(timed, repeats)
    return {"seconds": seconds, "repeats_s": times, "style_statistics_s": statistics.median(style_s),
            "what": "content encoder (to relu4_1) + AdaIN + decoder on a device tensor; style statistics "
                    "(encoder on the 512² style) precomputed and timed separately"}


def stylise_child(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    baseline = current_rss_mib()  # torch and plugin_host imported, nothing run yet
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    session = make_session(cfg)
    device = session.context.device
    sync = syncer(device)
    size, tile = cfg["size"], cfg["tile_size"]
    content_path, style_path = benchmark_images()
    content = square_image(content_path, size)
    style = square_image(style_path, STYLE_SIZE)
    params = {"decoder": cfg["decoder"], "max_size": 0, "style_size": STYLE_SIZE, "tile_size": tile}
    images = {"content": content, "style": [style]}

    # Warm-up: loads (and verifies) encoder and decoder so no measurement includes it. A big image
    # on the CPU is warmed up at 512² instead of paying another multi-minute run.
    big_cpu = device.type == "cpu" and size >= BIG
    warm_size = min(size, 512) if big_cpu else size
    warm_images = images if warm_size == size else {"content": square_image(content_path, warm_size),
                                                     "style": [style]}
    for _ in range(cfg["warmup"]):
        session.run(METHOD, warm_images, params)
    del warm_images
    models_rss = current_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    repeats = 1 if big_cpu else cfg["repeats"]
    times: list[float] = []

    def one_run() -> float:
        sync()
        start = time.perf_counter()
        out = session.run(METHOD, images, params)
        sync()
        times.append(time.perf_counter() - start)
        assert tuple(out.rgb.shape[-2:]) == (size, size), out.rgb.shape
        return times[-1]

    seconds = median_of(one_run, repeats)
    result: dict[str, Any] = {
        "device": str(device), "precision": precision_name(session),
        "size": size, "content_hw": [size, size], "style_hw": [STYLE_SIZE, STYLE_SIZE],
        "tile_size": tile, "tiled": bool(tile) and size > tile, "torch_threads": torch.get_num_threads(),
        "warmup_runs": cfg["warmup"], "warmup_size": warm_size, "repeats": repeats,
        "session_run_s": seconds, "repeats_s": times,
        "peak_rss_mib": round(peak_rss_mib(), 1), "cuda_peak_mib": cuda_peak_mib(device),
    }
    if not result["tiled"] and cfg.get("forward", True):
        result["forward"] = time_forward(session, cfg["decoder"], content, style, repeats, sync)
        result["peak_rss_with_forward_mib"] = round(peak_rss_mib(), 1)
        if device.type == "cuda":
            result["cuda_peak_with_forward_mib"] = cuda_peak_mib(device)
    result.update(rss_after_imports_mib=baseline, rss_after_warmup_mib=models_rss)
    return result


# -- child: training steps ---------------------------------------------------------------------

class StepTimes(Progress):
    """Timestamps the training stage's start and every completed step."""

    def __init__(self, sync: Callable[[], None]) -> None:
        super().__init__()
        self.sync = sync
        self.marks: list[float] = []

    def _on_stage(self) -> None:
        self.sync()
        self.marks = [time.perf_counter()]

    def _on_advance(self, n: int, info: dict[str, Any]) -> None:
        if n:  # the loop first advances by the resume step (0 here)
            self.sync()
            self.marks.append(time.perf_counter())


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def training_images(kind: str, count: int, folder: Path) -> list[str]:
    """Links to the first ``count`` images (sorted, recursively) of ``<shared>/datasets/<kind>`` in ``folder``."""
    source = shared_dir() / TRAIN_DATA / kind
    files = sorted(p for p in source.glob("**/*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())[:count]
    if not files:
        sys.exit(f"benchmark: no training images under {source}")
    folder.mkdir(parents=True)
    for i, path in enumerate(files):
        (folder / f"{i:03d}{path.suffix.lower()}").symlink_to(path)
    return [str(p.relative_to(source)) for p in files]


def train_child(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    baseline = current_rss_mib()
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    session = make_session(cfg)
    device = session.context.device
    sync = syncer(device)
    method = session.method(METHOD)
    total = cfg["warmup"] + cfg["steps"]
    with tempfile.TemporaryDirectory(prefix="adain-bench-train-") as tmp:
        folder = Path(tmp)
        contents = training_images("content", cfg["images"], folder / "content")
        styles = training_images("style", cfg["images"], folder / "style")
        params = method.train_schema.validate({
            "content_dir": folder / "content", "style_dir": folder / "style", "out": folder / "decoder.pth",
            "encoder": DEFAULT_ENCODER, "iterations": total, "batch_size": cfg["batch_size"], "crop": cfg["crop"],
            "resize_short": cfg["resize_short"], "width": 1.0, "checkpoint_every": total, "log_every": total,
            "preview_every": 0, "resume": False, "workers": cfg["workers"],
        }, models=session.registry.model_names())
        progress = StepTimes(sync)
        session.context.progress = progress
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        method.resolve_train()(params, session.context)
    durations = [b - a for a, b in zip(progress.marks, progress.marks[1:])]
    timed = durations[cfg["warmup"]:]
    return {"device": str(device), "precision": precision_name(session),
            "batch_size": cfg["batch_size"], "crop": cfg["crop"],
            "resize_short": cfg["resize_short"], "decoder_width": 1.0, "encoder": DEFAULT_ENCODER,
            "workers": cfg["workers"], "torch_threads": torch.get_num_threads(),
            "warmup_steps": cfg["warmup"], "timed_steps": len(timed),
            "iterations_per_s": len(timed) / sum(timed), "images_per_s": len(timed) * cfg["batch_size"] / sum(timed),
            "median_step_s": statistics.median(timed), "steps_s": durations,
            "data": {"content": contents, "style": styles,
                     "note": "real images linked from <shared>/datasets; loaded, resized and cropped inside "
                             "each step (workers=0: on the training thread)"},
            "peak_rss_mib": round(peak_rss_mib(), 1), "rss_after_imports_mib": baseline,
            "cuda_peak_mib": cuda_peak_mib(device)}


# -- parent: plan configurations, run each in a child, collect ---------------------------------

def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="AdaIN benchmark (prints one JSON document).")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: sizes 128,256, 1 repeat; with --train batch 2, crop 128, 1+2 steps")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: cpu, plus cuda when torch sees a GPU")
    p.add_argument("--threads", type=int, help="torch.set_num_threads in each child (default: torch's)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="network arithmetic, as `plugin_host run --precision` (default auto)")
    p.add_argument("--memory", choices=("auto", "low", "high"), default="auto",
                   help="memory/speed trade-off, as `plugin_host run --memory` (default auto)")
    p.add_argument("--decoder", default=DEFAULT_DECODER, help=f"registered decoder to time (default {DEFAULT_DECODER})")
    p.add_argument("--random-decoder", action="store_true",
                   help="time a random full-width vgg16 decoder for the default encoder instead (same cost)")
    g = p.add_argument_group("stylisation latency and peak memory")
    g.add_argument("--sizes", type=int_list, help="square content sides (default 512,1024,4096)")
    g.add_argument("--tile-size", type=int, default=TILE_SIZE,
                   help=f"tile size for sizes above it; smaller sizes run untiled (default {TILE_SIZE})")
    g.add_argument("--warmup", type=int, help="untimed runs before timing (default 1)")
    g.add_argument("--repeats", type=int, help="timed runs, median reported (default 3; 1 on CPU from 4096)")
    g.add_argument("--no-forward", action="store_true", help="skip the model-only forward timing")
    g = p.add_argument_group("training")
    g.add_argument("--train", action="store_true", help="also measure training iterations per second")
    g.add_argument("--train-only", action="store_true", help="measure training only")
    g.add_argument("--train-batch", type=int, help="batch size (default 8)")
    g.add_argument("--train-crop", type=int, help="crop size (default 256)")
    g.add_argument("--train-resize", type=int, default=320, help="short side before cropping (default 320)")
    g.add_argument("--train-warmup", type=int, help="untimed steps (default 1)")
    g.add_argument("--train-steps", type=int, help="timed steps (default 5)")
    g.add_argument("--train-images", type=int, help="images per folder from <shared>/datasets (default 8)")
    g.add_argument("--train-workers", type=int, default=0, help="data-loading processes (default 0)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.train = args.train or args.train_only
    return args


def run_config(cfg: dict[str, Any]) -> dict[str, Any]:
    print(f"benchmark: {json.dumps(cfg)}", file=sys.stderr, flush=True)
    return run_child([SCRIPT, "--child", json.dumps(cfg)])


def describe_decoder(args: argparse.Namespace, folder: Path | None) -> dict[str, Any]:
    """The decoder's entry; exits with a hint when its file is neither installed nor fetchable."""
    from urllib.parse import unquote, urlparse

    from plugin_host import UrlSource
    from plugin_host.plugins import load_registry
    from plugin_host.weights.store import WeightsStore

    if folder is not None:
        entry, found = random_decoder_entry(folder), folder / f"{RANDOM_DECODER}.pth"
    else:
        registry = load_registry()
        entry = registry.weights.get(args.decoder)
        if entry is None or entry.model_kind != "adain-decoder":
            known = sorted(n for n, e in registry.weights.items() if e.model_kind == "adain-decoder")
            sys.exit(f"benchmark: {args.decoder!r} is not a registered AdaIN decoder; known: {', '.join(known)}")
        found = WeightsStore(registry.weights).locate(args.decoder)
        source = entry.source
        if found is None and isinstance(source, UrlSource) and source.url.startswith("file:") \
                and not Path(unquote(urlparse(source.url).path)).is_file():
            sys.exit(f"benchmark: decoder {args.decoder!r} ({entry.file}) is not installed yet; "
                     "use --random-decoder to time a random decoder of the same shape")
    return {"name": entry.name, "random": folder is not None, "architecture": entry.architecture,
            "encoder": entry.extra.get("encoder"), "file": str(found) if found else None,
            "width": 1.0 if folder is not None else None}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_environment()
    content, style = benchmark_images()  # fail early with a clear message
    if args.child:
        cfg = json.loads(args.child)
        result = train_child(cfg) if cfg["kind"] == "train" else stylise_child(cfg)
        print(json.dumps(result), flush=True)
        return
    folder = Path(tempfile.mkdtemp(prefix="adain-bench-decoder-")) if args.random_decoder else None
    try:
        if folder is not None:
            write_random_decoder(folder)
        # Training builds its own decoder: only stylisation needs the named one.
        decoder = None if args.train_only else describe_decoder(args, folder)
        name = RANDOM_DECODER if folder is not None else args.decoder
        common = {"decoder": name, "random_decoder_dir": str(folder) if folder else None, "threads": args.threads,
                  "precision": args.precision, "memory": args.memory}
        doc: dict[str, Any] = {
            **header(), "method": METHOD, "quick": args.quick, "device": args.device, "decoder": decoder,
            "setup": (f"content {CONTENT_NOTE}; style resized to {STYLE_SIZE}²; strength 1, no colour "
                      "preservation, max_size 0, seed 0; models loaded once per child in the warm-up"),
            "images": {"content": str(content), "style": str(style)},
            "notes": [f"on the CPU, sizes ≥ {BIG} get 1 timed run after a warm-up at 512² (minutes per run)",
                      "session_run_s times Session.run (input copy, style statistics, tiling, output to CPU) "
                      "with cuda.synchronize on the GPU; forward.seconds times the models only",
                      "peak_rss_mib is the whole child's (imports included); cuda_peak_mib is "
                      "torch.cuda.max_memory_allocated over the timed runs"],
        }
        if not args.train_only:
            doc["stylise"] = [run_config({**common, "kind": "stylise", "device": device, "size": size,
                                          "tile_size": args.tile_size if size > args.tile_size else 0,
                                          "warmup": args.warmup, "repeats": args.repeats,
                                          "forward": not args.no_forward})
                              for device in devices(args.device) for size in args.sizes]
        if args.train:
            doc["train"] = [run_config({**common, "kind": "train", "device": device, "batch_size": args.train_batch,
                                        "crop": args.train_crop, "resize_short": args.train_resize,
                                        "warmup": args.train_warmup, "steps": args.train_steps,
                                        "images": args.train_images, "workers": args.train_workers})
                            for device in devices(args.device)]
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    print_json(doc)


CONTENT_NOTE = "images/content/tubingen.jpg (1024×768) stretched to N×N, passed as a tensor"

if __name__ == "__main__":
    main()
