"""Resumable, verified downloads against a local HTTP server."""
from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from plugin_host.errors import Cancelled, WeightsError
from plugin_host.progress import CancelToken, Progress
from plugin_host.weights import UrlSource, WeightsEntry, WeightsStore
from plugin_host.weights import store as store_module
from plugin_host.weights.download import download

PAYLOAD = os.urandom(300_000)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class ServerState:
    url: str
    payload: bytes = PAYLOAD
    mode: str = "range"  # "range" | "ignore-range" | "die" | "404"
    die_after: int = 100_000
    ranges: list[str | None] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        requested = self.headers.get("Range")
        state.ranges.append(requested)
        if state.mode == "404" or self.path != "/file.bin":
            self.send_error(404)
            return
        data, start = state.payload, 0
        if requested and state.mode != "ignore-range":
            start = int(re.fullmatch(r"bytes=(\d+)-", requested).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if state.mode == "die":
            self.wfile.write(body[:state.die_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = ServerState(url=f"http://127.0.0.1:{httpd.server_address[1]}/file.bin")  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd.state  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()


class CancelAfterFirstChunk(Progress):
    def __init__(self, token: CancelToken) -> None:
        super().__init__()
        self.token = token

    def _on_advance(self, n: int, info: dict) -> None:
        self.token.cancel()


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_download_verifies_and_reports_progress(server: ServerState, tmp_path: Path) -> None:
    progress = Progress()
    dest = download(server.url, tmp_path / "w.pth", sha256=DIGEST, size=len(PAYLOAD), progress=progress)
    assert dest.read_bytes() == PAYLOAD
    assert files_in(tmp_path) == ["w.pth"]
    assert progress.stage_name == "download w.pth"
    assert progress.step == progress.total == len(PAYLOAD)


def test_interrupted_download_keeps_part_and_resumes(server: ServerState, tmp_path: Path) -> None:
    dest = tmp_path / "w.pth"
    server.mode = "die"
    with pytest.raises(WeightsError, match="w.pth"):
        download(server.url, dest, sha256=DIGEST, size=len(PAYLOAD))
    assert files_in(tmp_path) == ["w.pth.part"]
    partial = (tmp_path / "w.pth.part").stat().st_size
    assert 0 < partial <= server.die_after  # urllib3 may drop the last short read

    server.mode = "range"
    progress = Progress()
    download(server.url, dest, sha256=DIGEST, size=len(PAYLOAD), progress=progress)
    assert server.ranges[-1] == f"bytes={partial}-"
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == DIGEST
    assert files_in(tmp_path) == ["w.pth"]
    assert progress.step == progress.total == len(PAYLOAD)


def test_server_ignoring_range_restarts(server: ServerState, tmp_path: Path) -> None:
    (tmp_path / "w.pth.part").write_bytes(b"x" * 1000)
    server.mode = "ignore-range"
    download(server.url, tmp_path / "w.pth", sha256=DIGEST)
    assert server.ranges == ["bytes=1000-"]
    assert (tmp_path / "w.pth").read_bytes() == PAYLOAD


def test_416_with_complete_part_is_kept(server: ServerState, tmp_path: Path) -> None:
    (tmp_path / "w.pth.part").write_bytes(PAYLOAD)
    download(server.url, tmp_path / "w.pth", sha256=DIGEST)
    assert (tmp_path / "w.pth").read_bytes() == PAYLOAD
    assert server.ranges == [f"bytes={len(PAYLOAD)}-"]


def test_416_with_overlong_part_restarts(server: ServerState, tmp_path: Path) -> None:
    (tmp_path / "w.pth.part").write_bytes(PAYLOAD + b"junk")
    download(server.url, tmp_path / "w.pth", sha256=DIGEST)
    assert (tmp_path / "w.pth").read_bytes() == PAYLOAD
    assert server.ranges == [f"bytes={len(PAYLOAD) + 4}-", None]


def test_stale_part_is_replaced_once(server: ServerState, tmp_path: Path) -> None:
    (tmp_path / "w.pth.part").write_bytes(b"old upstream version")
    download(server.url, tmp_path / "w.pth", sha256=DIGEST)
    assert server.ranges == ["bytes=20-", None]
    assert files_in(tmp_path) == ["w.pth"] and (tmp_path / "w.pth").read_bytes() == PAYLOAD


def test_wrong_digest_leaves_nothing(server: ServerState, tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as err:
        download(server.url, tmp_path / "w.pth", sha256="0" * 64)
    assert "0" * 64 in str(err.value) and DIGEST in str(err.value)
    assert files_in(tmp_path) == []


def test_wrong_size_leaves_nothing(server: ServerState, tmp_path: Path) -> None:
    (tmp_path / "w.pth.part").write_bytes(b"y" * 10)  # resumed, then retried from scratch
    with pytest.raises(WeightsError, match="size"):
        download(server.url, tmp_path / "w.pth", size=len(PAYLOAD) + 10)
    assert files_in(tmp_path) == []
    assert server.ranges == ["bytes=10-", None]


def test_http_404_names_file_and_manual_fix(server: ServerState, tmp_path: Path) -> None:
    server.mode = "404"
    with pytest.raises(WeightsError) as err:
        download(server.url, tmp_path / "w.pth")
    text = str(err.value)
    assert "w.pth" in text and server.url in text and "404" in text
    assert "plugin_host weights import" in text and "PLUGIN_HOST_WEIGHTS_PATH" in text
    assert files_in(tmp_path) == []


def test_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(WeightsError) as err:
        download(f"http://127.0.0.1:{port}/w.pth", tmp_path / "w.pth", timeout=5)
    assert "w.pth" in str(err.value) and "plugin_host weights import" in str(err.value)


def test_file_url(tmp_path: Path) -> None:
    src = tmp_path / "src" / "upstream.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    progress = Progress()
    dest = download(src.as_uri(), tmp_path / "out" / "w.pth", sha256=DIGEST, progress=progress)
    assert dest.read_bytes() == PAYLOAD
    assert progress.step == progress.total == len(PAYLOAD)


def test_missing_file_url(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        download((tmp_path / "nope.bin").as_uri(), tmp_path / "w.pth")


def test_unsupported_scheme(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="unsupported URL scheme"):
        download("ftp://example.invalid/w.pth", tmp_path / "w.pth")


def test_cancel_mid_download(server: ServerState, tmp_path: Path) -> None:
    token = CancelToken()
    with pytest.raises(Cancelled):
        download(server.url, tmp_path / "w.pth", sha256=DIGEST, progress=CancelAfterFirstChunk(token),
                 cancel=token)
    assert not (tmp_path / "w.pth").exists()
    assert 0 < (tmp_path / "w.pth.part").stat().st_size < len(PAYLOAD)


def test_store_fetches_over_http_once(server: ServerState, tmp_path: Path, monkeypatch) -> None:
    entry = WeightsEntry("net", "net.pth", "encoder", "vgg16", "caffe", UrlSource(server.url), DIGEST, len(PAYLOAD))
    store = WeightsStore({"net": entry}, cache_dir=tmp_path / "cache", search_path=[])
    path = store.path("net")
    assert path == tmp_path / "cache" / "net.pth" and path.read_bytes() == PAYLOAD
    assert len(server.ranges) == 1

    def no_hashing(_path: Path) -> str:
        raise AssertionError("a verified file was hashed again")

    monkeypatch.setattr(store_module, "sha256_file", no_hashing)
    assert store.path("net") == path
    assert len(server.ranges) == 1
