"""The training scaffold (plugin_host.training.TrainingRun) with a GAN-shaped toy trainer: two networks,
two optimisers, a scheduler and an EMA copy, noise drawn from torch's RNG every step."""
from __future__ import annotations

import copy
import io
import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from plugin_host.context import RunContext
from plugin_host.errors import Cancelled
from plugin_host.progress import CancelToken, JsonProgress, Progress
from plugin_host.training import ImageFolder, JsonlLog, TrainingRun, load_checkpoint, update_ema
from test_training import write_image


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    for i in range(4):
        write_image(tmp_path / "photos" / f"{i}.png", 20 + 2 * i, 18, seed=i)
    return tmp_path / "photos"


class Previews(Progress):
    def __init__(self) -> None:
        super().__init__()
        self.previews: list[str] = []

    def preview(self, path: str) -> None:
        self.previews.append(path)


def context(seed: int = 3, cancel: CancelToken | None = None) -> RunContext:
    return RunContext(device=torch.device("cpu"), weights=None, registry=None, seed=seed,  # type: ignore[arg-type]
                      progress=Previews(), cancel=cancel or CancelToken())


def toy_gan(ctx: RunContext, photos: Path, out: Path, iterations: int = 8, cancel_after: int | None = None) -> Path:
    """Train a tiny generator/discriminator pair with an EMA generator; cancel once ``cancel_after`` steps ran."""
    params = SimpleNamespace(iterations=iterations, checkpoint_every=3, log_every=1, preview_every=4, resume=True)
    with TrainingRun(ctx, out, params, label="train toy-gan", metadata={"kind": "toy"}) as run:
        generator = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
        discriminator = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.LazyLinear(1))
        discriminator(torch.zeros(1, 3, 12, 12))  # materialise the lazy layer before the optimiser sees it
        ema = copy.deepcopy(generator).requires_grad_(False)
        g_opt = torch.optim.Adam(generator.parameters(), lr=1e-2, betas=(0.0, 0.99))
        d_opt = torch.optim.Adam(discriminator.parameters(), lr=1e-2, betas=(0.0, 0.99))
        decay = torch.optim.lr_scheduler.StepLR(g_opt, step_size=2, gamma=0.5)
        run.track(models={"generator": generator, "discriminator": discriminator, "ema": ema},
                  optimizers={"g": g_opt, "d": d_opt}, schedulers={"decay": decay})
        reals = run.batches(ImageFolder(photos, crop=12), batch_size=2)
        shown: list[torch.Tensor] = []

        def step(index: int) -> dict[str, float]:
            real = next(reals)
            fake = generator(real + 0.1 * torch.randn_like(real))  # noise from the global RNG
            d_loss = nn.functional.softplus(discriminator(fake.detach())).mean() + \
                nn.functional.softplus(-discriminator(real)).mean()
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            g_loss = nn.functional.softplus(-discriminator(fake)).mean()
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            decay.step()
            update_ema(ema, generator, 0.9)
            shown[:] = [real, fake.detach().clamp(0, 1)]
            if cancel_after is not None and index + 1 == cancel_after:
                ctx.cancel.cancel()
            return {"d": float(d_loss.detach()), "g": float(g_loss.detach())}

        return run.train(step, export=lambda steps: torch.save({"steps": steps}, out), preview=lambda i: shown)


def same_checkpoints(a: Path, b: Path) -> None:
    first, second = load_checkpoint(a), load_checkpoint(b)
    assert first["step"] == second["step"]
    for name, state in first["models"].items():
        for key, value in state.items():
            assert torch.equal(value, second["models"][name][key]), (name, key)
    for name, state in first["optimizers"].items():
        for index, values in state["state"].items():
            for key, value in values.items():
                assert torch.equal(value, second["optimizers"][name]["state"][index][key]), (name, key)
    assert first["schedulers"] == second["schedulers"]


