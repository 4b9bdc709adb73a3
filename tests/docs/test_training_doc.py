"""The trainer in docs/plugins/training.md runs as printed, and resumes."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import torch
from PIL import Image
from torch import nn

from plugin_host.context import RunContext
from plugin_host.training import load_checkpoint

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins" / "training.md"


class MyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_the_documented_trainer_trains_and_resumes(tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S).group(1)
    namespace = {"MyNet": MyNet}
    exec(compile(code, str(DOC), "exec"), namespace)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (24, 20), (40 * i, 100, 200)).save(photos / f"{i}.png")

    def train(iterations: int, out: Path) -> dict:
        params = SimpleNamespace(out=out, content_dir=photos, crop=16, batch_size=2, learning_rate=1e-2,
                                 iterations=iterations, checkpoint_every=2, log_every=1, preview_every=2, resume=True)
        ctx = RunContext(device=torch.device("cpu"), weights=None, registry=None, seed=0)  # type: ignore[arg-type]
        namespace["train"](params, ctx)
        return load_checkpoint(out.with_name(out.name + ".ckpt"))

    straight = train(4, tmp_path / "a" / "net.pth")
    train(2, tmp_path / "b" / "net.pth")
    resumed = train(4, tmp_path / "b" / "net.pth")
    for key, value in straight["models"]["net"].items():
        assert torch.equal(value, resumed["models"]["net"][key]), key
    assert torch.load(tmp_path / "a" / "net.pth", weights_only=True)["metadata"] == {"steps": 4}
    assert (tmp_path / "a" / "net.pth.json").exists() and (tmp_path / "a" / "net-preview-0000004.png").exists()
