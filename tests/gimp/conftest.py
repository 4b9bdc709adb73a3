"""The GIMP 3 rig (../shared/gimp3): opt-in locally with ``-m gimp``, a separate step in CI.

When the rig cannot start, these tests fail with the reason; they never skip.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def gimp_rig(shared_dir: Path) -> Path:
    """The folder holding run-in-gimp.sh, with the chroot built (setup-chroot.sh is idempotent)."""
    rig = shared_dir / "gimp3"
    if not (rig / "run-in-gimp.sh").is_file():
        pytest.fail(f"no GIMP rig at {rig}: the shared folder must hold gimp3/run-in-gimp.sh", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("the GIMP rig needs root (debootstrap, mount, chroot): run this step as root", pytrace=False)
    setup = subprocess.run([str(rig / "setup-chroot.sh")], capture_output=True, text=True, timeout=900)
    if setup.returncode != 0:
        pytest.fail(f"setup-chroot.sh failed ({setup.returncode}):\n{setup.stderr[-3000:]}", pytrace=False)
    return rig
