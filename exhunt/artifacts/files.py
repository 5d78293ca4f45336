"""File inventory: every file read once; SHA-256 of every byte while its parser reads it, SHA-1 and
MD5 only where they serve.

SHA-256 is the custody hash (manifest.json) and the ``files`` row's key. SHA-1 and MD5 exist for IOC
lists that still name files by them, so they are computed for files other than logs and event logs
(pages, scripts, binaries, archives, unknown files) and for every file when a loaded IOC list holds
such values (``ALL_DIGESTS``, set per worker). MD5 costs more per byte than SHA-256 on SHA-NI CPUs,
so skipping it on gigabytes of logs is most of the saving. Where not computed, the columns are NULL.
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from typing import Any, BinaryIO

from exhunt.evidence.archive_formats import problem_of
from exhunt.evidence.base import EvidenceFile

HEAD_BYTES = 4096
DRAIN_CHUNK = 1 << 20
# SHA-1 and MD5 of every file (a loaded IOC list names files by them); set per worker process
ALL_DIGESTS = False
UNDECIDED_LIMIT = 2 * DRAIN_CHUNK
WHOLE_READ = 256 << 10  # files up to this size are read in one call (``read_small``)
# the buffered stream's own buffer: the head's peek fills it, and a parser's large read copies it
# out before reading the rest straight into its own bytes (1 MiB here was two extra copies of most
# of a log: the undecided head kept for SHA-1/MD5, then the buffer into the parser's read)
STREAM_BUFFER = 64 << 10


class HashingRaw(io.RawIOBase):
    """A raw stream that hashes every byte read through it, so parse and hash share one read.

    Whether SHA-1/MD5 are wanted is known only once the file's head has been seen (its artifact);
    until ``want_extra_digests`` decides, the bytes read so far (the first buffer fill) are kept."""

    def __init__(self, inner: BinaryIO, capture: bool = False, capture_limit: int | None = None,
                 extra_digests: bool | None = None) -> None:
        self.inner = inner
        self.problem: str | None = None  # why a member read whole ended early (``archive_formats.problem_of``)
        self._readinto = getattr(inner, "readinto", None)
        self.chunks: list[bytes] | None = [] if capture else None  # the content, for YARA in the same read
        # a listed size is only a claim (a compressed member's, a file that grew): past the limit the
        # captured bytes are dropped, so a 1 KB bz2 that expands to gigabytes never fills memory
        self.capture_limit = capture_limit
        self.sha256 = hashlib.sha256()
        self.sha1: Any = None
        self.md5: Any = None
        self._undecided: list[bytes] | None = []
        self.bytes_read = 0
        if extra_digests is not None:
            self.want_extra_digests(extra_digests)

    def want_extra_digests(self, wanted: bool) -> None:
        """Compute SHA-1 and MD5 too (from the first byte) or never."""
        pending, self._undecided = self._undecided, None
        if not wanted or pending is None:
            return
        self.sha1 = hashlib.sha1()  # noqa: S324 - IOC lists still use SHA-1/MD5
        self.md5 = hashlib.md5()  # noqa: S324
        for data in pending:
            self.sha1.update(data)
            self.md5.update(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Into the caller's buffer: ``inner.read(len(buffer))`` would allocate the whole 1 MiB the
        buffered reader asks for on each call, several times per small page."""
        view = memoryview(buffer).cast("B")
        if self._readinto is not None:
            n = self._readinto(view) or 0
        else:
            chunk = self.inner.read(len(view))
            n = len(chunk)
            view[:n] = chunk
        if n:
            self.update(view[:n])
        return n

    def update(self, data: Any) -> None:
        """Hash ``data`` (bytes, or a view of a buffer that is reused: copied only where kept)."""
        n = len(data)
        if n:
            keep = bytes(data) if self._undecided is not None or self.chunks is not None else b""
            self.sha256.update(data)
            if self.md5 is not None:
                self.sha1.update(data)
                self.md5.update(data)
            elif self._undecided is not None:
                self._undecided.append(keep)
                if self.bytes_read + n > UNDECIDED_LIMIT:  # nobody decided: all digests, bounded memory
                    self.want_extra_digests(True)
            self.bytes_read += n
            if self.chunks is not None:
                self.chunks.append(keep)
                if self.capture_limit is not None and self.bytes_read > self.capture_limit:
                    self.chunks = None

    def close(self) -> None:
        self.inner.close()
        super().close()


