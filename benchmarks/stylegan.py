"""StyleGAN benchmark: rendering time per picture, projection time, training speed, peak memory.

Usage: ``.venv/bin/python benchmarks/stylegan.py [--quick] [--sizes 128,256] [--threads N] ...`` (``--help``).
Prints one JSON document. Every measured configuration runs in a fresh child process (this script with
``--child``) so that its peak RSS is its own.

No generator has to be trained: random narrow generators of the shape the project trains (modulated
convolutions, skip RGB, z = w = 256, 8 mapping layers, widths ``min(channel_max, channel_base / r)``,
default 2048 / 128: 128 channels up to 16 px, 16 at 128 px) are exported into a temporary folder and
rendered with ``--checkpoint``; timing does not depend on the weights' values. Training uses a few
paintings of ``<shared>/datasets/style/monet``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import header, peak_rss_mib, precision_name, print_json, run_child, setup_environment, shared_dir

SCRIPT = str(Path(__file__).resolve())
DEFAULTS: dict[str, Any] = dict(sizes=[128, 256], repeats=20, project_size=128, project_steps=300,
                                train_size=64, train_batch=8, train_warmup=2, train_steps=10)
QUICK: dict[str, Any] = dict(sizes=[128], repeats=3, project_size=64, project_steps=5, train_size=32,
                             train_batch=4, train_warmup=1, train_steps=2)


def write_generator(folder: Path, size: int, channel_base: int, channel_max: int) -> Path:
    import torch

    from plugin_host.training import export_model
    from plugin_host_stylegan.net import Generator, GeneratorConfig, widths_for

    torch.manual_seed(0)
    config = GeneratorConfig(resolution=size, widths=widths_for(size, channel_base, channel_max))
    generator = Generator(config)
    path = folder / f"stylegan-bench-{size}.pth"
    export_model(path, generator, {"generator": config.to_json()})
    return path


def child_render(cfg: dict[str, Any]) -> dict[str, Any]:
    """Milliseconds per picture through Session.run (one seed per call; the first call, which loads the
    generator, is left out) and for the synthesis network alone."""
    import torch

    from plugin_host.runner import Session

    session = Session(device=cfg["device"], seed=0, precision=cfg["precision"])
    params = {"checkpoint": cfg["path"], "noise_mode": "random"}
    session.run("stylegan", {}, {**params, "seeds": [0]})
    calls = []
    for seed in range(1, cfg["repeats"] + 1):
        start = time.perf_counter()
        session.run("stylegan", {}, {**params, "seeds": [seed]})
        calls.append(time.perf_counter() - start)
    from plugin_host_stylegan.models import load_generator

    generator = load_generator(session.context, session.validate(session.method("stylegan"), params))
    with torch.no_grad():
        w = generator.styles(torch.randn(1, generator.config.z_dim))
        noise = generator.make_noise(1, "const")
        forward = []
        for _ in range(cfg["repeats"]):
            start = time.perf_counter()
            generator.synthesis(w, noise)
            forward.append(time.perf_counter() - start)
    parameters = sum(p.numel() for p in generator.parameters())
    return {"size": cfg["size"], "ms_per_picture": round(1000 * statistics.median(calls), 2),
            "synthesis_ms": round(1000 * statistics.median(forward), 2), "generator_parameters": parameters,
            "precision": precision_name(session), "torch_threads": torch.get_num_threads(),
            "peak_rss_mib": round(peak_rss_mib(), 1)}


def child_project(cfg: dict[str, Any]) -> dict[str, Any]:
    """Seconds for a projection of ``project_steps`` steps (the method's default: 300) at the generator's size."""
    import torch

    from plugin_host.progress import Progress
    from plugin_host.runner import Session

    class Steps(Progress):
        times: list[float] = []

        def _on_advance(self, n: int, info: dict) -> None:
            Steps.times.append(time.perf_counter())

    session = Session(device=cfg["device"], seed=0, precision=cfg["precision"])
    picture = torch.rand(1, 3, cfg["size"], cfg["size"], generator=torch.Generator().manual_seed(0))
    session.run("stylegan-project", {"content": picture}, {"checkpoint": cfg["path"], "steps": 2})  # warm
    start = time.perf_counter()
    session.run("stylegan-project", {"content": picture}, {"checkpoint": cfg["path"], "steps": cfg["steps"]},
                progress=Steps())
    total = time.perf_counter() - start
    per_step = statistics.median(b - a for a, b in zip(Steps.times, Steps.times[1:])) if len(Steps.times) > 1 else total
    return {"size": cfg["size"], "steps": cfg["steps"], "seconds": round(total, 2),
            "seconds_per_step": round(per_step, 4), "seconds_for_300_steps": round(300 * per_step, 1),
            "precision": precision_name(session), "torch_threads": torch.get_num_threads(),
            "peak_rss_mib": round(peak_rss_mib(), 1)}


def child_train(cfg: dict[str, Any]) -> dict[str, Any]:
    """Training steps per second (after ``warmup`` steps), from the step times the progress reports."""
    import torch

    from plugin_host.progress import Progress
    from plugin_host.runner import Session

    class Steps(Progress):
        times: list[float] = []

        def _on_advance(self, n: int, info: dict) -> None:
            Steps.times.append(time.perf_counter())

    session = Session(device=cfg["device"], seed=0, precision="fp32")
    method = session.method("stylegan")
    out = Path(cfg["folder"]) / "train.pth"
    params = method.train_schema.validate({
        "data": cfg["data"], "out": out, "resolution": cfg["size"], "batch_size": cfg["batch"],
        "iterations": cfg["warmup"] + cfg["steps"], "checkpoint_every": 10_000, "preview_every": 0, "resume": False},
        models=session.registry.model_names())
    session.context.progress = Steps()
    method.resolve_train()(params, session.context)
    timed = Steps.times[cfg["warmup"] - 1:] if cfg["warmup"] else Steps.times
    seconds = (timed[-1] - timed[0]) / (len(timed) - 1)
    return {"size": cfg["size"], "batch": cfg["batch"], "seconds_per_step": round(seconds, 3),
            "steps_per_second": round(1 / seconds, 3), "kimg_per_hour": round(3.6 * cfg["batch"] / seconds, 1),
            "r1_every": params.r1_every, "channel_base": params.channel_base, "channel_max": params.channel_max,
            "torch_threads": torch.get_num_threads(), "peak_rss_mib": round(peak_rss_mib(), 1)}


CHILDREN = {"render": child_render, "project": child_project, "train": child_train}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, few repeats and steps")
    parser.add_argument("--sizes", help="render sizes, comma-separated (default 128,256)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--threads", type=int, help="torch.set_num_threads in each child (default: torch's)")
    parser.add_argument("--channel-base", type=int, default=2048)
    parser.add_argument("--channel-max", type=int, default=128)
    parser.add_argument("--project-steps", type=int, help="projection steps (default 300, the method's default)")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--note", help="free text stored in the document (e.g. 'machine loaded')")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cfg = json.loads(args.child)
        if cfg.get("threads"):
            import torch

            torch.set_num_threads(cfg["threads"])
        print(json.dumps(CHILDREN[cfg["kind"]](cfg)), flush=True)
        return
    setup_environment()
    plan = dict(QUICK if args.quick else DEFAULTS)
    if args.sizes:
        plan["sizes"] = [int(s) for s in args.sizes.split(",")]
    if args.project_steps:
        plan["project_steps"] = args.project_steps
    common = {"device": args.device, "precision": args.precision, "threads": args.threads}
    document: dict[str, Any] = {**header(), "note": args.note, "plan": plan,
                                "generator": {"channel_base": args.channel_base, "channel_max": args.channel_max,
                                              "z_dim": 256, "w_dim": 256, "mapping_layers": 8,
                                              "style_op": "modulated", "weights": "random"}}
    with tempfile.TemporaryDirectory(prefix="stylegan-bench-") as scratch:
        folder = Path(scratch)
        paths = {size: str(write_generator(folder, size, args.channel_base, args.channel_max))
                 for size in sorted({*plan["sizes"], plan["project_size"]})}
        document["render"] = []
        for size in plan["sizes"]:
            print(f"render {size} px", file=sys.stderr)
            document["render"].append(run_child([SCRIPT, "--child", json.dumps(
                {**common, "kind": "render", "size": size, "path": paths[size], "repeats": plan["repeats"]})]))
        print(f"project {plan['project_size']} px, {plan['project_steps']} steps", file=sys.stderr)
        document["project"] = run_child([SCRIPT, "--child", json.dumps(
            {**common, "kind": "project", "size": plan["project_size"], "path": paths[plan["project_size"]],
             "steps": plan["project_steps"]})])
        if not args.no_train:
            data = shared_dir() / "datasets" / "style" / "monet"
            print(f"train {plan['train_size']} px", file=sys.stderr)
            document["train"] = run_child([SCRIPT, "--child", json.dumps(
                {**common, "kind": "train", "size": plan["train_size"], "batch": plan["train_batch"],
                 "warmup": plan["train_warmup"], "steps": plan["train_steps"], "data": str(data),
                 "folder": scratch})])
    print_json(document)


if __name__ == "__main__":
    main()
