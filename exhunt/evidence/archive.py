"""Triage archives (zip, 7z, tar, tar.gz, single .gz) read in place, with archive-bomb limits.

Members are never extracted to disk: workers reopen them through ``open_member`` (see
``archive_formats`` for how each format streams). Member names are attacker-controlled, so they
are cleaned (``names.safe_relative``) and every change is a warning naming the original. Links are
never followed. Bombs are bounded three ways: a per-member compression ratio, a total declared
size and member count per archive, and a nesting limit (archives inside archives one level deep).
The same listing serves archives found inside an evidence folder.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from exhunt.evidence import archive_formats as fmt
from exhunt.evidence.base import EvidenceFile, Source
from exhunt.evidence.names import printable, safe_relative
from exhunt.evidence.readonly import open_readonly as _open_readonly

MAX_RATIO = 250  # deflate on real IIS/Exchange logs stays well below 100:1
RATIO_MIN_SIZE = 16 << 20  # small members cannot hurt whatever their ratio
MAX_TOTAL = 256 << 30  # declared uncompressed bytes per archive (nested included)
MAX_MEMBERS = 1_000_000
MAX_NESTING = 1  # an archive inside an archive is opened; one inside that is only hashed
NESTED_IN_MEMORY = 256 << 20  # a nested archive in a non-seekable member is read into memory up to this

Warn = Callable[[str, str], None]
Rename = Callable[[str], str | None]


@dataclass
class _Budget:
    total: int = 0
    members: int = 0
    stopped: bool = False
    seen: set[str] = field(default_factory=set)


def looks_like_archive(name: str) -> bool:
    return name.lower().endswith(fmt.ARCHIVE_SUFFIXES)


def list_archive(source: str, root: str, container_rel: str, container: Path, prefix: str, warn: Warn,
                 rename: Rename | None = None) -> Iterator[EvidenceFile]:
    """Every readable member of the archive at ``container`` (and of archives inside it).

    ``container_rel`` is the container's real path under ``root`` ('' when the root is the archive),
    ``prefix`` what its members' display paths start with, ``rename`` an optional layout mapping
    (Velociraptor) returning None for members to skip.
    """
    where = prefix.rstrip("/") or container.name
    try:
        reader = fmt.reader_for(container, (), _open_readonly)
    except Exception as exc:  # noqa: BLE001 - any failure of a hostile archive is a warning
        warn(where, f"cannot open archive: {type(exc).__name__}: {exc}")
        return
    yield from _walk(source, root, container_rel, container, reader, (), prefix, 0, _Budget(), warn, rename)


def _walk(source: str, root: str, container_rel: str, container: Path, reader: fmt.Reader,
          chain: tuple[str, ...], prefix: str, depth: int, budget: _Budget, warn: Warn,
          rename: Rename | None) -> Iterator[EvidenceFile]:
    where = prefix.rstrip("/") or container.name
    count = 0
    try:
        for m in reader.members():
            count += 1
            if budget.stopped:
                return
            budget.members += 1
            if budget.members > MAX_MEMBERS:
                warn(where, f"more than {MAX_MEMBERS} members: possible archive bomb, the rest skipped")
                budget.stopped = True
                return
            yield from _member(source, root, container_rel, container, reader, chain, prefix, depth, budget,
                               warn, rename, m)
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt archive: keep what was listed
        warn(where, f"archive truncated or corrupt after {count} members: {type(exc).__name__}: {exc}")


def _member(source: str, root: str, container_rel: str, container: Path, reader: fmt.Reader,
            chain: tuple[str, ...], prefix: str, depth: int, budget: _Budget, warn: Warn,
            rename: Rename | None, m: fmt.Member) -> Iterator[EvidenceFile]:
    clean, reason = safe_relative(m.name)
    if rename is not None:
        mapped = rename(clean)
        if mapped is None:
            return
        clean = mapped
    rel = prefix + clean
    original = printable(m.name)[0]
    if reason:
        warn(rel, f"unsafe member name {original!r} ({reason}): read as {rel!r}, nothing written")
    if m.kind == "dir":
        return
    if m.kind == "link":
        target = printable(m.link or "?")[0]
        warn(rel, f"link member to {target!r} not followed")
        return
    if m.kind != "file":
        warn(rel, "not a regular file member: skipped")
        return
    if m.csize is not None and m.size > RATIO_MIN_SIZE and m.size > MAX_RATIO * max(m.csize, 1):
        warn(rel, f"compression ratio {m.size // max(m.csize, 1)}:1 above {MAX_RATIO}:1 "
                  f"({m.size} bytes declared): possible archive bomb, skipped")
        return
    budget.total += m.size
    if budget.total > MAX_TOTAL:
        warn(rel, f"archive declares more than {MAX_TOTAL} bytes in total: possible archive bomb, "
                  "this and the remaining members skipped")
        budget.stopped = True
        return
    if rel.lower() in budget.seen:
        n = 2
        while f"{rel}~{n}".lower() in budget.seen:
            n += 1
        warn(rel, f"duplicate member name: this copy read as {rel}~{n}")
        rel = f"{rel}~{n}"
    budget.seen.add(rel.lower())
    locator = (container_rel, *chain, m.locator)
    yield EvidenceFile(source, root, rel, m.size, m.mtime, None, None, locator)
    if not looks_like_archive(clean):
        return
    if depth >= MAX_NESTING:
        warn(rel, f"archive nested more than {MAX_NESTING} level deep: hashed, not opened")
        return
    try:
        nested = fmt.reader_for(container, (*chain, m.locator), _open_readonly)
    except Exception as exc:  # noqa: BLE001
        warn(rel, f"nested archive not opened: {type(exc).__name__}: {exc}")
        return
    yield from _walk(source, root, container_rel, container, nested, (*chain, m.locator), rel + "/",
                     depth + 1, budget, warn, rename)


class GuardedStream(io.RawIOBase):
    """A member stream that turns decompressor errors into OSError and stops at a byte limit.

    Workers treat OSError as a warning; zlib/lzma/py7zr errors from a corrupt member would
    otherwise escape as crashes. After the first error it reads as end of file.
    """

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self.inner = inner
        self.left = limit
        self.failed = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.failed or self.left <= 0:
            return 0
        try:
            data = self.inner.read(min(len(buffer), self.left))
        except OSError:
            self.failed = True
            raise
        except Exception as exc:  # noqa: BLE001 - decompressor errors of hostile data
            self.failed = True
            raise OSError(f"corrupt or truncated archive member: {type(exc).__name__}: {exc}") from exc
        n = len(data)
        buffer[:n] = data
        self.left -= n
        return n

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            super().close()


def open_archive_member(member: EvidenceFile) -> BinaryIO:
    container = Path(member.root) / member.locator[0] if member.locator[0] else Path(member.root)
    try:
        reader = fmt.reader_for(container, member.locator[1:-1], _open_readonly)
        inner = reader.open(member.locator[-1])
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise OSError(f"cannot open archive member: {type(exc).__name__}: {exc}") from exc
    limit = MAX_TOTAL if isinstance(reader, fmt.CompressedReader) else member.size
    return io.BufferedReader(GuardedStream(inner, limit))  # type: ignore[return-value]


def strip_archive_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", *fmt.ARCHIVE_SUFFIXES):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


class ArchiveSource(Source):
    """A zip / 7z / tar / tar.gz / .gz given as evidence; member paths are relative to the archive."""

    name = "archive"

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_file() and fmt.sniff(_head(path)) is not None

    def files(self, warn: Warn) -> Iterator[EvidenceFile]:
        yield from list_archive(self.name, str(self.root), "", self.root, "", warn)

    @classmethod
    def open_member(cls, member: EvidenceFile) -> BinaryIO:
        return open_archive_member(member)

    def default_host(self) -> str:
        return strip_archive_suffix(self.root.name) or "host"


def _head(path: Path, size: int = 512) -> bytes:
    try:
        with _open_readonly(path) as f:
            return f.read(size)
    except OSError:
        return b""