def extra_digests_for(artifact: Any) -> bool:
    """SHA-1/MD5 for this file? Not for logs and event logs (their rows are the evidence), unless an
    IOC list holds such hashes."""
    return ALL_DIGESTS or artifact is None or not (artifact.is_log or artifact.is_event_log)


def open_hashing(file: EvidenceFile, capture: bool = False, capture_limit: int | None = None,
                 data: bytes | None = None) -> tuple[io.BufferedReader, HashingRaw]:
    """A buffered stream whose reads hash the file, and the hashing reader (digests, bytes read,
    captured content). Small files are read whole first (``read_small``); ``data``: the whole file,
    read already."""
    if data is not None:
        return _in_memory(data, capture, capture_limit)
    if file.size <= WHOLE_READ and (small := read_small(file, capture, capture_limit)) is not None:
        return small
    raw = HashingRaw(file.open(), capture, capture_limit)
    return io.BufferedReader(raw, buffer_size=STREAM_BUFFER), raw


def read_small(file: EvidenceFile, capture: bool,
               capture_limit: int | None) -> tuple[io.BufferedReader, HashingRaw] | None:
    """A small file (most of a web root) in one read, hashed at once; the parse reads from memory.
    Saves, per page, a 1 MiB buffer and three hashing ``readinto`` calls. None when the read fails
    or the file grew past ``WHOLE_READ`` since the listing: the streaming path reads it again and
    reports what it meets where it meets it."""
    inner = file.open()
    try:
        data = inner.read(WHOLE_READ + 1)
        problem = problem_of(inner)  # a compressed member cut short: said by the worker
    except OSError:
        return None
    finally:
        inner.close()
    if len(data) > WHOLE_READ:
        return None
    stream, raw = _in_memory(data, capture, capture_limit)
    raw.problem = problem
    return stream, raw


class InMemoryReader(io.BufferedReader):
    """A buffered stream over a file read whole; ``whole`` gives a parser that wants every byte
    (EVTX) those bytes without a copy. Its buffer is at most ``STREAM_BUFFER``: the head's peek
    filled a buffer of the whole file (a fresh allocation and a copy: ~50 us per 137 KB EVTX file,
    most of the bytes read twice), and a parser's large read copied it out again."""

    whole: bytes


def _in_memory(data: bytes, capture: bool, capture_limit: int | None) -> tuple[io.BufferedReader, HashingRaw]:
    raw = HashingRaw(io.BytesIO(), capture, capture_limit)  # nothing left to read through it
    raw.update(data)
    stream = InMemoryReader(io.BytesIO(data), buffer_size=max(1, min(len(data), STREAM_BUFFER)))
    stream.whole = data
    return stream, raw


def drain(stream: io.BufferedReader) -> None:
    while stream.read(DRAIN_CHUNK):
        pass


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def file_row(host: str, file: EvidenceFile, raw: HashingRaw, head: bytes, artifact: str | None,
             sha256: str | None = None) -> dict[str, Any]:
    return {
        "host": host,
        "path": file.rel,
        "size": raw.bytes_read,
        "mtime": _ts(file.mtime),
        "ctime": _ts(file.ctime),
        "atime": _ts(file.atime),
        "sha256": sha256 or raw.sha256.hexdigest(),
        "sha1": raw.sha1.hexdigest() if raw.sha1 is not None else None,
        "md5": raw.md5.hexdigest() if raw.md5 is not None else None,
        "magic": head[:16].hex(),
        "artifact": artifact,
        "evidence": file.root,
    }
