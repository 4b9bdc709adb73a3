"""How good a StyleGAN generator is, by the quality bar of its issue: ``plugin_host stylegan-eval``.

Per class, ``--images`` generated pictures (default 1000; random noise, no truncation) against all of that
class's training pictures, as the trainer saw them: KID on the default encoder's pooled features
(:mod:`.evaluate`), and beside it the baseline, the KID of the training photos (the ``--baseline`` class) to the
same collection. The bar: every painter's class well below the photos' distance to its collection (by more than
the KID's own spread over subsets, so the margin is not the measurement's noise), and no periodic artefacts
(``peak`` ≤ 3.5 on at least 90 % of 100 pictures a class). Also reported: each generated picture's distance
to its nearest training picture (memorisation check: 1 = as far apart as two training pictures) and the spread
of the generated pictures (mode-collapse check: 1 = as varied as the training pictures).
Nothing here imports torch until the command runs.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

#: peak ≤ PEAK_MAX on at least this share of the generated pictures; every painter's KID plus its spread over
#: subsets below the baseline's (see :func:`well_below`).
BAR = {"peak_ok_share": 0.9}
PEAK_MAX = 3.5
PEAK_PICTURES = 100
REAL_MAX = 2000  # training pictures a class, at most
BASELINE = "photo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("generator", nargs="?", default=None, help="an installed generator (or give --checkpoint)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a generator file, e.g. a training snapshot")
    parser.add_argument("--data", required=True, help="the training pictures, as given to `plugin_host train "
                        "stylegan`: NAME=DIR,NAME=DIR,… one per class of the generator (DIR for one without)")
    parser.add_argument("--baseline", default=BASELINE, help="the class whose training pictures are the distance "
                        "to beat (default: photo)")
    parser.add_argument("--images", type=int, default=1000, help="generated pictures a class (default 1000)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a summary")


def handle(args: argparse.Namespace) -> int:
    from plugin_host.sdk import ParameterError, Session

    if (args.generator is None) == (args.checkpoint is None):
        raise ParameterError("generator", "give an installed generator or --checkpoint FILE, not both or neither",
                             hint="e.g. `plugin_host stylegan-eval stylegan-paintings --data …`")
    if args.images < 10:
        raise ParameterError("images", f"{args.images} is too few for KID", hint="give --images 10 or more")
    folders = _class_folders(args.data)
    session = Session(device=args.device, seed=0)
    report = evaluate(session.context, args.generator or args.checkpoint, folders, args.baseline, args.images)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for name, found in report["classes"].items():
        baseline = f"   (photos {found['baseline_kid']:.3f})" if "baseline_kid" in found else ""
        print(f"{name:10} KID {found['kid']:.3f} ± {found['kid_std']:.3f}{baseline}   peak ok "
              f"{found['peak_ok_share']:.2f}   nearest real {found['nearest_real_median']:.2f} "
              f"(min {found['nearest_real_min']:.2f})   spread {found['spread']:.2f}")
    print("meets the bar" if report["meets_bar"] else "does not meet the bar")
    return 0


def _class_folders(data: str) -> dict[str, list[Path]]:
    """``--data`` read as the trainer reads it (one plain DIR: the class ``""``); every folder must exist."""
    from types import SimpleNamespace

    from plugin_host.sdk import ParameterError

    from .train import training_classes

    folders = dict(training_classes(SimpleNamespace(data=data.split(","), class_folders=False)))
    for folder in (f for group in folders.values() for f in group):
        if not folder.is_dir():
            raise ParameterError("data", f"no such folder: '{folder}'",
                                 hint="give NAME=DIR,NAME=DIR,… (or DIR) as to `plugin_host train stylegan`")
    return folders


def _generator(ctx: Any, source: str | Path):
    from plugin_host.sdk import ParameterError

    from .models import installed_generator_path, read_generator_file

    if isinstance(source, Path) and not source.is_file():
        raise ParameterError("checkpoint", f"no such file: '{source}'", hint="give a generator file")
    path = source if isinstance(source, Path) else installed_generator_path(ctx, source)
    return read_generator_file(path).to(ctx.device)


def evaluate(ctx: Any, source: str | Path, folders: dict[str, list[Path]], baseline: str = BASELINE,
             images: int = 1000) -> dict[str, Any]:
    """The quality figures of the generator ``source`` (an installed name or a file) against ``folders``."""
    import torch

    from plugin_host.sdk import DEFAULT_ENCODER, ParameterError

    from .evaluate import FEATURE_LAYERS, PooledFeatures, reference_pictures

    generator = _generator(ctx, source)
    classes = list(generator.config.classes) or [""]
    if sorted(folders) != sorted(classes):
        raise ParameterError("data", f"names the classes {sorted(folders)}, the generator has {sorted(classes)}",
                             hint="give one NAME=DIR for each of the generator's classes (a plain DIR for one without)")
    features = PooledFeatures(ctx.load_encoder(DEFAULT_ENCODER, FEATURE_LAYERS))
    ctx.progress.stage("stylegan-eval", total=2 * len(classes))
    with torch.no_grad():
        real = {}
        for name in classes:  # every training picture of the class
            pictures = reference_pictures(folders[name], generator.config.resolution, REAL_MAX)
            real[name] = torch.cat([features(batch) for batch in pictures.split(50)])
            ctx.progress.advance()
        found: dict[str, dict[str, float]] = {}
        for index, name in enumerate(classes):
            ctx.cancel.raise_if_cancelled()
            found[name or "all"] = _measure_class(generator, index if name else None, real[name], features, images)
            if name and name != baseline and baseline in real:
                found[name]["baseline_kid"] = round(_kid(real[name], real[baseline])[0], 4)
            ctx.progress.advance()
    meets = all(f["peak_ok_share"] >= BAR["peak_ok_share"] and well_below(f) for f in found.values())
    return {"generator": str(source), "images": images, "baseline": baseline if baseline in real else None,
            "classes": found, "meets_bar": meets,
            "bar": {**BAR, "kid": f"KID + its spread over subsets below the {baseline} pictures' KID to each "
                                  "collection"}}


def well_below(found: dict[str, float]) -> bool:
    """Whether a class's KID is below its baseline by more than the KID's standard deviation over subsets
    (true for a class without a baseline, the photos themselves)."""
    return found["kid"] + found["kid_std"] < found.get("baseline_kid", float("inf"))


def _kid(real: Any, fake: Any) -> tuple[float, float]:
    """KID between two sets of features, already computed (so torchmetrics is given an identity extractor)."""
    from torch import nn

    from .evaluate import kernel_distance

    return kernel_distance([real], [fake], nn.Identity())


def _measure_class(generator: Any, label: int | None, real: Any, features: Any, images: int) -> dict[str, float]:
    """KID, artefacts, nearest training picture and spread of ``images`` pictures of class ``label`` against
    ``real``."""
    import torch
    from torch import nn

    from plugin_host.sdk import periodic_peak

    from .evaluate import generated_pictures, nearest_real_distance, relative_spread

    fake, peaks = [], []
    for batch in generated_pictures(generator, images, label):
        fake.append(features(batch))
        peaks += [periodic_peak(p[None]) for p in batch[:max(0, PEAK_PICTURES - len(peaks))]]
    fake_features = torch.cat(fake)
    kid, kid_std = _kid(real, fake_features)
    nearest = nearest_real_distance([real], [fake_features], nn.Identity())
    spread = relative_spread([real], [fake_features], nn.Identity())
    return {"kid": round(kid, 4), "kid_std": round(kid_std, 4), "real_pictures": len(real),
            "peak_median": round(statistics.median(peaks), 3),
            "peak_ok_share": round(sum(p <= PEAK_MAX for p in peaks) / len(peaks), 3),
            "nearest_real_median": round(float(nearest.median()), 3),
            "nearest_real_min": round(float(nearest.min()), 3), "spread": round(spread, 3)}
