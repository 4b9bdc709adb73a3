"""plugin_host.optim: torch's L-BFGS without the import of torch's compiler."""
import subprocess
import sys

import torch

from plugin_host.optim import LBFGS


START = torch.tensor([-1.5, 2.0, 0.5], dtype=torch.float64)
SCALES = torch.tensor([1.0, 10.0, 0.1], dtype=torch.float64)


def bowl(x: torch.Tensor) -> torch.Tensor:
    """An ill-conditioned quadratic with its minimum at (1, 1, 1)."""
    return (SCALES * (x - 1) ** 2).sum()


def minimise(optimizer_class: type, steps: int = 30) -> torch.Tensor:
    x = START.clone().requires_grad_(True)
    optimizer = optimizer_class([x], lr=0.5, max_iter=1, history_size=5)  # as Gatys drives it

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = bowl(x)
        loss.backward()
        return loss

    for _ in range(steps):
        optimizer.step(closure)
    return x.detach()


def test_steps_exactly_like_torch_lbfgs() -> None:
    ours, theirs = minimise(LBFGS), minimise(torch.optim.LBFGS)
    assert torch.equal(ours, theirs)
    assert float(bowl(ours)) < 1e-3 * float(bowl(START))


def test_never_imports_the_compiler() -> None:
    code = ("import sys, torch\n"
            "from plugin_host.optim import LBFGS\n"
            "x = torch.zeros(3, requires_grad=True)\n"
            "opt = LBFGS([x], max_iter=1)\n"
            "def closure():\n"
            "    opt.zero_grad(); loss = (x - 1).square().sum(); loss.backward(); return loss\n"
            "for _ in range(3): opt.step(closure)\n"
            "assert torch.allclose(x, torch.ones(3)), x\n"
            "print('torch._dynamo' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
