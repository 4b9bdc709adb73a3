"""How much faster than a plain baseline the same work can be on this CPU at all.

Usage: ``.venv/bin/python benchmarks/roofline.py [--threads 2] [--versus-plain RESULT.json ...]``

Counts the floating-point operations of one unit of each benchmarked work with torch's own
``FlopCounterMode`` (convolutions and matrix products, forward and backward), measures the fastest fp32
and bf16 3×3-convolution throughput torch reaches here (the best of a few layer shapes of VGG, median of
several calls), and so gives the floor: the seconds the work would take if every operation ran at that
throughput. Given ``versus_plain.py`` results, it adds each side's share of the throughput and the largest
ratio any implementation of the same work could reach over the baseline (baseline seconds / floor).
Prints one JSON document.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

from _common import header, print_json, setup_environment

#: 3×3 convolutions of VGG at the sizes a 512² picture gives them: (channels in, out, side).
CONV_SHAPES = ((64, 64, 256), (128, 128, 128), (256, 256, 64), (512, 512, 32))


def conv_throughput(dtype_name: str, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of the fastest of :data:`CONV_SHAPES` (forward, batch 1, channels-last and contiguous)."""
    import torch
    import torch.nn.functional as F

    dtype = getattr(torch, dtype_name)
    best: dict[str, float] = {"gflops": 0.0}
    for c_in, c_out, side in CONV_SHAPES:
        for layout in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(1, c_in, side, side).to(dtype=dtype, memory_format=layout)
            w = torch.randn(c_out, c_in, 3, 3).to(dtype=dtype, memory_format=layout)
            F.conv2d(x, w, padding=1)  # warm-up: oneDNN picks and caches its kernel
            seconds = []
            for _ in range(repeats):
                start = time.perf_counter()
                F.conv2d(x, w, padding=1)
                seconds.append(time.perf_counter() - start)
            gflops = 2 * c_in * c_out * 9 * side * side / statistics.median(seconds) / 1e9
            if gflops > best["gflops"]:
                best = {"gflops": round(gflops, 1), "shape": [c_in, c_out, side],
                        "channels_last": layout is torch.channels_last}
    return best


def counted_gflop(work: Callable[[], Any]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        work()
    return counter.get_total_flops() / 1e9


def works(size: dict[str, int]) -> dict[str, Callable[[], Any]]:
    """One unit of each benchmarked work, built on ``plain.py``'s networks with random weights (FLOPs
    do not depend on the weights): a Gatys L-BFGS evaluation, a whole AdaIN call, a Johnson forward."""
    import torch

    import plain

    generator = torch.Generator().manual_seed(0)

    def random_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: torch.randn(v.shape, generator=generator) * 0.01 for k, v in module.state_dict().items()}

    vgg_state = random_state(_full_vgg())
    content = torch.rand(1, 3, size["gatys"], size["gatys"])
    gatys = plain.PlainGatys(vgg_state, content, content.clone())

    def gatys_evaluation() -> None:
        image = gatys.image.detach().clone().requires_grad_(True)
        gatys.loss(image).backward()

    encoder = plain.plain_vgg(vgg_state, plain.vgg_layer_index("relu4_1") + 1)
    decoder = plain.plain_decoder(random_state(_decoder_shape()))
    adain_content = torch.rand(1, 3, size["adain"], size["adain"])
    adain_style = torch.rand(1, 3, 512, 404)  # starry_night.jpg at style size 512

    net = plain.PlainTransformerNet()
    net.requires_grad_(False).eval()
    johnson_image = torch.rand(1, 3, size["johnson"], size["johnson"])
    return {"gatys": gatys_evaluation,
            "adain": lambda: plain.plain_adain(encoder, decoder, adain_content, adain_style),
            "johnson": lambda: plain.plain_johnson(net, johnson_image)}


def _full_vgg():
    import torch

    import plain

    layers, channels = [], 3
    for entry in plain.VGG16:
        if entry == "M":
            layers.append(torch.nn.MaxPool2d(2))
        else:
            layers += [torch.nn.Conv2d(channels, entry, 3, padding=1), torch.nn.ReLU()]
            channels = entry
    return torch.nn.Sequential(*layers)


def _decoder_shape():
    import torch

    plan, layers, channels = [256, "U", 256, 256, 128, "U", 128, 64, "U", 64, 3], [], 512
    for entry in plan:
        if entry == "U":
            layers.append(torch.nn.Upsample(scale_factor=2))
            continue
        layers += [torch.nn.ReflectionPad2d(1), torch.nn.Conv2d(channels, entry, 3), torch.nn.ReLU()]
        channels = entry
    return torch.nn.Sequential(*layers[:-1])


def measured_seconds(paths: list[Path]) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {side: {"seconds", "size"}}}`` from ``versus_plain.py`` documents."""
    found: dict[str, dict[str, dict[str, float]]] = {}
    for path in paths:
        for result in json.loads(path.read_text())["results"]:
            for side, summary in result["summary"].items():
                found.setdefault(result["method"], {})[side] = {"seconds": summary["seconds"], "size": result["size"],
                                                                "precision": summary.get("precision")}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--versus-plain", type=Path, nargs="*", default=[],
                        help="versus_plain.py result documents whose seconds to compare with the floor")
    args = parser.parse_args()
    setup_environment()
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).parent))
    measured = measured_seconds(args.versus_plain)
    sizes = {"gatys": 512, "adain": 512, "johnson": 1024}
    for method, sides in measured.items():
        sizes[method] = int(next(iter(sides.values()))["size"])
    peak = {name: conv_throughput(name) for name in ("float32", "bfloat16")}
    report: dict[str, Any] = {**header(), "threads": args.threads, "conv_peak": peak, "works": {}}
    for method, work in works(sizes).items():
        gflop = counted_gflop(work)
        entry: dict[str, Any] = {"size": sizes[method], "gflop": round(gflop, 1),
                                 "floor_seconds": {p: round(gflop / peak[p]["gflops"], 3) for p in peak}}
        sides = measured.get(method, {})
        for side, figures in sides.items():
            precision = "bfloat16" if figures["precision"] == "bfloat16" else "float32"
            entry.setdefault("measured", {})[side] = {
                "seconds": round(figures["seconds"], 3), "precision": precision,
                "share_of_peak": round(entry["floor_seconds"][precision] / figures["seconds"], 2)}
        if "plain" in sides:
            floor = entry["floor_seconds"]["float32"]
            entry["largest_possible_fp32_ratio"] = round(sides["plain"]["seconds"] / floor, 2)
        report["works"][method] = entry
    print_json(report)


if __name__ == "__main__":
    main()
