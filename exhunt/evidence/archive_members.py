"""The one walk over archive members, with the bomb and size limits, for both kinds of archive.

- Archives given as evidence or found in an evidence folder by their suffix (``evidence.archive``):
  members are listed here without reading them, and become evidence files that workers reopen
  and parse.
- Archives found by their magic bytes inside the evidence, whatever their name (a 7z staged as
  ``.dat``, a zip inside a zip): ``detections.filescan`` reads each member here into memory, hashes
  and YARA-scans it; nothing is parsed.

What the walk guards, for both: member names are attacker-controlled, so each is cleaned
(``names.safe_relative``: ``..``, absolute, drive and UNC names, control characters) with a warning
naming the original, and a name met twice is read as ``name~2``; links are never followed; a member
count and an expanded size per archive, nested archives included (declared sizes, plus whatever a
read finds beyond them); a compression ratio per large member; archives inside archives opened
only down to a depth. The callers differ only in their ``Limits`` (each states its own and why)
and in how a nested archive is recognised and opened (by suffix from the container, or by magic
from the bytes already read).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from exhunt.evidence import archive_formats as fmt
from exhunt.evidence.names import printable, safe_relative

Warn = Callable[[str, str], None]  # (display path, message)
READ = 1 << 20
Rename = Callable[[str], str | None]


@dataclass(frozen=True)
class Limits:
    """Per outermost archive, nested archives included."""

    members: int
    total: int  # expanded bytes
    depth: int  # levels of archives inside the outermost one that are opened
    ratio: int = fmt.RATIO  # deflate on real IIS/Exchange logs and web pages stays well below 100:1
    ratio_min_size: int = fmt.RATIO_MIN_SIZE  # a smaller member cannot hurt whatever its ratio


@dataclass
class _Budget:
    total: int = 0
    members: int = 0
    stopped: bool = False
    seen: set[str] = field(default_factory=set)


@dataclass
class Entry:
    """One regular-file member that passed the limits."""

    member: fmt.Member
    rel: str  # its display path: the archive's label, the separator, the cleaned name
    clean: str  # the cleaned (and renamed) member name
    chain: tuple[str, ...]  # member locators from the outermost archive down to this member
    depth: int  # 0 for members of the outermost archive
    reader: fmt.Reader
    budget: _Budget = field(repr=False)
    data: bytes | None = None  # set by ``read_whole``; a nested archive in memory opens from it


@dataclass(frozen=True)
class Walk:
    """How one caller walks: its limits, where warnings go, and how nested archives are met."""

    limits: Limits
    warn: Warn
    separator: str  # between an archive's display path and its members' names
    is_archive: Callable[[Entry], bool]
    open_nested: Callable[[Entry], fmt.Reader]
    rename: Rename | None = None  # a collector's layout (Velociraptor): None skips the member


def members(open_reader: Callable[[], fmt.Reader], label: str, where: str, walk: Walk) -> Iterator[Entry]:
    """Every member of the archive ``open_reader`` opens, and of the archives inside it.

    ``label`` is what members' display paths start with ('' when the archive is the evidence
    itself), ``where`` the name its own warnings carry.
    """
    try:
        reader = open_reader()
    except Exception as exc:  # noqa: BLE001 - any failure of a hostile archive is a warning
        walk.warn(where, f"cannot open archive: {type(exc).__name__}: {exc}")
        return
    yield from _walk(reader, label, where, (), 0, _Budget(), walk)


def _walk(reader: fmt.Reader, label: str, where: str, chain: tuple[str, ...], depth: int, budget: _Budget,
          walk: Walk) -> Iterator[Entry]:
    limits = walk.limits
    count = 0
    try:
        for m in reader.members():
            count += 1
            if budget.stopped:
                return
            budget.members += 1
            if budget.members > limits.members:
                walk.warn(where, f"more than {limits.members} members: possible archive bomb, the rest skipped")
                budget.stopped = True
                return
            yield from _member(reader, label, chain, depth, budget, walk, m)
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt archive: keep what was listed
        walk.warn(where, f"archive truncated or corrupt after {count} members: {type(exc).__name__}: {exc}")
    if getattr(reader, "local_times", False):
        walk.warn(where, fmt.LOCAL_ZIP_TIMES)


def _member(reader: fmt.Reader, label: str, chain: tuple[str, ...], depth: int, budget: _Budget, walk: Walk,
            m: fmt.Member) -> Iterator[Entry]:
    limits, warn = walk.limits, walk.warn
    clean, reason = safe_relative(m.name)
    if walk.rename is not None:
        mapped = walk.rename(clean)
        if mapped is None:
            return
        clean = mapped
    rel = f"{label}{walk.separator}{clean}" if label else clean
    if reason:
        warn(rel, f"unsafe member name {printable(m.name)[0]!r} ({reason}): read as {rel!r}, nothing written")
    if m.kind == "dir":
        return
    if m.kind == "link":
        warn(rel, f"link member to {printable(m.link or '?')[0]!r} not followed")
        return
    if m.kind != "file":
        warn(rel, "not a regular file member: skipped")
        return
    if m.csize is not None and m.size > limits.ratio_min_size and m.size > limits.ratio * max(m.csize, 1):
        warn(rel, f"compression ratio {m.size // max(m.csize, 1)}:1 above {limits.ratio}:1 "
                  f"({m.size} bytes declared): possible archive bomb, skipped")
        return
    budget.total += m.size
    if _over_total(budget, limits, warn, rel, "this and the remaining members skipped"):
        return
    if rel.lower() in budget.seen:
        n = 2
        while f"{rel}~{n}".lower() in budget.seen:
            n += 1
        warn(rel, f"duplicate member name: this copy read as {rel}~{n}")
        rel = f"{rel}~{n}"
    budget.seen.add(rel.lower())
    entry = Entry(m, rel, clean, (*chain, m.locator), depth, reader, budget)
    yield entry
    if _over_total(budget, limits, warn, rel, "the remaining members skipped") or not walk.is_archive(entry):
        return
    if depth >= limits.depth:
        levels = "level" if limits.depth == 1 else "levels"
        warn(rel, f"archive nested more than {limits.depth} {levels} deep: hashed, not opened")
        return
    try:
        nested = walk.open_nested(entry)
    except Exception as exc:  # noqa: BLE001
        warn(rel, f"nested archive not opened: {type(exc).__name__}: {exc}")
        return
    entry.data = None  # the nested reader holds what it needs
    yield from _walk(nested, rel, rel, entry.chain, depth + 1, budget, walk)


def _over_total(budget: _Budget, limits: Limits, warn: Warn, rel: str, skipped: str) -> bool:
    if budget.total <= limits.total:
        return False
    if not budget.stopped:
        warn(rel, f"archive expands to more than {limits.total} bytes in total (declared or read): "
                  f"possible archive bomb, {skipped}")
    budget.stopped = True
    return True


class MemberTooLarge(fmt.ArchiveFormatError):
    """A member that expands beyond what its reader may hold."""


def read_whole(entry: Entry, limit: int) -> bytes:
    """The member's bytes, at most ``limit`` of them (else ``MemberTooLarge``). What a read expands
    to beyond the declared size counts against the archive's total, even when the read then fails
    (bz2 and xz declare no size; gzip's is a hint)."""
    chunks: list[bytes] = []
    stream = GuardedStream(entry.reader.open(entry.member.locator), limit + 1)
    try:
        while chunk := stream.read(READ):
            chunks.append(chunk)
    finally:
        stream.close()
        entry.budget.total += max(limit + 1 - stream.left - entry.member.size, 0)
    data = b"".join(chunks)
    if len(data) > limit:
        raise MemberTooLarge(f"expands to more than {limit} bytes: not read")
    entry.data = data
    return data


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
        data = self.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n

    def read(self, size: int | None = -1) -> bytes:
        """At most ``size`` bytes straight from the member (no buffer allocated and copied)."""
        if self.failed or self.left <= 0:
            return b""
        try:
            data = self.inner.read(self.left if size is None or size < 0 else min(size, self.left))
        except OSError:
            self.failed = True
            raise
        except Exception as exc:  # noqa: BLE001 - decompressor errors of hostile data
            self.failed = True
            raise OSError(f"corrupt or truncated archive member: {type(exc).__name__}: {exc}") from exc
        self.left -= len(data)
        return data

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            super().close()
