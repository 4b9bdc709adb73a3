"""The server file: where a running server listens and the token clients must present.

It lives in the user's runtime directory (else cache directory), is readable by the user only
(0600, folder 0700), and is written atomically, so a client never reads half of it.
"""
from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

ENV_SERVER_FILE = "PLUGIN_HOST_SERVER_FILE"


def default_server_file() -> Path:
    """``$PLUGIN_HOST_SERVER_FILE``, else ``<user runtime dir>/plugin_host/server.json``
    (the user cache folder where Linux has no ``XDG_RUNTIME_DIR``)."""
    import platformdirs

    if os.environ.get(ENV_SERVER_FILE):
        return Path(os.environ[ENV_SERVER_FILE])
    if sys.platform.startswith("linux") and not os.environ.get("XDG_RUNTIME_DIR"):
        # platformdirs would fall back to a shared /tmp path; the cache folder is the user's own
        return Path(platformdirs.user_cache_dir("plugin_host")) / "server.json"
    return Path(platformdirs.user_runtime_dir("plugin_host")) / "server.json"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_server_file(path: Path, info: dict[str, Any]) -> None:
    """Write ``info`` as JSON, user-only, atomically (temp file in the same folder + rename)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the file itself is 0600 regardless
    fd, tmp = tempfile.mkstemp(prefix=".server-", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # POSIX; on Windows the user's profile folder is already private
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(info, out)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_server_file(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def remove_server_file(path: Path, pid: int) -> None:
    """Remove the file only if it still names this process (a newer server may have replaced it)."""
    info = read_server_file(path)
    if info and info.get("pid") == pid:
        path.unlink(missing_ok=True)
