"""The worker's fast lane: small files that no log or export artifact claims (web-root pages,
scripts, binaries), which are most of a web root and most of the files of any server copy.

``worker._process`` is the reference path: a hashing stream the artifact's parser reads, a dict
per ``files`` row. On 20,000 small pages that machinery cost about as much Python per page as the
YARA scan itself (issue 19). Here each file is read with one call, hashed from that buffer, its
page checks and content scan run on the same bytes, and its ``files`` row goes into column lists
that become one Arrow table per unit. Anything unusual (a log or export sniff claims the head, a
UTF-16 page, an archive, a file bigger than ``WHOLE_READ`` or changed since the listing, a read
error, no content scanner) goes to ``worker._process`` with the bytes already read, so it is still
read once and reported exactly as before. ``tests/test_smallfiles.py`` holds the two paths equal.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from exhunt import worker
from exhunt.artifacts import choose
from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.encoding import SNIFF_BYTES, UTF8, sniff
from exhunt.artifacts.files import HEAD_BYTES, WHOLE_READ
from exhunt.artifacts.unrecognised import warning as unclaimed_warning
from exhunt.artifacts.webroots import WebPage
from exhunt.events.schema import TABLES
from exhunt.events.store import StoreWriter
from exhunt.evidence.archive import looks_like_archive
from exhunt.evidence.archive_formats import is_archive
from exhunt.evidence.base import EvidenceFile
from exhunt.evidence.directory import DirectorySource

FILES = TABLES["files"]
TS = FILES.field("mtime").type
SMALL_BATCH = 100  # files rows below this many: timestamps made one by one (see ``timestamps``)
READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOATIME", 0)
# sources whose files are plain files under their root (the directory source and its subclasses)
_PLAIN_OPEN = vars(DirectorySource)["open_member"].__func__
_PLAIN_SOURCES: dict[str, bool] = {}


def process(files: Sequence[EvidenceFile], host: str, writer: StoreWriter,
            started: Callable[[int], None]) -> list[worker.FileResult]:
    """Every file of one unit: fast lane where it applies, else the reference path (in order).

    Three passes: read each file and decide whether the fast lane takes it; YARA-scan those it takes,
    back to back; then everything else, in listing order. The same work done file by file cost
    ~20 us more per page (the scanner's tables fall out of the CPU caches between one page's scan and
    the next; measured side by side on 8,000 pages: 110 against 90 us, the floor loop of
    bench/pages_floor.py 61). Each pass reports each file it starts to the hung-file watchdog
    (``started``). The unit's bytes are held between passes: a unit is at most ``BATCH_FILES``
    files and its batch bytes (``api.batches``)."""
    read = []
    for index, file in enumerate(files):
        started(index)
        read.append(_first_pass(file))
    for index, (file, (data, scanned)) in enumerate(zip(files, read, strict=True)):
        if scanned is not None and data is not None:  # the fast lane takes only files read whole
            started(index)
            scanned.scan(data, file.rel, host)
    columns = FileColumns(host)
    results = []
    for index, (file, (data, scanned)) in enumerate(zip(files, read, strict=True)):
        started(index)
        result = _fast(file, host, writer, data, columns, scanned) if scanned is not None else None
        if result is None:
            columns.flush(writer)  # keep the files rows in listing order
            result = worker._process(file, host, writer, data=data)
        results.append(result)
    columns.flush(writer)
    return results


class _Scanned:
    """What the first pass learnt of a file the fast lane takes, and its YARA scan."""

    def __init__(self, artifact: type[Artifact] | None, sha256: str) -> None:
        self.artifact = artifact
        self.sha256 = sha256
        self.yara: list[dict[str, Any]] | Exception = []  # match rows, or what the scan raised

    def scan(self, data: bytes, rel: str, host: str) -> None:
        scanner = worker._SCANNER
        assert scanner is not None  # _eligible
        try:
            self.yara = scanner.scan(data, rel, host, self.sha256)
        except Exception as exc:  # noqa: BLE001 - raised again where the one-pass lane met it
            self.yara = exc


def _first_pass(file: EvidenceFile) -> tuple[bytes | None, _Scanned | None]:
    """The file's bytes (None: not read whole) and, if the fast lane takes it, what it learnt."""
    data = _read(file) if _eligible(file) else None
    if data is None:
        return None, None
    taken, artifact = _takes(file, data)
    if not taken:
        return data, None
    return data, _Scanned(artifact, hashlib.sha256(data).hexdigest())


def _eligible(file: EvidenceFile) -> bool:
    scanner = worker._SCANNER
    return scanner is not None and file.size <= WHOLE_READ and scanner.wants(file.size)


def _read(file: EvidenceFile) -> bytes | None:
    """The whole file in one read; None when it cannot be read or is not its listed size (the
    reference path opens it again and reports what it meets)."""
    try:
        if _plain(file.source):
            fd = _open_plain(os.path.join(file.root, file.locator[0] if file.locator else file.rel))
            try:
                data = os.read(fd, WHOLE_READ + 1)
            finally:
                os.close(fd)
        else:
            with file.open() as stream:
                data = stream.read(WHOLE_READ + 1)
    except OSError:
        return None
    return data if len(data) == file.size else None


def _plain(source: str) -> bool:
    if source not in _PLAIN_SOURCES:
        from exhunt.evidence import source_by_name

        try:
            opener = getattr(source_by_name(source).open_member, "__func__", None)
        except Exception:  # noqa: BLE001 - an unknown source: file.open() raises what it raises
            opener = None
        _PLAIN_SOURCES[source] = opener is _PLAIN_OPEN
    return _PLAIN_SOURCES[source]


