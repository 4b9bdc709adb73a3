"""Fixtures shared by the whole suite.

Tests never touch the user's cache or models: ``PLUGIN_HOST_CACHE`` and ``PLUGIN_HOST_MODELS`` point
at per-session temporary folders. Data beside the checkout (``../shared``, or ``$PLUGIN_HOST_SHARED``) is found by the
``shared_dir`` fixture, which fails (never skips) when it is missing.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SHARED_DEFAULT = REPO.parent / "shared"


def _shared_path() -> Path | None:
    env = os.environ.get("PLUGIN_HOST_SHARED")
    path = Path(env) if env else _SHARED_DEFAULT
    return path if path.is_dir() else None


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PLUGIN_HOST_CACHE", tempfile.mkdtemp(prefix="plugin_host-test-cache-"))
    os.environ.setdefault("PLUGIN_HOST_MODELS", tempfile.mkdtemp(prefix="plugin_host-test-models-"))
    shared = _shared_path()
    if shared is not None and "PLUGIN_HOST_WEIGHTS_PATH" not in os.environ:
        os.environ["PLUGIN_HOST_WEIGHTS_PATH"] = str(shared / "weights")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    shared = _shared_path()
    if shared is None:
        pytest.fail("the shared data folder is missing: set PLUGIN_HOST_SHARED to the folder holding "
                    "weights/, images/ and datasets/ (CI sets it in .ci/run)", pytrace=False)
    return shared


@pytest.fixture
def tiny_image():
    """A smooth 1×3×32×48 RGB image in 0..1 with some structure."""
    import torch

    y = torch.linspace(0, 1, 32).view(1, 1, 32, 1)
    x = torch.linspace(0, 1, 48).view(1, 1, 1, 48)
    return torch.cat([y.expand(1, 1, 32, 48), x.expand(1, 1, 32, 48), (x * y).expand(1, 1, 32, 48)], 1)


@pytest.fixture
def make_registry():
    """Build a fresh registry from fake entry points and/or plugin objects (nothing installed)."""
    from plugin_host.plugins import load_registry

    def make(*plugins, entry_points=(), disabled=()):
        extra = [(getattr(p, "__name__", type(p).__name__), p) for p in plugins]
        return load_registry(entry_points=list(entry_points), extra_plugins=extra, disabled=list(disabled))

    return make
