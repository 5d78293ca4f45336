"""Compressed members read as far as they go: a cut stream keeps its rows, a bomb stops, a 7z member
too large to hold is refused before a byte of it is decompressed."""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.evidence import archive_formats as fmt

IIS = "C/inetpub/logs/LogFiles/W3SVC1/u_ex210303.log"


def _drain(stream: io.BufferedReader, piece: int) -> int:
    read = 0
    while data := stream.read(piece):
        read += len(data)
    return read


@pytest.mark.parametrize("piece", [1 << 10, 16 << 20])  # small reads, and one read of more than it holds
def test_a_cut_gzip_gives_every_byte_it_holds_then_says_so(piece: int) -> None:
    content = b"".join(b"line %06d of a log\n" % n for n in range(50_000))
    packed = gzip.compress(content)
    stream = fmt.make_reader(io.BytesIO(packed[: len(packed) * 9 // 10]), "u.log.gz").open("0")
    read = _drain(stream, piece)  # type: ignore[arg-type]
    assert 0 < read < len(content)
    assert fmt.problem_of(stream) == (f"compressed stream cut short after {read:,} bytes of its content: "
                                      "the rest is lost")
    whole = fmt.make_reader(io.BytesIO(packed), "u.log.gz").open("0")
    assert _drain(whole, piece) == len(content) and fmt.problem_of(whole) is None  # type: ignore[arg-type]


def test_a_gzip_bomb_stops_past_the_ratio() -> None:
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    packed = b"".join([deflate.compress(bytes(1 << 20)) for _ in range(64)] + [deflate.flush()])
    stream = fmt.make_reader(io.BytesIO(packed), "zeros.log.gz").open("0")
    read = _drain(stream, 1 << 20)  # type: ignore[arg-type]
    assert fmt.RATIO_MIN_SIZE < read < 64 << 20
    assert "possible archive bomb" in (fmt.problem_of(stream) or "")


def _tar_gz(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["u_ex210303.log.gz", "logs.tar.gz"])
def test_a_cut_gzipped_log_keeps_the_attack_before_the_cut(tmp_path: Path, name: str) -> None:
    generate(tmp_path / "demo", DemoSpec(per_day=60, attack=True, seed=3))
    data = (tmp_path / "demo" / IIS).read_bytes()
    packed = gzip.compress(data) if name.endswith(".log.gz") else _tar_gz("u_ex210303.log", data)
    root = tmp_path / "evidence"
    root.mkdir()
    (root / name).write_bytes(packed[: len(packed) * 9 // 10])
    doc = scan([root], ScanOptions(host="EXCH01", jobs=1, quiet=True)).document
    assert any(f.category == "compromise" for f in doc.findings)  # all its rows were lost before
    (host,) = doc.hosts
    assert any("compressed stream cut short" in w["message"] for w in host.coverage.warning_samples)
    assert host.coverage.unread >= 1  # the member, and a tar.gz listing cut after it


def test_a_7z_member_declaring_more_than_can_be_held_is_refused_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    py7zr = pytest.importorskip("py7zr")
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        archive.writestr(bytes(5000), "big.bin")
        archive.writestr(b"small", "small.txt")
    monkeypatch.setattr(fmt, "MAX_7Z_MEMBER", 1000)
    extracted: list[object] = []
    reader = fmt.make_reader(io.BytesIO(buffer.getvalue()), "x.7z")
    assert isinstance(reader, fmt.SevenZipReader)
    monkeypatch.setattr(reader, "_extract", lambda targets: extracted.append(targets) or [])
    with pytest.raises(fmt.ArchiveFormatError, match="declares 5,000 bytes"):
        reader.open("big.bin")
    assert extracted == []  # nothing decompressed


@pytest.mark.parametrize("hold", [0, 512 << 20], ids=["member-by-member", "held-together"])
def test_7z_members_are_held_in_memory_only_up_to_the_spool_limit(monkeypatch: pytest.MonkeyPatch,
                                                                  hold: int) -> None:
    """A 7z's members were held in memory whole (up to 512 MiB per worker, whatever --memory-limit):
    past ``SPOOL_IN_MEMORY`` for one extraction they now go to a private temporary file."""
    import tracemalloc

    py7zr = pytest.importorskip("py7zr")
    members = {f"m{n}.log": bytes([65 + n]) * (24 << 20) for n in range(3)}
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    monkeypatch.setattr(fmt, "SPOOL_IN_MEMORY", 1 << 20)
    reader = fmt.make_reader(io.BytesIO(buffer.getvalue()), "x.7z", hold)
    tracemalloc.start()
    try:
        streams = [reader.open(name) for name in members]  # decompressed, not read yet
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 32 << 20, held  # 72 MiB of members (and py7zr's 16 MiB LZMA dictionary); whole: above
    assert [stream.read() for stream in streams] == list(members.values())  # every byte, in order


def test_7z_members_past_the_spool_limit_share_one_temporary_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each member past the limit had held a temporary file of its own, open until it was read: an
    archive of a few thousand members ran out of file descriptors on every member."""
    import os

    py7zr = pytest.importorskip("py7zr")
    members = {f"big{n}.log": bytes([65 + n]) * (2 << 20) for n in range(5)}
    members |= {f"small{n}.txt": f"member {n}".encode() * 50 for n in range(200)}
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    monkeypatch.setattr(fmt, "SPOOL_IN_MEMORY", 1 << 20)
    reader = fmt.make_reader(io.BytesIO(buffer.getvalue()), "x.7z", 512 << 20)
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    streams = {name: reader.open(name) for name in members}
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) - before <= 2
    assert {name: stream.read() for name, stream in streams.items()} == members
    stream = streams["big3.log"]
    stream.seek(1 << 20)
    assert stream.read(3) == b"DDD"