def _open_plain(path: str) -> int:
    """As ``evidence.readonly.open_readonly``: O_NOATIME where allowed, read-only, binary."""
    try:
        return os.open(path, READ_FLAGS)
    except PermissionError:
        return os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))


def _takes(file: EvidenceFile, data: bytes) -> tuple[bool, type[Artifact] | None]:
    """Whether the fast lane takes this file (an unclaimed file or a UTF-8 page), and its artifact."""
    rel_lower = file.rel_lower
    head = data[:HEAD_BYTES]
    artifact = choose(rel_lower, head)
    if artifact is not None and artifact is not WebPage:
        return False, None
    if (rel_lower.endswith(".evtx") or looks_like_archive(file.rel) or is_archive(head, file.rel)
            or (artifact is WebPage and sniff(head[:SNIFF_BYTES])[0] != UTF8)):
        return False, None
    return True, artifact


def _fast(file: EvidenceFile, host: str, writer: StoreWriter, data: bytes | None,
          columns: FileColumns, scanned: _Scanned) -> worker.FileResult | None:
    """What ``worker._process`` does for an unclaimed file or a UTF-8 page, with its YARA scan done."""
    assert data is not None
    artifact = scanned.artifact
    head = data[:HEAD_BYTES]
    ctx = ParseContext(host=host, file=file, writer=writer, artifact=artifact.name if artifact else "files")
    if artifact is None and (why := unclaimed_warning(file.rel_lower, head, file.size)):
        ctx.artifact = "unrecognised"  # counted in the host's coverage (findings/coverage.py)
        ctx.warn(why, offset=0)
        ctx.artifact = "files"
    elif artifact is WebPage:
        WebPage.inspect(ctx, data)
    sha256 = scanned.sha256
    columns.add(file, data, sha256, ctx.artifact if artifact else None)
    scanner = worker._SCANNER
    assert scanner is not None  # _eligible
    try:
        worker.scan_file(scanner, ctx, file, data, sha256, head, scanned.yara)  # the reference path's hook
    except Exception as exc:  # a scanner failure on hostile content loses only this file's scan
        ctx.warn(f"content scan error {type(exc).__name__}: {exc}")
    return worker.FileResult(file.rel, artifact.name if artifact else None, len(data), ctx.events, ctx.warnings,
                             sha256, file.root)


class FileColumns:
    """``files`` rows of one unit as column lists, written as one Arrow table (not a dict per row)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.clear()

    def clear(self) -> None:
        self.path: list[str] = []
        self.size: list[int] = []
        self.times: tuple[list[float | None], ...] = ([], [], [])
        self.sha256: list[str] = []
        self.sha1: list[str] = []
        self.md5: list[str] = []
        self.magic: list[str] = []
        self.artifact: list[str | None] = []
        self.evidence: list[str] = []

    def add(self, file: EvidenceFile, data: bytes, sha256: str, artifact: str | None) -> None:
        self.path.append(file.rel)
        self.size.append(len(data))
        mtimes, ctimes, atimes = self.times
        mtimes.append(file.mtime)
        ctimes.append(file.ctime)
        atimes.append(file.atime)
        self.sha256.append(sha256)
        self.sha1.append(hashlib.sha1(data).hexdigest())  # noqa: S324 - IOC lists still use SHA-1/MD5
        self.md5.append(hashlib.md5(data).hexdigest())  # noqa: S324
        self.magic.append(data[:16].hex())
        self.artifact.append(artifact)
        self.evidence.append(file.root)

    def flush(self, writer: StoreWriter) -> None:
        if not self.path:
            return
        times = [timestamps(t) for t in self.times]
        values = [[self.host] * len(self.path), self.path, self.size, *times, self.sha256, self.sha1,
                  self.md5, self.magic, self.artifact, self.evidence]
        try:
            arrays = [v if isinstance(v, pa.Array) else pa.array(v, f.type) for v, f in zip(values, FILES, strict=True)]
        except UnicodeEncodeError:  # surrogate-escaped names: the row path knows how to print them
            values[3:6] = [t.to_pylist() for t in times]
            rows = [dict(zip(FILES.names, r, strict=True)) for r in zip(*values, strict=True)]
            for row in rows:
                writer.add("files", row)
        else:
            writer.table("files").add_batch(pa.Table.from_arrays(arrays, schema=FILES))
        self.clear()


def timestamps(seconds: list[float | None]) -> pa.Array:
    """POSIX seconds as the store's timestamps, exactly as ``datetime.fromtimestamp(s, UTC)`` rounds
    them (whole seconds, then the fraction's microseconds rounded half to even), without a datetime
    object per value. Negative times (before 1970) take the datetime path: their fraction rounds
    the other way round in CPython, and small batches too (Arrow's compute calls cost more there)."""
    if len(seconds) >= SMALL_BATCH:
        array = pa.array(seconds, pa.float64())
        if not pc.any(pc.less(array, 0.0)).as_py():
            whole = pc.floor(array)
            micros = pc.round(pc.multiply(pc.subtract(array, whole), 1e6), round_mode="half_to_even")
            return pc.add(pc.cast(pc.multiply(whole, 1e6), pa.int64()), pc.cast(micros, pa.int64())).cast(TS)
    return pa.array([datetime.fromtimestamp(s, UTC) if s is not None else None for s in seconds], TS)
