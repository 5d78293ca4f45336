"""The one archive member walk, through both of its callers: an archive listed as evidence
(evidence/archive.py) and one found by its magic bytes and scanned in place (detections/filescan.py).
Each hostile archive must give the same kind of warning and keep the same members out either way."""

from __future__ import annotations

import gzip
import io
import lzma
import struct
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from exhunt.detections import filescan
from exhunt.detections.yara import load_rules
from exhunt.evidence import archive
from exhunt.evidence.archive_formats import SevenZipReader, TarReader, clear_cache
from exhunt.worker import init_scanner
from tests.helpers import parse_bytes, zip_bytes

Listed = tuple[list[str], list[str]]  # member names (after the archive's own name), warning messages


@pytest.fixture
def scanner(tmp_path: Path) -> Iterator[None]:
    init_scanner(load_rules(cache=tmp_path / "cache").blob, 100 << 20)
    yield
    init_scanner(None, 0)


def _zip_pairs(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name": wanted here
        for name, data in members:
            z.writestr(name, data)
    return buffer.getvalue()


def _tar(build: Callable[[tarfile.TarFile], None], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as t:  # type: ignore[call-overload]
        build(t)
    return buffer.getvalue()


def _add(t: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))


def _links(t: tarfile.TarFile) -> None:
    for linktype, name in ((tarfile.SYMTYPE, "sym.log"), (tarfile.LNKTYPE, "hard.log")):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = linktype, "../../../etc/passwd"
        t.addfile(info)
    _add(t, "real.log", b"x\n")


def _encrypted(data: bytes) -> bytes:
    """A zip whose one member says it is encrypted (the general-purpose flag's bit 0)."""
    raw = bytearray(data)
    raw[6] |= 1  # local header
    central = raw.index(b"PK\x01\x02")
    raw[central + 8] |= 1
    return bytes(raw)


def _nest(levels: int) -> bytes:
    data = zip_bytes({"x.log": b"deepest\n"})
    for level in range(levels, 0, -1):
        data = zip_bytes({f"n{level}.zip": data})
    return data


def listed(tmp_path: Path, data: bytes, **limits: int) -> Listed:
    """As evidence: the archive in a folder, listed by the evidence layer, every member opened."""
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "e.zip"
    path.write_bytes(data)
    messages: list[str] = []
    saved = archive.LIMITS
    archive.LIMITS = replace(saved, **limits)  # type: ignore[arg-type]
    try:
        clear_cache()
        files = list(archive.list_archive("archive", str(tmp_path), "e.zip", path, "e.zip/",
                                          lambda where, msg: messages.append(f"{where}: {msg}")))
        for f in files:
            try:
                with archive.open_archive_member(f) as stream:
                    stream.read()
            except OSError as exc:
                messages.append(f"{f.rel}: {exc}")
    finally:
        archive.LIMITS = saved
        clear_cache()
    return [f.rel.removeprefix("e.zip/") for f in files], messages


def in_place(tmp_path: Path, data: bytes, monkeypatch: pytest.MonkeyPatch, **limits: int) -> Listed:
    """Found by its magic bytes (no archive suffix): read in memory and scanned by the worker."""
    monkeypatch.setattr(filescan, "ARCHIVE_LIMITS", replace(filescan.ARCHIVE_LIMITS, **limits))  # type: ignore[arg-type]
    con = parse_bytes(tmp_path, "p.bin", data)
    paths = [p for (p,) in con.execute("SELECT path FROM files WHERE artifact = 'archive_member' ORDER BY path")
             .fetchall()]
    messages = [m for (m,) in con.execute("SELECT message FROM warnings WHERE artifact = 'yara'").fetchall()]
    return [p.removeprefix("p.bin!") for p in paths], messages


CASES: dict[str, tuple[Callable[[], bytes], dict[str, int], str, Callable[[list[str]], bool]]] = {
    # name: (archive, limits, a warning must contain, the members read)
    "path traversal": (lambda: zip_bytes({"../../evil.aspx": b"x", "C:\\Windows\\w.aspx": b"y"}), {},
                       "unsafe member name", lambda m: sorted(m) == ["C/Windows/w.aspx", "evil.aspx"]),
    "links": (lambda: _tar(_links), {}, "link member to '../../../etc/passwd' not followed",
              lambda m: m == ["real.log"]),
    "member count": (lambda: zip_bytes({f"{i}.log": b"x" for i in range(6)}), {"members": 3},
                     "more than 3 members: possible archive bomb", lambda m: len(m) == 3),
    "total size": (lambda: zip_bytes({f"{i}.log": b"x" * 60 for i in range(3)}), {"total": 100},
                   "more than 100 bytes in total", lambda m: m == ["0.log"]),
    "ratio": (lambda: zip_bytes({"zeros.log": bytes(4 << 20), "a.log": b"a"}), {"ratio_min_size": 1 << 20},
              "possible archive bomb, skipped", lambda m: m == ["a.log"]),
    "depth": (lambda: _nest(4), {}, "archive nested more than", lambda m: not any(p.endswith("x.log") for p in m)),
    "duplicate names": (lambda: _zip_pairs([("a.log", b"1"), ("a.log", b"2")]), {}, "duplicate member name",
                        lambda m: sorted(m) == ["a.log", "a.log~2"]),
    "encrypted": (lambda: _encrypted(zip_bytes({"a.aspx": b"x"})), {}, "needs a password", lambda m: True),
}


@pytest.mark.parametrize("case", CASES)
def test_hostile_archive_as_evidence(tmp_path: Path, case: str) -> None:
    build, limits, warning, members_ok = CASES[case]
    members, messages = listed(tmp_path, build(), **limits)
    assert any(warning in w for w in messages), messages
    assert members_ok(members), members


@pytest.mark.parametrize("case", CASES)
def test_hostile_archive_in_place(tmp_path: Path, scanner: None, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    build, limits, warning, members_ok = CASES[case]
    members, messages = in_place(tmp_path, build(), monkeypatch, **limits)
    assert any(warning in w for w in messages), messages
    if case != "encrypted":  # listed as evidence (its bytes unreadable), not scanned in place
        assert members_ok(members), members
    else:
        assert members == []


def test_nesting_depth_of_each_caller(tmp_path: Path, scanner: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listed archives open one level of archives inside, in-place ones two (all in memory)."""
    data = _nest(4)
    members, messages = listed(tmp_path / "a", data)
    assert members == ["n1.zip", "n1.zip/n2.zip"]
    assert any("n1.zip/n2.zip: archive nested more than 1 level deep" in w for w in messages)
    members, messages = in_place(tmp_path / "b", data, monkeypatch)
    assert members == ["n1.zip", "n1.zip!n2.zip", "n1.zip!n2.zip!n3.zip"]
    assert any("n1.zip!n2.zip!n3.zip: archive nested more than 2 levels deep" in w for w in messages)


@pytest.mark.parametrize("kind", ["xz", "gz"])
def test_a_compressed_member_counts_what_it_expands_to(tmp_path: Path, scanner: None,
                                                       monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """xz declares no size, a gzip trailer can lie: what the read expands to counts against the total."""
    if kind == "xz":
        packed = lzma.compress(bytes(2 << 20))
    else:
        lying = bytearray(gzip.compress(bytes(2 << 20)))
        struct.pack_into("<I", lying, len(lying) - 4, 1)  # ISIZE trailer: "1 byte" (gzip then fails at the end)
        packed = bytes(lying)
    data = _zip_pairs([(f"a.{kind}", packed), ("b.log", b"after\n")])
    members, messages = in_place(tmp_path, data, monkeypatch, total=1 << 20)
    assert "b.log" not in members  # the archive's budget was spent by the expansion
    assert any("more than 1048576 bytes in total (declared or read)" in w for w in messages), messages


def test_a_compressed_tar_is_not_rewound_for_each_member() -> None:
    """Listing and reading interleave in place: opening the member just listed must not seek back to
    its header (a backwards seek in a gzip stream decompresses it again from the start)."""

    class Counting(io.BytesIO):
        rewinds = 0

        def seek(self, offset: int, whence: int = 0) -> int:
            if whence == 0 and offset == 0 and self.tell() > 0:
                Counting.rewinds += 1
            return super().seek(offset, whence)

    def rewinds(count: int) -> int:
        data = _tar(lambda t: [_add(t, f"{i}.log", bytes(range(256)) * 40) for i in range(count)], "w:gz")
        Counting.rewinds = 0
        reader = TarReader(Counting(data))
        for member in reader.members():
            assert len(reader.open(member.locator).read()) == member.size
        return Counting.rewinds

    assert rewinds(40) == rewinds(4)


def test_a_7z_read_in_place_is_decompressed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A solid 7z is decompressed from its block's start for every member extracted by name: read
    in place, members come one after another, so the archive is decompressed once and held."""
    py7zr = pytest.importorskip("py7zr")
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as z:
        for i in range(5):
            z.writestr(bytes([i]) * 1000, f"{i}.aspx")
    calls: list[object] = []
    extract = SevenZipReader._extract

    def counted(self: SevenZipReader, targets: list[str] | None) -> object:
        calls.append(targets)
        return extract(self, targets)

    monkeypatch.setattr(SevenZipReader, "_extract", counted)
    for hold, extractions in ((1 << 20, 1), (1000, 5), (0, 5)):
        calls.clear()
        reader = SevenZipReader(io.BytesIO(buffer.getvalue()), hold)
        got = [reader.open(m.locator).read() for m in reader.members()]
        assert got == [bytes([i]) * 1000 for i in range(5)]
        assert len(calls) == extractions


def test_two_7z_members_of_one_name_are_each_read_in_place(tmp_path: Path, scanner: None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    py7zr = pytest.importorskip("py7zr")
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as z:
        z.writestr(b"first", "a.log")
        z.writestr(b"the second", "a.log")
    con = parse_bytes(tmp_path, "p.bin", buffer.getvalue())
    rows = con.execute("SELECT path, size FROM files WHERE artifact = 'archive_member' ORDER BY path").fetchall()
    assert rows == [("p.bin!a.log", 5), ("p.bin!a.log~2", 10)]


def test_a_nested_archive_that_cannot_seek_spills_past_the_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A nested archive read from a member stream that cannot seek is copied for its reader: in memory
    up to the budget, in a private temporary file past it (the reader cache holds several), with the
    same members and bytes either way; past the copy limit it is refused with a readable reason."""
    from exhunt.evidence import archive_formats

    members = [(f"{i}.log", bytes(range(256)) * 400) for i in range(6)]  # ~600 KB
    data = _zip_pairs(members)

    class OneWay(io.RawIOBase):  # a decompressing member stream: it reads forward only
        def __init__(self, payload: bytes) -> None:
            self.inner = io.BytesIO(payload)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            return self.inner.readinto(buffer)

    def read_all(spool_budget: int) -> tuple[list[tuple[str, bytes]], bool]:
        monkeypatch.setattr(archive_formats, "SPOOL_IN_MEMORY", spool_budget)
        copy = archive_formats.seekable_copy(io.BufferedReader(OneWay(data)))  # type: ignore[arg-type]
        spilled = bool(getattr(copy, "_rolled", False))
        reader = archive_formats.make_reader(copy, "nested.zip")
        return [(m.name, reader.open(m.locator).read()) for m in reader.members()], spilled

    held, held_spilled = read_all(16 << 20)
    spooled, spooled_spilled = read_all(64 << 10)
    assert held == spooled == members
    assert not held_spilled and spooled_spilled
    with pytest.raises(archive_formats.ArchiveFormatError, match="cannot seek and larger than"):
        archive_formats.seekable_copy(io.BufferedReader(OneWay(data)), limit=len(data) - 1)  # type: ignore[arg-type]
