from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from plugin_host.errors import Cancelled, InputImageError, PluginHostError, WeightsError
from plugin_host.imaging.io import load_image
from plugin_host.progress import CancelToken, Progress
from plugin_host.training import (CHECKPOINT_FORMAT, ImageFolder, JsonlLog, export_model, infinite_batches,
                                  init_distributed, load_checkpoint, restore, run_steps, save_checkpoint,
                                  save_grid, wrap_ddp)
from plugin_host.weights.checkpoint import load_state_dict


def write_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for i in range(5):
        write_image(root / ("sub" if i % 2 else "") / f"img{i}.png", 24 + 4 * i, 20 + 2 * i, seed=i)
    return root


def take(batches, n: int) -> list[torch.Tensor]:
    return [next(batches) for _ in range(n)]


class KeyDataset(Dataset):
    """Returns the index it is asked for, to check the order and sharding of the stream."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        return torch.tensor(key[0])


class TestImageFolder:
    def test_finds_files_recursively_sorted(self, tmp_path: Path) -> None:
        root = tmp_path / "data"
        for name in ("b.png", "a/c.jpg", "a/deep/d.webp", "e.BMP", "f.tif"):
            write_image(root / name, 8, 8)
        (root / "notes.txt").write_text("not an image")
        write_image(root / ".hidden" / "x.png", 8, 8)
        write_image(root / "._y.png", 8, 8)
        found = ImageFolder(root, crop=4).files
        assert [p.relative_to(root).as_posix() for p in found] == ["a/c.jpg", "a/deep/d.webp", "b.png", "e.BMP", "f.tif"]
        assert len(ImageFolder(root, crop=4, recursive=False)) == 3
        other = write_image(tmp_path / "more" / "z.png", 8, 8).parent
        assert len(ImageFolder([root, other], crop=4)) == 6

    def test_crop_shape_range_and_seeded_position(self, photos: Path) -> None:
        data = ImageFolder(photos, crop=16)
        crop = data[(3, 42)]
        assert crop.shape == (3, 16, 16) and crop.dtype == torch.float32
        assert 0 <= crop.min() and crop.max() <= 1
        assert torch.equal(crop, data[(3, 42)])
        assert data[0].shape == (3, 16, 16)  # plain index: global RNG

    def test_empty_or_missing_folder(self, tmp_path: Path) -> None:
        empty = tmp_path / "empty-folder"
        (empty / "sub").mkdir(parents=True)
        with pytest.raises(InputImageError, match="empty-folder"):
            ImageFolder(empty, crop=8)
        with pytest.raises(InputImageError, match="nowhere"):
            ImageFolder(tmp_path / "nowhere", crop=8)

    def test_small_image_is_upscaled(self, tmp_path: Path) -> None:
        write_image(tmp_path / "d" / "tiny.png", 10, 6)
        assert ImageFolder(tmp_path / "d", crop=16)[(0, 1)].shape == (3, 16, 16)

    def test_resize_short(self, tmp_path: Path) -> None:
        ramp = np.tile(np.linspace(0, 255, 80, dtype=np.uint8)[None, :, None], (40, 1, 3))
        (tmp_path / "d").mkdir()
        Image.fromarray(ramp).save(tmp_path / "d" / "ramp.png")
        # 80x40 with short side 16 becomes 32x16: a 16-wide crop spans half the ramp, not a fifth
        crop = ImageFolder(tmp_path / "d", crop=16, resize_short=16)[(0, 5)]
        assert crop.shape == (3, 16, 16) and crop.max() - crop.min() > 0.4

    def test_unreadable_file_is_skipped_with_a_warning(self, photos: Path) -> None:
        bad = photos / "broken.png"
        bad.write_bytes(b"not a png at all")
        data = ImageFolder(photos, crop=8)
        index = data.files.index(bad)
        with pytest.warns(UserWarning, match="broken.png"):
            item = data[(index, 0)]
        assert item.shape == (3, 8, 8) and data.skipped == {bad}
        assert torch.equal(data[(index, 0)], data[(index + 1, 0)])  # the next file stands in


class TestInfiniteBatches:
    def test_deterministic_with_a_seed(self, photos: Path) -> None:
        data = ImageFolder(photos, crop=8)
        first = take(infinite_batches(data, 2, seed=7), 4)
        again = take(infinite_batches(data, 2, seed=7), 4)
        other = take(infinite_batches(data, 2, seed=8), 4)
        assert first[0].shape == (2, 3, 8, 8)
        assert all(torch.equal(a, b) for a, b in zip(first, again))
        assert not all(torch.equal(a, b) for a, b in zip(first, other))

    def test_resume_yields_the_uninterrupted_batches(self, photos: Path) -> None:
        data = ImageFolder(photos, crop=8)
        full = take(infinite_batches(data, 2, seed=3), 8)  # 5 images: batches span epochs
        resumed = take(infinite_batches(data, 2, seed=3, start_step=5), 3)
        assert all(torch.equal(a, b) for a, b in zip(full[5:], resumed))

    def test_workers_do_not_change_the_batches(self, photos: Path) -> None:
        data = ImageFolder(photos, crop=8)
        plain = take(infinite_batches(data, 2, seed=1), 3)
        workers = take(infinite_batches(data, 2, seed=1, num_workers=2), 3)
        assert all(torch.equal(a, b) for a, b in zip(plain, workers))

    def test_ranks_get_disjoint_shards_covering_each_epoch(self) -> None:
        shards = [take(infinite_batches(KeyDataset(), 3, seed=0, rank=r, world_size=2), 4) for r in (0, 1)]
        for epoch in (0, 1):  # 12 samples, 3 per rank per step: 2 steps per epoch
            seen = [int(i) for shard in shards for batch in shard[2 * epoch:2 * epoch + 2] for i in batch]
            assert sorted(seen) == list(range(12))
        # the ranks split the stream a single process with the global batch would see
        single = take(infinite_batches(KeyDataset(), 6, seed=0), 4)
        assert all(torch.equal(torch.cat([shards[0][k], shards[1][k]]), single[k]) for k in range(4))


def _train(model: nn.Module, optimizer, scheduler, steps: int) -> None:
    for _ in range(steps):
        x = torch.randn(4, 3, device=model.weight.device)  # draws from the global RNG, which the checkpoint must restore
        loss = nn.functional.dropout(model(x), 0.5).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()


def _fresh(device: str = "cpu") -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    model = nn.Linear(3, 2).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    return model, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)


class TestCheckpoint:
    @pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs CUDA")])])
    def test_restore_continues_bit_identically(self, tmp_path: Path, device: str) -> None:
        torch.manual_seed(0)
        model, optimizer, scheduler = _fresh(device)
        _train(model, optimizer, scheduler, 3)
        path = save_checkpoint(tmp_path / "run" / "train.ckpt", models={"net": model}, optimizers={"adam": optimizer},
                               schedulers={"step": scheduler}, step=3, metadata={"crop": 256, "layers": ["a", "b"]})
        _train(model, optimizer, scheduler, 3)

        torch.manual_seed(123)
        model2, optimizer2, scheduler2 = _fresh(device)
        torch.randn(10, device=device)  # move the RNG on: restore must put it back
        checkpoint = load_checkpoint(path)
        assert restore(checkpoint, {"net": model2}, {"adam": optimizer2}, {"step": scheduler2}) == 3
        assert checkpoint["metadata"] == {"crop": 256, "layers": ["a", "b"]}
        _train(model2, optimizer2, scheduler2, 3)
        for a, b in zip(model.parameters(), model2.parameters()):
            assert torch.equal(a, b)
        assert scheduler.get_last_lr() == scheduler2.get_last_lr()

    def test_restore_reports_missing_and_mismatched_names(self, tmp_path: Path) -> None:
        model, optimizer, _ = _fresh()
        path = save_checkpoint(tmp_path / "c.ckpt", models={"net": model}, optimizers={"adam": optimizer}, step=1)
        with pytest.raises(WeightsError, match="no models named decoder"):
            restore(load_checkpoint(path), {"decoder": model})
        with pytest.raises(WeightsError, match="'net' does not fit"):
            restore(load_checkpoint(path), {"net": nn.Linear(5, 2)})

    def test_loading_is_weights_only(self, tmp_path: Path) -> None:
        torch.save({"format": CHECKPOINT_FORMAT, "step": 1, "code": Path("x")}, tmp_path / "evil.ckpt")
        with pytest.raises(WeightsError, match="evil.ckpt"):
            load_checkpoint(tmp_path / "evil.ckpt")
        torch.save({"weight": torch.zeros(2)}, tmp_path / "plain.pth")
        with pytest.raises(WeightsError, match="not a plugin_host training checkpoint"):
            load_checkpoint(tmp_path / "plain.pth")
        with pytest.raises(ValueError, match="metadata"):  # refused before writing, not after
            save_checkpoint(tmp_path / "bad.ckpt", models={}, optimizers={}, step=0, metadata={"when": object()})
        assert not (tmp_path / "bad.ckpt").exists()

    def test_interrupted_save_leaves_no_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        model, optimizer, _ = _fresh()
        save_checkpoint(tmp_path / "old.ckpt", models={"net": model}, optimizers={}, step=1)

        def crash(obj, fp) -> None:
            fp.write(b"half a checkpoint")
            raise KeyboardInterrupt

        monkeypatch.setattr(torch, "save", crash)
        for name in ("new.ckpt", "old.ckpt"):
            with pytest.raises(KeyboardInterrupt):
                save_checkpoint(tmp_path / name, models={"net": model}, optimizers={}, step=2)
        monkeypatch.undo()
        assert os.listdir(tmp_path) == ["old.ckpt"]
        assert load_checkpoint(tmp_path / "old.ckpt")["step"] == 1

    def test_export_model(self, tmp_path: Path) -> None:
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        path = export_model(tmp_path / "decoder.pth", model, {"method": "adain", "width": 1.0})
        payload = torch.load(path, weights_only=True)
        assert payload["metadata"] == {"method": "adain", "width": 1.0}
        state = payload["state_dict"]
        assert state["0.weight"].dtype == torch.float16 and state["1.num_batches_tracked"].dtype == torch.int64
        assert torch.equal(state["0.weight"], model[0].weight.detach().half())
        assert set(load_state_dict(path)) == set(model.state_dict())


def test_jsonl_log_truncates_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "train.log.jsonl"
    log = JsonlLog(path)
    for step in range(1, 7):
        log.write(step, loss=1.0 / step, lr=torch.tensor(0.5))
    with open(path, "a") as fp:
        fp.write('{"step": 7, "lo')  # torn by a crash
    assert [r["step"] for r in log.records()] == [1, 2, 3, 4, 5, 6]
    assert log.records()[0]["lr"] == 0.5 and "time" in log.records()[0]

    log = JsonlLog(path, resume_step=4)
    log.write(5, loss=0.1)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5]
    assert JsonlLog(path).records() == []


def test_save_grid(tmp_path: Path) -> None:
    rows = [torch.rand(2, 3, 8, 8) for _ in range(3)]
    path = save_grid(tmp_path / "previews" / "grid.png", rows)
    assert load_image(path).size == (2 * 8 + 3 * 2, 3 * 8 + 4 * 2)  # (W, H) with 2-pixel padding


class TestRunSteps:
    def test_runs_logs_and_saves(self, tmp_path: Path) -> None:
        calls, saves, progress = [], [], Progress()
        log = JsonlLog(tmp_path / "log.jsonl", resume_step=2)
        result = run_steps(7, 2, lambda i: calls.append(i) or {"loss": torch.tensor(float(i))}, progress=progress,
                           log=log, log_every=3, checkpoint_every=4, save_fn=saves.append)
        assert result == 7 and calls == [2, 3, 4, 5, 6]
        assert progress.step == 5 and saves == [4, 7]
        assert [(r["step"], r["loss"]) for r in log.records()] == [(3, 2.0), (6, 5.0), (7, 6.0)]
        log = JsonlLog(tmp_path / "log.jsonl")
        run_steps(3, 0, lambda i: {"loss": 0.0}, log=log, log_every=0, save_fn=saves.append)
        assert [r["step"] for r in log.records()] == [3] and saves[-1] == 3

    @pytest.mark.parametrize("cancel_at, expected_saves", [(4, [2, 4, 5]), (3, [2, 4])])
    def test_cancel_saves_then_raises(self, cancel_at: int, expected_saves: list[int]) -> None:
        token, saves, progress = CancelToken(), [], Progress()

        def step(i: int) -> dict[str, float]:
            if i == cancel_at:
                token.cancel()
            return {"loss": 1.0}

        with pytest.raises(Cancelled):
            run_steps(10, 0, step, progress=progress, cancel=token, checkpoint_every=2, save_fn=saves.append)
        assert saves == expected_saves  # the last save is where training resumes
        assert progress.step == cancel_at + 1


def test_init_distributed_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed()
    assert (info.rank, info.world_size, info.is_main, info.is_distributed) == (0, 1, True, False)
    model = nn.Linear(2, 2)
    assert wrap_ddp(model, info) is model
    assert init_distributed("mps").device == torch.device("mps")  # one process: any device
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(PluginHostError, match="WORLD_SIZE"):
        init_distributed()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(PluginHostError, match="CUDA or on the CPU"):
        init_distributed("mps")


def _ddp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    info = init_distributed("cpu")  # gloo on the CPU also where there are GPUs
    try:
        torch.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
        model = wrap_ddp(nn.Linear(4, 2), info)
        start = [p.detach().clone() for p in model.parameters()]
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        data = torch.Generator().manual_seed(rank)  # each rank its own data
        for _ in range(2):
            x = torch.randn(3, 4, generator=data)
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()
        torch.save({"start": start, "end": [p.detach() for p in model.parameters()], "main": info.is_main,
                    "backend": info.backend, "average": info.average({"loss": 1.0 + 2 * rank, "n": rank})},
                   Path(out) / f"rank{rank}.pt")
    finally:
        info.cleanup()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path: Path) -> None:
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["main"] for r in ranks] == [True, False] and ranks[0]["backend"] == "gloo"
    assert ranks[0]["average"] == ranks[1]["average"] == {"loss": 2.0, "n": 0.5}  # logged losses: every rank's
    for a, b in zip(ranks[0]["start"], ranks[1]["start"]):
        assert torch.equal(a, b)
    for a, b, s in zip(ranks[0]["end"], ranks[1]["end"], ranks[0]["start"]):
        assert torch.equal(a, b) and not torch.equal(a, s)
    # averaged gradients: the same as one process training on both ranks' data
    torch.manual_seed(100)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    gens = [torch.Generator().manual_seed(r) for r in (0, 1)]
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.cat([torch.randn(3, 4, generator=g) for g in gens])).pow(2).mean().backward()
        optimizer.step()
    for a, b in zip(model.parameters(), ranks[0]["end"]):
        torch.testing.assert_close(a.detach(), b)


@pytest.mark.parametrize("method,name", [("perceptual", "../escaped"), ("perceptual", "/tmp/abs"),
                                         ("perceptual-sr", "../escaped"), ("perceptual", "bad\x1b[31m")])
def test_train_refuses_a_model_name_that_leaves_the_models_folder(method: str, name: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from plugin_host.cli import main

    models = tmp_path / "deep" / "models"
    monkeypatch.setenv("PLUGIN_HOST_MODELS", str(models))
    photos = tmp_path / "photos"
    write_image(photos / "a.png", 40, 40)
    style = ["--style", str(write_image(tmp_path / "style.png", 40, 40))] if method == "perceptual" else []
    before = sorted(tmp_path.rglob("*"))
    code = main(["train", method, *style, "--content-dir", str(photos), "--name", name, "--iterations", "1",
                 "--crop", "32", "--batch-size", "1", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "name" in err and "models folder" in err, err
    assert "\x1b" not in err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, not even the models folder


# -- exact resume of a whole training loop, interrupted anywhere -------------------------------------

class _Toy(nn.Module):
    """A two-conv image net with dropout: its steps draw from torch's global RNG, as many trainers' do."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(nn.functional.dropout(torch.relu(self.a(x)), 0.3, training=True))


