"""How good the shipped models are: ``plugin_host sr-eval`` (PSNR and SSIM of bicubic upscaling and
super-resolution models), and the style models' Gram distance shared by their test and contact sheet.

SR follows the protocol of the literature (SRCNN, Johnson et al. Table 1): HR images cropped to a multiple
of the scale; LR = bicubic downsampling (antialiased, as MATLAB's ``imresize``), rounded to 8 bit;
outputs rounded to 8 bit; metrics on the Y channel of ITU-R BT.601 studio-range YCbCr (16–235),
ignoring ``scale`` pixels at each border; PSNR with peak 255, SSIM with an 11×11 Gaussian window
(σ 1.5) over the valid region (kornia.metrics).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hr", type=Path, help="folder of high-resolution images (or one image)")
    parser.add_argument("--scale", type=int, choices=(4, 8), default=4, help="upscaling factor (default 4)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME",
                        help="a perceptual-sr model to evaluate (repeatable); bicubic is always included")
    parser.add_argument("--blur-sigma", type=float, default=0.0,
                        help="Gaussian blur before downsampling; 0 (default) is the standard benchmark LR, "
                             "1.0 the training degradation")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="network arithmetic, as for `run` (default auto)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def find_painting(shared: Path, name: str) -> Path | None:
    """The painting a style model learnt, by its card's ``style_name``: a shared test style
    (``images/style``) or one of the training paintings (``datasets/style/*``); None when neither has it."""
    found = sorted((shared / "images" / "style").glob(f"{name}.*"))
    found += sorted((shared / "datasets" / "style").glob(f"*/{name}.*"))
    return found[0] if found else None


def gram_distance(encoder, layers, image, style) -> float:
    """Sum over ``layers`` of the mean squared difference of Gram matrices of ``image`` and ``style``
    (the style loss of Johnson et al.). Below the content's distance, a result took on the style."""
    import torch

    from plugin_host.sdk import gram_matrix

    with torch.no_grad():
        a, b = encoder(image), encoder(style)
    return sum(float((gram_matrix(a[k]) - gram_matrix(b[k])).square().mean()) for k in layers)


def y_channel(rgb):
    """Studio-range luma (16–235) of RGB in 0..255, as MATLAB's ``rgb2ycbcr``."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def y_metrics(output, reference, border: int) -> tuple[float, float]:
    """(PSNR dB, SSIM) on the Y channel of two (1, 3, H, W) images in 0..1, rounded to 8 bit first."""
    import kornia

    def prepare(image):
        y = y_channel((image.clamp(0, 1) * 255.0).round().double())
        return y[..., border:y.shape[-2] - border, border:y.shape[-1] - border] if border else y

    a, b = prepare(output), prepare(reference)
    psnr = float(kornia.metrics.psnr(a, b, max_val=255.0))
    ssim = float(kornia.metrics.ssim(a, b, window_size=11, max_val=255.0, padding="valid").mean())
    return psnr, ssim


def benchmark_pair(path: Path, scale: int, blur_sigma: float = 0.0):
    """(HR, LR) of one benchmark image: HR cropped to a multiple of ``scale``, LR degraded and rounded to 8 bit."""
    from plugin_host.sdk import load_image

    from .degrade import degrade

    hr = load_image(path).rgb
    hr = hr[..., :hr.shape[-2] - hr.shape[-2] % scale, :hr.shape[-1] - hr.shape[-1] % scale]
    return hr, (degrade(hr, scale, blur_sigma) * 255).round() / 255


def evaluate(hr_files: list[Path], scale: int, models: list[str], session, blur_sigma: float = 0.0) -> list[dict]:
    """Mean PSNR/SSIM per row (``bicubic`` first, then each model), with per-image values."""
    import torch.nn.functional as F

    from .models import load_model
    from .run import forward

    ctx = session.context
    nets = {name: load_model(ctx, name, "sr")[0] for name in models}
    rows = {name: [] for name in ("bicubic", *models)}
    for path in hr_files:
        hr, low = benchmark_pair(path, scale, blur_sigma)
        outputs = {"bicubic": F.interpolate(low, scale_factor=scale, mode="bicubic", align_corners=False)}
        for name, net in nets.items():
            outputs[name] = forward(net, low.to(ctx.device, ctx.dtype), 0, ctx).float().cpu()
        for name, out in outputs.items():
            psnr, ssim = y_metrics(out, hr, border=scale)
            rows[name].append({"image": Path(path).name, "psnr": psnr, "ssim": ssim})
    return [{"method": name, "psnr": sum(r["psnr"] for r in per) / len(per),
             "ssim": sum(r["ssim"] for r in per) / len(per), "images": per} for name, per in rows.items()]


def handle(args: argparse.Namespace) -> int:
    from plugin_host.sdk import Session, image_files

    hr = args.hr
    files = image_files(hr) if hr.is_dir() else [hr]
    if not files or not files[0].exists():
        print(f"error: no images in {hr}\n  hint: give a folder of HR images such as Set5", file=sys.stderr)
        return 2
    session = Session(device=args.device, precision=args.precision)
    results = evaluate(files, args.scale, args.model, session, args.blur_sigma)
    if args.json:
        precision = str(session.context.compute_dtype).removeprefix("torch.")
        print(json.dumps({"scale": args.scale, "blur_sigma": args.blur_sigma, "precision": precision,
                          "images": len(files),
                          "results": results}, indent=1))
    else:
        print(f"×{args.scale} on {len(files)} images (Y channel, border {args.scale} px)")
        for row in results:
            print(f"  {row['method']:<32} PSNR {row['psnr']:6.2f} dB   SSIM {row['ssim']:.4f}")
    return 0
