"""Resumable downloads into ``<dest>.part``, verified, then renamed into place.

``requests`` is imported only when an http(s) download starts, so importing this module is cheap.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from urllib.request import url2pathname

from ..errors import WeightsError

if TYPE_CHECKING:
    from ..progress import CancelToken, Progress

CHUNK = 1 << 16


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def manual_hint(url: str, file: str) -> str:
    return (f"download {url} by hand (browser, curl) and run `plugin_host weights import PATH`, "
            f"or put {file} in a folder named by PLUGIN_HOST_WEIGHTS_PATH")


def download(url: str, dest: Path, sha256: str | None = None, size: int | None = None,
             progress: Progress | None = None, cancel: CancelToken | None = None,
             timeout: float = 30, sha256_prefix: str | None = None) -> Path:
    """Fetch ``url`` (http, https or file) to ``dest``; resume a previous ``dest.part`` over http.

    Raises :class:`WeightsError` on network errors (the ``.part`` is kept for a later resume) and on
    a size or digest mismatch (the ``.part`` is deleted). A cancel leaves the ``.part`` too.
    """
    dest = Path(dest)
    part = part_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    scheme = urlsplit(url).scheme
    if scheme == "file":
        _copy_local(url, dest, part, progress, cancel)
    elif scheme in ("http", "https"):
        resumed = part.exists()
        _fetch_http(url, dest, part, size, progress, cancel, timeout)
        if resumed and not _part_ok(part, sha256 or sha256_prefix, size):
            part.unlink()  # a stale .part (e.g. from an older upstream file): start over once
            _fetch_http(url, dest, part, size, progress, cancel, timeout)
    else:
        raise WeightsError(f"cannot download {dest.name}: unsupported URL scheme in {url!r}",
                           hint=manual_hint(url, dest.name))
    _check_part(url, dest, part, sha256 or sha256_prefix, size)
    os.replace(part, dest)
    return dest


def _part_ok(part: Path, sha256: str | None, size: int | None) -> bool:
    if size is not None and part.stat().st_size != size:
        return False
    return sha256 is None or sha256_file(part).startswith(sha256)


def _check_part(url: str, dest: Path, part: Path, sha256: str | None, size: int | None) -> None:
    """``sha256`` may be a prefix of the digest (torchvision publishes only those)."""
    actual_size = part.stat().st_size
    problem = None
    if size is not None and actual_size != size:
        problem = f"size {actual_size} bytes, expected {size}"
    elif sha256 is not None:
        actual = sha256_file(part)
        if not actual.startswith(sha256):
            problem = f"sha256 {actual}, expected {sha256}" + ("…" if len(sha256) < 64 else "")
    if problem:
        part.unlink(missing_ok=True)
        raise WeightsError(f"downloaded {dest.name} from {url} is corrupt: {problem}",
                           hint="the partial file was deleted; fetch again, and if it fails again the "
                                "upstream file changed: " + manual_hint(url, dest.name))


def _copy_local(url: str, dest: Path, part: Path, progress: Progress | None,
                cancel: CancelToken | None) -> None:
    src = Path(url2pathname(urlsplit(url).path))
    if not src.is_file():
        raise WeightsError(f"cannot fetch {dest.name}: {src} does not exist", hint=manual_hint(url, dest.name))
    if progress is not None:
        progress.stage(f"download {dest.name}", total=src.stat().st_size)
    with open(src, "rb") as fin, open(part, "wb") as fout:
        while block := fin.read(CHUNK):
            if cancel is not None:
                cancel.raise_if_cancelled()
            fout.write(block)
            if progress is not None:
                progress.advance(len(block))


def _fetch_http(url: str, dest: Path, part: Path, size: int | None, progress: Progress | None,
                cancel: CancelToken | None, timeout: float) -> None:
    import requests

    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size:
        return  # a previous run got every byte; _check_part decides whether they are right
    try:
        for _attempt in range(2):
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            with requests.get(url, headers=headers, stream=True, timeout=timeout) as resp:
                if resp.status_code == 416:
                    total = _content_range_total(resp.headers.get("Content-Range", ""))
                    if total == offset:
                        return  # the .part is already complete
                    part.unlink(missing_ok=True)  # the .part is longer than the file: start over
                    offset = 0
                    continue
                resp.raise_for_status()
                if resp.status_code == 206:
                    if _content_range_start(resp.headers.get("Content-Range", "")) != offset:
                        part.unlink(missing_ok=True)  # not the range we asked for: start over
                        offset = 0
                        continue
                    mode = "ab"
                else:
                    mode, offset = "wb", 0  # 200: the server ignored our Range
                length = resp.headers.get("Content-Length")
                total = offset + int(length) if length and length.isdigit() else size
                _stream(resp, part, mode, offset, total, dest.name, progress, cancel)
                if total is not None and part.stat().st_size < total:
                    raise WeightsError(f"download of {dest.name} from {url} stopped early "
                                       f"({part.stat().st_size} of {total} bytes)",
                                       hint="fetch again to resume; or " + manual_hint(url, dest.name))
                return
    except requests.HTTPError as err:
        raise WeightsError(f"cannot download {dest.name} from {url}: HTTP {err.response.status_code}",
                           hint=manual_hint(url, dest.name)) from None
    except requests.RequestException as err:
        raise WeightsError(f"cannot download {dest.name} from {url}: {_reason(err, timeout)}",
                           hint="check the network and fetch again (a partial download resumes); or "
                                + manual_hint(url, dest.name)) from None
    raise WeightsError(f"cannot download {dest.name} from {url}: the server rejects every byte range",
                       hint=manual_hint(url, dest.name))


def _stream(resp, part: Path, mode: str, offset: int, total: int | None, file: str,
            progress: Progress | None, cancel: CancelToken | None) -> None:
    if progress is not None:
        progress.stage(f"download {file}", total=total)
        if offset:
            progress.advance(offset)
    with open(part, mode) as f:
        for chunk in resp.iter_content(chunk_size=CHUNK):
            if cancel is not None:
                cancel.raise_if_cancelled()
            f.write(chunk)
            if progress is not None:
                progress.advance(len(chunk))


def _content_range_start(value: str) -> int | None:
    match = re.match(r"bytes (\d+)-", value.strip())
    return int(match.group(1)) if match else None


def _content_range_total(value: str) -> int | None:
    match = re.search(r"/(\d+)\s*$", value)
    return int(match.group(1)) if match else None


def _reason(err: Exception, timeout: float) -> str:
    import requests

    if isinstance(err, requests.Timeout):
        return f"no answer within {timeout} s"
    text = str(err)
    if isinstance(err, requests.ConnectionError):
        errno = re.search(r"\[Errno -?\d+\][^'\")]*", text)  # urllib3 buries it in a long repr
        return f"connection failed ({errno.group(0).strip() if errno else type(err).__name__})"
    return (text.splitlines() or [type(err).__name__])[0][:300]