@pytest.mark.parametrize("cancel_after", [1, 4, 5])
def test_two_networks_with_an_ema_resume_bit_identically(photos: Path, tmp_path: Path, cancel_after: int) -> None:
    straight = tmp_path / "straight" / "gan.pth"
    toy_gan(context(), photos, straight)
    resumed = tmp_path / "resumed" / "gan.pth"
    with pytest.raises(Cancelled):
        toy_gan(context(), photos, resumed, cancel_after=cancel_after)
    assert load_checkpoint(resumed.with_name("gan.pth.ckpt"))["step"] == cancel_after
    toy_gan(context(), photos, resumed)
    same_checkpoints(straight.with_name("gan.pth.ckpt"), resumed.with_name("gan.pth.ckpt"))
    assert [r["step"] for r in JsonlLog(resumed.with_name("gan.pth.log.jsonl"), 8).records()] == list(range(1, 9))


def test_the_run_leaves_the_callers_random_state_and_context_alone(photos: Path, tmp_path: Path) -> None:
    torch.manual_seed(123)
    random.seed(5)
    before = torch.get_rng_state(), random.getstate()
    ctx = context()
    device, seed = ctx.device, ctx.seed
    toy_gan(ctx, photos, tmp_path / "gan.pth", iterations=3)
    assert torch.equal(before[0], torch.get_rng_state()) and before[1] == random.getstate()
    assert (ctx.device, ctx.seed) == (device, seed)


def test_the_seed_decides_the_run(photos: Path, tmp_path: Path) -> None:
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        toy_gan(context(seed), photos, tmp_path / name / "gan.pth", iterations=2)
    same_checkpoints(tmp_path / "a" / "gan.pth.ckpt", tmp_path / "b" / "gan.pth.ckpt")
    with pytest.raises(AssertionError):
        same_checkpoints(tmp_path / "a" / "gan.pth.ckpt", tmp_path / "c" / "gan.pth.ckpt")


def test_exports_checkpoints_and_previews_land_beside_the_output(photos: Path, tmp_path: Path) -> None:
    ctx = context()
    out = toy_gan(ctx, photos, tmp_path / "gan.pth")
    assert torch.load(out, weights_only=True) == {"steps": 8}
    assert load_checkpoint(tmp_path / "gan.pth.ckpt")["metadata"] == {"kind": "toy"}
    grids = sorted(p.name for p in tmp_path.glob("gan-preview-*.png"))
    assert grids == ["gan-preview-0000004.png", "gan-preview-0000008.png"]
    assert ctx.progress.previews == [str(tmp_path / g) for g in grids]


def test_a_stage_begun_inside_a_step_does_not_take_over_the_training_count(tmp_path: Path) -> None:
    """A snapshot that first downloads an encoder shows its stage; the training bar then goes on from there."""
    stream = io.StringIO()
    ctx = context()
    ctx.progress = JsonProgress(stream, min_interval=0)
    params = SimpleNamespace(iterations=5, checkpoint_every=0, log_every=1, preview_every=0, resume=True)
    with TrainingRun(ctx, tmp_path / "toy.pth", params, label="train toy") as run:
        run.track(models={"net": nn.Linear(1, 1)})

        def step(index: int) -> dict[str, float]:
            if index == 2:
                ctx.progress.stage("download encoder", total=1)
                ctx.progress.advance()
            return {"loss": float(index)}

        run.train(step, export=lambda steps: None)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    shown = [(e["event"], e["stage"], e["step"]) for e in events if e["event"] in ("stage", "progress")]
    assert shown == [("stage", "train toy", 0), ("progress", "train toy", 1), ("progress", "train toy", 2),
                     ("stage", "download encoder", 0), ("progress", "download encoder", 1),
                     ("stage", "train toy", 2), ("progress", "train toy", 3), ("progress", "train toy", 4),
                     ("progress", "train toy", 5)]


def test_update_ema_moves_floats_toward_the_model_and_copies_the_rest() -> None:
    model, average = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    with torch.no_grad():
        model.weight.fill_(1.0)
        average.weight.fill_(0.0)
    model.num_batches_tracked.fill_(7)
    update_ema(average, model, decay=0.75)
    assert torch.allclose(average.weight, torch.full((2,), 0.25))
    assert int(average.num_batches_tracked) == 7
