"""File inventory: every file read once, hashed (SHA-256/SHA-1/MD5) while its parser reads it."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from typing import Any, BinaryIO

from exhunt.evidence.base import EvidenceFile

HEAD_BYTES = 4096
DRAIN_CHUNK = 1 << 20


class HashingRaw(io.RawIOBase):
    """A raw stream that hashes every byte read through it, so parse and hash share one read."""

    def __init__(self, inner: BinaryIO, capture: bool = False, capture_limit: int | None = None) -> None:
        self.inner = inner
        self.chunks: list[bytes] | None = [] if capture else None  # the content, for YARA in the same read
        # a listed size is only a claim (a compressed member's, a file that grew): past the limit the
        # captured bytes are dropped, so a 1 KB bz2 that expands to gigabytes never fills memory
        self.capture_limit = capture_limit
        self.sha256 = hashlib.sha256()
        self.sha1 = hashlib.sha1()  # noqa: S324 - IOC lists still use SHA-1/MD5
        self.md5 = hashlib.md5()  # noqa: S324
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self.sha256.update(data)
            self.sha1.update(data)
            self.md5.update(data)
            self.bytes_read += n
            if self.chunks is not None:
                self.chunks.append(data)
                if self.capture_limit is not None and self.bytes_read > self.capture_limit:
                    self.chunks = None
        return n

    def close(self) -> None:
        self.inner.close()
        super().close()


def open_hashing(file: EvidenceFile, capture: bool = False,
                 capture_limit: int | None = None) -> tuple[io.BufferedReader, HashingRaw]:
    raw = HashingRaw(file.open(), capture, capture_limit)
    return io.BufferedReader(raw, buffer_size=DRAIN_CHUNK), raw


def drain(stream: io.BufferedReader) -> None:
    while stream.read(DRAIN_CHUNK):
        pass


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def file_row(host: str, file: EvidenceFile, raw: HashingRaw, head: bytes, artifact: str | None) -> dict[str, Any]:
    return {
        "host": host,
        "path": file.rel,
        "size": raw.bytes_read,
        "mtime": _ts(file.mtime),
        "ctime": _ts(file.ctime),
        "atime": _ts(file.atime),
        "sha256": raw.sha256.hexdigest(),
        "sha1": raw.sha1.hexdigest(),
        "md5": raw.md5.hexdigest(),
        "magic": head[:16].hex(),
        "artifact": artifact,
        "evidence": file.root,
    }
