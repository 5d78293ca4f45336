"""Triage archives (zip, 7z, tar, tar.gz, single .gz) read in place, with archive-bomb limits.

Members are never extracted to disk: workers reopen them through ``open_member`` (see
``archive_formats`` for how each format streams). The listing is the shared member walk
(``archive_members``: names cleaned, links not followed, count, size, ratio and nesting limits)
with this source's ``LIMITS``. The same listing serves archives found inside an evidence folder.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from exhunt.evidence import archive_formats as fmt
from exhunt.evidence.archive_members import GuardedStream, Limits, Rename, Walk, Warn, members
from exhunt.evidence.base import EvidenceFile, Source
from exhunt.evidence.readonly import open_readonly as _open_readonly

# Listed members are parsed as evidence files by the workers, one at a time and streamed: a large
# log collection is fine, so the total is high; an archive inside an archive is opened (a zip of
# per-server zips), one inside that is only hashed (each level is one more reader per worker).
LIMITS = Limits(members=1_000_000, total=256 << 30, depth=1)


def looks_like_archive(name: str) -> bool:
    return name.lower().endswith(fmt.ARCHIVE_SUFFIXES)


def list_archive(source: str, root: str, container_rel: str, container: Path, prefix: str, warn: Warn,
                 rename: Rename | None = None) -> Iterator[EvidenceFile]:
    """Every readable member of the archive at ``container`` (and of archives inside it).

    ``container_rel`` is the container's real path under ``root`` ('' when the root is the archive),
    ``prefix`` what its members' display paths start with, ``rename`` an optional layout mapping
    (Velociraptor) returning None for members to skip.
    """
    label = prefix.rstrip("/")
    walk = Walk(LIMITS, warn, "/", lambda e: looks_like_archive(e.clean),
                lambda e: fmt.reader_for(container, e.chain, _open_readonly), rename)
    opened = members(lambda: fmt.reader_for(container, (), _open_readonly), label, label or container.name, walk)
    for entry in opened:
        m = entry.member
        yield EvidenceFile(source, root, entry.rel, m.size, m.mtime, None, None, (container_rel, *entry.chain))


def open_archive_member(member: EvidenceFile) -> BinaryIO:
    container = Path(member.root) / member.locator[0] if member.locator[0] else Path(member.root)
    try:
        reader = fmt.reader_for(container, member.locator[1:-1], _open_readonly)
        inner = reader.open(member.locator[-1])
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise OSError(f"cannot open archive member: {type(exc).__name__}: {exc}") from exc
    limit = LIMITS.total if isinstance(reader, fmt.CompressedReader) else member.size
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
