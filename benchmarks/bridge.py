"""GIMP bridge: what a call through the warm server costs on top of the method itself.

    .venv/bin/python benchmarks/bridge.py            # 1 MP, 5 warm repeats
    .venv/bin/python benchmarks/bridge.py --quick    # 256x256, 2 repeats

The server runs as GIMP would use it: a separate ``plugin_host serve`` process, reached with the
bridge's own client (``phb_client``) and raw RGBA buffers. Every result frame carries
``method_s``, the time the server spent inside ``Session.run``; the overhead of a call is its
round trip minus that. Methods: ``identity`` (a benchmark plugin that returns its input, so the
whole call is overhead) and ``adain`` with its default decoder when it is installed. Cold versus
warm (at ``--cold-size``, small so that loading shows): a fresh server started by the client plus
its first call, a one-shot ``serve --stdio`` call, and calls to the already warm server.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, header, print_json, setup_environment

from plugin_host.serve import wire as phb_wire  # noqa: E402  (gimp install copies it beside the bridge)

sys.path.insert(0, str(REPO / "gimp_bridge" / "plugin_host_bridge"))
sys.modules["phb_wire"] = phb_wire
import phb_client  # noqa: E402  (the bridge's own client, as GIMP runs it)

IDENTITY_PLUGIN = '''
from plugin_host import Method, hookimpl
from plugin_host.schema import ImageInput, Schema


def run(inputs, params, ctx):
    return inputs["content"]


@hookimpl
def register_methods(register):
    register(Method(name="identity", title="Identity", description="returns its input (benchmark)",
                    inputs=(ImageInput("content"),), schema=Schema(), run=run))
'''


def identity_plugin(folder: Path) -> Path:
    """A plugin visible through its dist-info on PYTHONPATH, like an installed package."""
    (folder / "phbench_identity.py").write_text(IDENTITY_PLUGIN)
    info = folder / "phbench_identity-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: phbench-identity\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text("[plugin_host]\nidentity = phbench_identity\n")
    return folder


def picture(width: int, height: int, dtype: str) -> dict:
    if dtype == "u8":
        row = bytes(v for x in range(width) for v in (x % 256, (x * 3) % 256, 128, 255))
        return phb_wire.raw_image(b"".join(row[x % 7 * 4:] + row[:x % 7 * 4] for x in range(height)),
                                  width, height, 4)
    import array

    row = array.array("f", [v for x in range(width) for v in ((x % 256) / 255, 0.5, 0.25, 1.0)]).tobytes()
    return phb_wire.raw_image(row * height, width, height, 4, "f32")


def timed_call(call) -> tuple[float, float]:
    started = time.perf_counter()
    layout, _ = call()
    return time.perf_counter() - started, layout["method_s"]


def measure(info: dict, body: bytes, repeats: int) -> dict:
    timed_call(lambda: phb_client.run_job(info, body))  # warm-up: loads models, fills caches
    calls = [timed_call(lambda: phb_client.run_job(info, body)) for _ in range(repeats)]
    round_trip = statistics.median(c[0] for c in calls)
    method = statistics.median(c[1] for c in calls)
    overheads = [c[0] - c[1] for c in calls]
    return {"round_trip_s": round(round_trip, 4), "method_s": round(method, 4),
            "overhead_ms": round(statistics.median(overheads) * 1000, 1),
            "overhead_ms_max": round(max(overheads) * 1000, 1), "request_mib": round(len(body) / 2**20, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="square side in pixels (default 1024: 1 MP)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold-size", type=int, default=256,
                        help="side for the cold/warm comparison, small so that loading dominates (default 256)")
    parser.add_argument("--quick", action="store_true", help="256 px, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.size, args.repeats = 256, 2
    setup_environment()
    doc = header()
    command = [sys.executable, "-m", "plugin_host"]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PYTHONPATH"] = str(identity_plugin(Path(tmp)))  # for the server processes
        os.environ.setdefault("PLUGIN_HOST_CACHE", str(Path(tmp) / "cache"))
        server_file = str(Path(tmp) / "server.json")
        size = args.size
        content = {"u8": picture(size, size, "u8"), "f32": picture(size, size, "f32")}
        style = [picture(256, 256, "u8")]
        adain = phb_wire.encode_job("adain", {"max_size": 0}, {"content": content["u8"], "style": style})
        small = phb_wire.encode_job("adain", {"max_size": 0}, {
            "content": picture(args.cold_size, args.cold_size, "u8"), "style": style})

        print(f"bridge: cold start of a server and its first adain call at {args.cold_size} px", file=sys.stderr)
        started = time.perf_counter()
        info = phb_client.connect(server_file, command, wait_s=300)
        server_up = time.perf_counter() - started
        try:
            cold_call, cold_method = timed_call(lambda: phb_client.run_job(info, small))
            warm = [timed_call(lambda: phb_client.run_job(info, small)) for _ in range(args.repeats)]
            cold = {"server_start_s": round(server_up, 3), "first_call_s": round(cold_call, 3),
                    "first_call_method_s": round(cold_method, 3), "total_s": round(server_up + cold_call, 3)}
            results = {}
            for dtype in ("u8", "f32"):
                print(f"bridge: identity {dtype}", file=sys.stderr)
                body = phb_wire.encode_job("identity", {}, {"content": content[dtype]})
                results[f"identity_{dtype}"] = measure(info, body, args.repeats)
            print("bridge: adain", file=sys.stderr)
            results["adain_u8"] = measure(info, adain, max(1, args.repeats // 2))
        finally:
            phb_client.request(info, "POST", "/v1/shutdown")

        print("bridge: one-shot serve --stdio", file=sys.stderr)
        oneshot_call, oneshot_method = timed_call(lambda: phb_client.run_once(command, small))

    doc.update({
        "size": f"{size}x{size}", "megapixels": round(size * size / 1e6, 3), "repeats": args.repeats,
        "warm": results,
        "cold_vs_warm": {"size": f"{args.cold_size}x{args.cold_size}", "method": "adain", "cold_server": cold,
                         "one_shot_stdio_s": round(oneshot_call, 3), "one_shot_method_s": round(oneshot_method, 3),
                         "warm_call_s": round(statistics.median(c[0] for c in warm), 3),
                         "warm_method_s": round(statistics.median(c[1] for c in warm), 3)},
        "target": {"overhead_ms_at_1mp": 150, "met": max(r["overhead_ms"] for r in results.values()) <= 150},
    })
    print_json(doc)


if __name__ == "__main__":
    main()