#: Where a cancel request may land: before a step's data, between backward and the optimiser step,
#: after the step, or while a periodic checkpoint is being written.
CANCEL_POINTS = ("before", "mid-step", "after", "saving")


def _toy_training(photos: Path, ckpt: Path, total: int, cancel_at: tuple[int, str] | None = None) -> bool:
    """Train the toy to ``total`` steps, resuming from ``ckpt`` as a trainer does; False if cancelled."""
    torch.manual_seed(0)
    model = _Toy()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = restore(load_checkpoint(ckpt), {"net": model}, {"adam": optimizer}) if ckpt.exists() else 0
    batches = infinite_batches(ImageFolder(photos, crop=16), 2, seed=5, start_step=start)
    token = CancelToken()

    def at(index: int, point: str) -> None:
        if cancel_at == (index, point):
            token.cancel()

    def step(index: int) -> dict[str, float]:
        at(index, "before")
        batch = next(batches)
        loss = (model(batch) - batch).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        at(index, "mid-step")
        optimizer.step()
        at(index, "after")
        return {"loss": float(loss.detach())}

    def save(done: int) -> None:
        at(done, "saving")
        save_checkpoint(ckpt, models={"net": model}, optimizers={"adam": optimizer}, step=done)

    try:
        run_steps(total, start, step, cancel=token, checkpoint_every=3, save_fn=save)
    except Cancelled:
        return False
    return True


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"]
    for key, value in a["models"]["net"].items():
        assert torch.equal(value, b["models"]["net"][key]), key
    for index, state in a["optimizers"]["adam"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optimizers"]["adam"]["state"][index][key]), (index, key)


@pytest.mark.parametrize("index, point", [(index, point) for point in CANCEL_POINTS if point != "saving"
                                           for index in (0, 2, 4, 7)] + [(3, "saving"), (6, "saving")])
def test_a_training_cancelled_anywhere_resumes_bit_identically(photos: Path, tmp_path: Path, index: int,
                                                                point: str) -> None:
    assert _toy_training(photos, tmp_path / "straight.ckpt", 9)
    assert not _toy_training(photos, tmp_path / "resumed.ckpt", 9, cancel_at=(index, point))
    assert _toy_training(photos, tmp_path / "resumed.ckpt", 9)
    _assert_same_state(load_checkpoint(tmp_path / "straight.ckpt"), load_checkpoint(tmp_path / "resumed.ckpt"))


def test_starting_the_data_stream_leaves_the_global_rng_alone(photos: Path) -> None:
    torch.manual_seed(0)
    state = torch.get_rng_state()
    next(infinite_batches(ImageFolder(photos, crop=8), 2, seed=1))
    assert torch.equal(state, torch.get_rng_state())  # a resumed run restores it just before


# -- the same through a real trainer: `train perceptual`, cancelled in process or by SIGINT -----------

#: A perceptual training that takes seconds: 32-pixel crops, half width, 8 steps, checkpoints every 3.
TINY_PERCEPTUAL = {"iterations": 8, "crop": 32, "batch_size": 1, "width": "half", "style_size": 32,
                   "checkpoint_every": 3, "log_every": 1, "preview_every": 0, "learning_rate": 1e-2}


@pytest.fixture
def perceptual_run(tmp_path: Path, default_encoder: Path):
    """(train in process, command line, final state) for a tiny perceptual training in ``tmp_path``."""
    from plugin_host.plugins import load_registry
    from plugin_host.runner import Session

    photos = tmp_path / "photos"
    for i in range(3):
        write_image(photos / f"{i}.png", 40 + 4 * i, 36, seed=i)
    style = write_image(tmp_path / "style.png", 40, 40, seed=9)
    registry = load_registry()
    method = registry.method("perceptual")

    def train(out: Path, progress: Progress | None = None, cancel: CancelToken | None = None) -> None:
        session = Session(registry=registry, device="cpu", seed=1)
        session.context.progress = progress or Progress()
        session.context.cancel = cancel or CancelToken()
        params = method.train_schema.validate({"style": style, "content_dir": photos, "out": out,
                                               **TINY_PERCEPTUAL}, models=registry.model_names())
        method.resolve_train()(params, session.context)

    def command(out: Path) -> list[str]:
        flags = [f"--{key.replace('_', '-')}={value}" for key, value in TINY_PERCEPTUAL.items()]
        return [sys.executable, "-m", "plugin_host", "train", "perceptual", "--device", "cpu", "--seed", "1",
                "--style", str(style), "--content-dir", str(photos), "--out", str(out), *flags, "--progress", "json"]

    def final(out: Path) -> dict:
        return load_checkpoint(out.with_name(out.name + ".ckpt"))

    return train, command, final


class _CancelAfter(Progress):
    """Asks the run to stop once ``step`` steps are done (the request lands while the next one starts)."""

    def __init__(self, token: CancelToken, step: int) -> None:
        super().__init__()
        self.token, self.at = token, step

    def _on_advance(self, n: int, info: dict) -> None:
        if self.step == self.at:
            self.token.cancel()


@pytest.mark.parametrize("cancel_after", [1, 3, 5])
def test_perceptual_training_cancelled_in_process_resumes_bit_identically(perceptual_run, tmp_path: Path,
                                                                           cancel_after: int) -> None:
    train, _, final = perceptual_run
    train(tmp_path / "straight.pth")
    token = CancelToken()
    with pytest.raises(Cancelled):
        train(tmp_path / "resumed.pth", _CancelAfter(token, cancel_after), token)
    assert final(tmp_path / "resumed.pth")["step"] == cancel_after
    train(tmp_path / "resumed.pth")
    _assert_same_state(final(tmp_path / "straight.pth"), final(tmp_path / "resumed.pth"))


def test_perceptual_training_stopped_by_sigint_resumes_bit_identically(perceptual_run, tmp_path: Path) -> None:
    """A real Ctrl-C to `plugin_host train`, sent as soon as the log shows a step done (so it lands in
    the next one), twice, then training to the end: the result is the uninterrupted run's."""
    import signal
    import subprocess
    import time

    train, command, final = perceptual_run
    train(tmp_path / "straight.pth")
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the same arithmetic as in here
    out, saved = tmp_path / "resumed.pth", 0
    log = out.with_name(out.name + ".log.jsonl")  # a line per step, unthrottled (progress events are)
    for _ in range(2):  # the second run starts where the first stopped
        target = saved + 2
        proc = subprocess.Popen(command(out), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        while proc.poll() is None and not (log.exists() and len(log.read_text().splitlines()) >= target):
            time.sleep(0.002)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130 and "cancelled" in err, err[-2000:]
        assert target <= final(out)["step"] < TINY_PERCEPTUAL["iterations"], "stopped too late to test"
        saved = final(out)["step"]
    train(out)  # the rest in this process: a third start-up would only cost time
    _assert_same_state(final(tmp_path / "straight.pth"), final(out))
