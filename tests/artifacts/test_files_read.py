"""The hashing reads: small files in one read, big ones streamed into the caller's buffer; the same
digests, captured content and bytes counted either way."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from exhunt.artifacts import files
from exhunt.artifacts.files import HashingRaw, drain, open_hashing
from exhunt.evidence.base import EvidenceFile


def _listed(path: Path, size: int | None = None) -> EvidenceFile:
    return EvidenceFile("directory", str(path.parent), path.name, path.stat().st_size if size is None else size)


@pytest.mark.parametrize("size", [0, 1, 4095, 300_000, 3 << 20])
def test_digests_and_capture_equal_hashlib(tmp_path: Path, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path = tmp_path / "page.aspx"
    path.write_bytes(data)
    stream, raw = open_hashing(_listed(path), capture=True)
    with stream:
        assert stream.peek(16)[:16] == data[:16]
        raw.want_extra_digests(True)
        drain(stream)
    assert raw.bytes_read == size
    assert raw.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    assert raw.md5.hexdigest() == hashlib.md5(data).hexdigest()  # noqa: S324
    assert b"".join(raw.chunks or []) == data


def test_small_file_is_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.aspx"
    path.write_bytes(b"<%@ Page %>" * 100)
    calls: list[int] = []
    real = HashingRaw.readinto
    monkeypatch.setattr(HashingRaw, "readinto", lambda self, b: calls.append(1) or real(self, b))
    stream, raw = open_hashing(_listed(path))
    with stream:
        drain(stream)
    assert calls == [] and raw.bytes_read == 1100


def test_a_small_file_that_grew_is_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "WHOLE_READ", 1000)
    path = tmp_path / "grew.log"
    path.write_bytes(b"a" * 5000)
    stream, raw = open_hashing(_listed(path, size=10))  # listed small, now past the one-read size
    with stream:
        drain(stream)
    assert raw.bytes_read == 5000 and raw.sha256.hexdigest() == hashlib.sha256(b"a" * 5000).hexdigest()


def test_a_small_file_that_grew_within_the_one_read_size_is_read_whole(tmp_path: Path) -> None:
    """A page that grew since the listing is read whole, whatever the one read met."""
    path = tmp_path / "grew.log"
    path.write_bytes(b"b" * 5000)
    stream, raw = open_hashing(_listed(path, size=10))
    with stream:
        drain(stream)
    assert raw.bytes_read == 5000 and raw.sha256.hexdigest() == hashlib.sha256(b"b" * 5000).hexdigest()


def test_readinto_fills_the_callers_buffer() -> None:
    raw = HashingRaw(io.BytesIO(b"abcdef"))
    buffer = bytearray(4)
    assert raw.readinto(buffer) == 4 and buffer == b"abcd"
    assert raw.readinto(memoryview(buffer)[1:]) == 2 and buffer == b"aefd"
    assert raw.sha256.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()
