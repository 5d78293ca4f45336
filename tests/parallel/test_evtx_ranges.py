"""An EVTX file parsed in ranges of whole chunks gives exactly the rows, warnings, facts and hashes of
one whole parse: every multi-chunk file of the shared set, damaged copies, triage and the full index."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from exhunt.artifacts import evtx_chunks
from exhunt.artifacts.evtx import CHUNK, CHUNK_MAGIC, FILE_HEADER, NOT_STORED
from exhunt.artifacts.evtx_chunks import intact_chunks, synthetic_header
from exhunt.events.store import connect
from exhunt.evidence.base import EvidenceFile
from exhunt.parallel.evtx_ranges import plan_evtx_ranges
from exhunt.parallel.pool import PoolOptions, balanced, make_units, run
from exhunt.parallel.units import EvtxRangeUnit
from exhunt.worker import process_file
from tests.conftest import shared_path

TRIAGE = ("powershell", "4688", "lsass", "Microsoft-Windows-Sysmon/Operational")
PROCESS_RULE = """title: A command shell started
id: 0f9c8d0e-5b1a-4c3e-9e57-3f4f1c2a7b10
status: test
logsource:
  product: windows
  category: process_creation
detection:
  selection:
    Image|endswith: '\\cmd.exe'
  condition: selection
level: high
"""
MODES = {"full": None, "triage": TRIAGE}


def multi_chunk_files() -> list[Path]:
    """Shared EVTX files with three or more chunks in use (the rest of a file is zero-filled)."""
    try:
        root = shared_path("evtx")
    except pytest.skip.Exception:
        return []
    found = []
    for path in sorted(root.rglob("*.evtx")):
        if path.stat().st_size >= FILE_HEADER + 3 * CHUNK:
            data = path.read_bytes()
            used = sum(data.startswith(CHUNK_MAGIC, at) for at in range(FILE_HEADER, len(data), CHUNK))
            if used >= 3:
                found.append(path)
    return found


@pytest.fixture(autouse=True)
def every_chunk_after() -> Iterator[None]:
    yield
    evtx_chunks.configure(None)


def _file(root: Path, rel: str) -> EvidenceFile:
    st = (root / rel).stat()
    return EvidenceFile("directory", str(root), rel, st.st_size, st.st_mtime, st.st_ctime, st.st_atime)


def snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    return {
        "events": con.execute("SELECT * FROM events ORDER BY record_id, ts").fetchall(),
        "warnings": con.execute('SELECT * FROM warnings ORDER BY "offset", message').fetchall(),
        "facts": con.execute("SELECT * FROM host_facts ORDER BY fact, value").fetchall(),
        "files": con.execute("SELECT * FROM files ORDER BY path").fetchall(),
    }


def whole(store: Path, root: Path, rel: str, literals: tuple[str, ...] | None) -> dict[str, list]:
    evtx_chunks.configure(literals)
    try:
        process_file(_file(root, rel), "h", str(store))
    finally:
        evtx_chunks.configure(None)
    return snapshot(connect(store))


def split(store: Path, root: Path, rel: str, literals: tuple[str, ...] | None, split_size: int,
          jobs: int = 1) -> dict[str, list]:
    options = PoolOptions(jobs=jobs, split_size=split_size, settings=(16 << 20, None, literals, None, False))
    # planned for 2 workers (one file alone is not balanced: it is split), run as ``jobs`` says
    units, splits = make_units([([_file(root, rel)], "h")], replace(options, jobs=2))
    assert sum(isinstance(u, EvtxRangeUnit) for u in units) > 1 and len(splits) == 1
    results = run(units, splits, store, options, (None, 0, False), lambda n: None)
    assert [r.rel for r in results] == [rel]
    return snapshot(connect(store))


def assert_same(split_rows: dict[str, list], whole_rows: dict[str, list]) -> None:
    for table, rows in whole_rows.items():
        assert len(split_rows[table]) == len(rows), table
        for x, y in zip(split_rows[table], rows, strict=True):
            assert x == y, (table, x, y)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", multi_chunk_files(), ids=lambda p: p.name)
def test_every_shared_file_split_equals_whole(tmp_path: Path, path: Path, mode: str) -> None:
    root = tmp_path / "ev"
    root.mkdir()
    (root / "Security.evtx").write_bytes(path.read_bytes())
    expected = whole(tmp_path / "whole", root, "Security.evtx", MODES[mode])
    assert expected["events"] or mode == "triage"
    assert_same(split(tmp_path / "split", root, "Security.evtx", MODES[mode], 2 * CHUNK), expected)


def _largest() -> Path:
    files = multi_chunk_files()
    if not files:
        pytest.skip("no multi-chunk EVTX file in the shared set")
    return max(files, key=lambda p: p.read_bytes().count(CHUNK_MAGIC))


def _damaged(data: bytes, how: str) -> bytes:
    """A copy with chunk 3's signature broken, chunk 6's records changed (its checksum then fails),
    or the file cut in the middle of its last chunk in use."""
    out = bytearray(data)
    if how == "signature":
        out[FILE_HEADER + 3 * CHUNK : FILE_HEADER + 3 * CHUNK + 8] = b"XXXXXXXX"
    elif how == "records":
        at = FILE_HEADER + 6 * CHUNK + 0x300
        out[at : at + 0x40] = b"\xff" * 0x40
    else:
        last = max(n for n in range((len(data) - FILE_HEADER) // CHUNK)
                   if data.startswith(CHUNK_MAGIC, FILE_HEADER + n * CHUNK))
        free = struct.unpack_from("<I", data, FILE_HEADER + last * CHUNK + 48)[0]
        del out[FILE_HEADER + last * CHUNK + 512 + (free - 512) // 2 :]
    return bytes(out)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", ["signature", "records", "cut"])
def test_damaged_file_split_equals_whole(tmp_path: Path, how: str, mode: str) -> None:
    """Warnings name the chunks and offsets of the file, not of a range; the cut and the checksums are
    said once, and the records counted but not stored add up."""
    root = tmp_path / "ev"
    root.mkdir()
    (root / "Security.evtx").write_bytes(_damaged(_largest().read_bytes(), how))
    expected = whole(tmp_path / "whole", root, "Security.evtx", MODES[mode])
    assert expected["warnings"]
    if mode == "triage":
        assert any(f[1] == NOT_STORED for f in expected["facts"])
    assert_same(split(tmp_path / "split", root, "Security.evtx", MODES[mode], 2 * CHUNK), expected)


def _sysmon() -> tuple[bytes, list[bytes]]:
    """The header and the 15 chunks of the shared set's Sysmon sample (record ids in order)."""
    found = [p for p in multi_chunk_files() if p.name == "PanacheSysmon_vs_AtomicRedTeam01.evtx"]
    if not found:
        pytest.skip("the shared set's Sysmon sample is absent")
    data = found[0].read_bytes()
    return data[:FILE_HEADER], [data[at : at + CHUNK] for at in range(FILE_HEADER, len(data), CHUNK)
                                if data.startswith(CHUNK_MAGIC, at)]


def _intact_chunks() -> tuple[bytes, list[bytes]]:
    """A header and every intact chunk of the shared set (as the bench's large corpus has them)."""
    header, chunks = b"", []
    for path in sorted(shared_path("evtx").rglob("*.evtx")):
        data = path.read_bytes()
        if not data.startswith(b"ElfFile\x00"):
            continue
        header = header or data[:FILE_HEADER]
        chunks += intact_chunks(data)
    return header, chunks


def _broken(chunks: list[bytes], signature: Iterable[int] = (), records: Iterable[int] = ()) -> bytes:
    out = bytearray(b"".join(chunks))
    for n in signature:
        out[n * CHUNK : n * CHUNK + 8] = b"XXXXXXXX"
    for n in records:
        out[n * CHUNK + 0x300 : n * CHUNK + 0x340] = b"\xff" * 0x40
    return bytes(out)


def _hard_case(name: str) -> bytes:
    """Files where a range knows less than the whole parse did (found by a review of the ranges)."""
    if name == "signature broken at a range start, chunks before it skipped":
        header, chunks = _sysmon()
        return synthetic_header(header, len(chunks)) + _broken(chunks, signature={6})
    if name == "wrapped log: record ids fall back mid-file":
        header, chunks = _sysmon()
        chunks = [chunks[i] for i in (9, 10, 11, 12, 13, 14, 5, 6, 7, 8, 0, 1, 2, 3, 4)]
        return synthetic_header(header, len(chunks)) + _broken(chunks, records={7})
    if name == "repeated record ids: the same chunk damaged twice":
        header, chunks = _sysmon()
        return synthetic_header(header, 2 * len(chunks)) + _broken(chunks + chunks, records={6, 21})
    header, chunks = _intact_chunks()
    if name == "slack after the last chunk":
        return synthetic_header(header, 61) + b"".join(chunks[:61]) + b"\x01" * 600
    if name == "records lost with no damaged chunk: zero-filled chunks, and the file cut short of its count":
        return synthetic_header(header, 40) + b"".join(c if n not in (3, 17) else bytes(CHUNK)
                                                       for n, c in enumerate(chunks[:30]))
    # over the per-file cap of 200 warnings, the last chunk cut: the cut is said first, the rest in file order
    return synthetic_header(header, 300) + _broken(chunks[:300], signature={n for n in range(300) if n % 4})[:-40000]


@pytest.mark.parametrize("literals", [("powershell",), TRIAGE, None], ids=["one-literal", "triage", "full"])
@pytest.mark.parametrize("name", ["signature broken at a range start, chunks before it skipped",
                                  "wrapped log: record ids fall back mid-file",
                                  "repeated record ids: the same chunk damaged twice",
                                  "slack after the last chunk", "over 200 warnings",
                                  "records lost with no damaged chunk: zero-filled chunks, and the file cut short "
                                  "of its count"])
def test_hard_cases_split_equals_whole(tmp_path: Path, name: str, literals: tuple[str, ...] | None) -> None:
    root = tmp_path / "ev"
    root.mkdir()
    (root / "Security.evtx").write_bytes(_hard_case(name))
    expected = whole(tmp_path / "whole", root, "Security.evtx", literals)
    assert expected["warnings"]
    split_size = 4 * CHUNK if name == "over 200 warnings" else 2 * CHUNK
    assert_same(split(tmp_path / "split", root, "Security.evtx", literals, split_size), expected)


def test_split_in_a_pool_equals_whole(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    root.mkdir()
    (root / "Security.evtx").write_bytes(_largest().read_bytes())
    expected = whole(tmp_path / "whole", root, "Security.evtx", TRIAGE)
    assert_same(split(tmp_path / "split", root, "Security.evtx", TRIAGE, 3 * CHUNK, jobs=2), expected)


def _chunks(count: int, damaged: set[int]) -> bytes:
    """A file header and ``count`` chunks (signature and checksums made up), ``damaged`` ones broken."""
    header = bytearray(FILE_HEADER)
    header[:8] = b"ElfFile\x00"
    struct.pack_into("<I", header, 124, zlib.crc32(bytes(header[:120])))
    body = bytearray()
    for n in range(count):
        chunk = bytearray(CHUNK)
        chunk[:8] = CHUNK_MAGIC
        struct.pack_into("<QQ", chunk, 24, 10 * n + 1, 10 * n + 10)
        struct.pack_into("<I", chunk, 48, 512)
        if n not in damaged:
            crc = zlib.crc32(bytes(chunk[128:512]), zlib.crc32(bytes(chunk[:120])))
            struct.pack_into("<I", chunk, 124, crc)
        body += chunk
    return bytes(header) + bytes(body)


def test_cuts_follow_an_intact_chunk_and_carry_its_last_record_id(tmp_path: Path) -> None:
    (tmp_path / "a.evtx").write_bytes(_chunks(20, damaged={3, 7, 8}))
    units = plan_evtx_ranges(_file(tmp_path, "a.evtx"), "h", 4 * CHUNK)
    # a cut at 4 would follow damaged chunk 3: 5 instead; none at 8 or 9 (after 7 and 8)
    assert [(u.first, u.last_before) for u in units] == [(0, None), (5, 50), (12, 120), (16, 160)]
    assert [u.end for u in units[:-1]] == [u.start for u in units[1:]]
    assert units[-1].end == FILE_HEADER + 20 * CHUNK
    assert [struct.unpack_from("<H", u.header, 42)[0] for u in units] == [5, 7, 4, 4]


def test_a_damaged_header_or_a_small_file_stays_whole(tmp_path: Path) -> None:
    data = bytearray(_chunks(20, damaged=set()))
    (tmp_path / "small.evtx").write_bytes(data)
    assert plan_evtx_ranges(_file(tmp_path, "small.evtx"), "h", 20 * CHUNK + FILE_HEADER) == []
    data[50] ^= 1
    (tmp_path / "bad.evtx").write_bytes(data)
    assert plan_evtx_ranges(_file(tmp_path, "bad.evtx"), "h", 4 * CHUNK) == []


def test_evtx_files_are_split_only_when_whole_files_leave_a_worker_idle(tmp_path: Path) -> None:
    for n in range(4):
        (tmp_path / f"L{n}.evtx").write_bytes(_chunks(20, damaged=set()))
    files = [_file(tmp_path, f"L{n}.evtx") for n in range(4)]
    options = PoolOptions(jobs=2, split_size=4 * CHUNK)
    units, splits = make_units([([f], "h") for f in files], options)  # 2 and 2: even, kept whole
    assert not splits and len(units) == 4
    units, splits = make_units([([f], "h") for f in files[:3]], options)  # 2 against 1: split
    assert len(splits) == 3 and sum(isinstance(u, EvtxRangeUnit) for u in units) == 15
    units, splits = make_units([([files[0]], "h")], replace(options, jobs=1))  # one worker: never
    assert not splits
    # a cluster (its workers unknown when the units are made): always
    assert len(make_units([([f], "h") for f in files], replace(options, scheduler="tcp://x:8786"))[1]) == 4


def test_a_file_over_the_cap_is_split_however_even_the_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit of minutes would meet the hung-file watchdog: such a file goes in ranges anyway."""
    from exhunt.parallel import pool

    for n in range(2):
        (tmp_path / f"L{n}.evtx").write_bytes(_chunks(20, damaged=set()))
    files = [_file(tmp_path, f"L{n}.evtx") for n in range(2)]
    options = PoolOptions(jobs=2, split_size=4 * CHUNK)
    assert not make_units([([f], "h") for f in files], options)[1]  # one each: even
    monkeypatch.setattr(pool, "WHOLE_AT_MOST", 10 * CHUNK)
    assert len(make_units([([f], "h") for f in files], options)[1]) == 2
    assert len(make_units([([files[0]], "h")], replace(options, jobs=1))[1]) == 1


def test_balanced_is_the_busiest_worker_against_an_even_share() -> None:
    assert balanced([10, 10, 10, 10], 2)
    assert not balanced([30, 10], 2)
    assert balanced([30, 10], 1)
    assert balanced([13, 10], 2) and not balanced([14, 10], 2)  # an even share: 11.5 and 12


def test_the_ranges_parts_reach_the_scan_connection_as_they_end(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The store connection the detections read (``events.preload``) takes each range's and the
    hashing unit's parts as they end, and comes out as a fresh connection over the finished store."""
    from exhunt.events import preload
    from exhunt.events.preload import PartLoader

    monkeypatch.setattr(preload, "BATCH", 1)
    root = tmp_path / "ev"
    root.mkdir()
    (root / "Security.evtx").write_bytes(_largest().read_bytes())
    options = PoolOptions(jobs=2, split_size=3 * CHUNK, settings=(16 << 20, None, TRIAGE, None, False))
    units, splits = make_units([([_file(root, "Security.evtx")], "h")], options)
    store = tmp_path / "store"
    loader = PartLoader(store)
    handed: list[str] = []
    run(units, splits, store, options, (None, 0, False), lambda n: None,
        unit_done=lambda host, part: (handed.append(part), loader.unit_done(host, part)))
    assert sorted(handed) == sorted(u.part for u in units)
    con = loader.connect()
    fresh = connect(store)
    for table, rows in snapshot(fresh).items():
        assert snapshot(con)[table] == rows, table


@pytest.mark.parametrize("index", ["triage", "full"])
def test_a_scan_with_a_split_evtx_file_equals_one_without(tmp_path: Path, index: str) -> None:
    """End to end: the findings, every host's coverage and the manifest of a scan whose big EVTX file
    went in ranges (2 workers) equal those of one that parsed it whole, and the case verifies."""
    from exhunt.api import ScanOptions, scan
    from exhunt.evidence.manifest import load
    from exhunt.evidence.verify import verify

    evidence = tmp_path / "ev" / "Windows" / "System32" / "winevt" / "Logs"
    evidence.mkdir(parents=True)
    sysmon = [p for p in multi_chunk_files() if p.name == "PanacheSysmon_vs_AtomicRedTeam01.evtx"]
    if not sysmon:
        pytest.skip("the shared set's Sysmon sample (15 chunks, shells started) is absent")
    (evidence / "Security.evtx").write_bytes(_damaged(sysmon[0].read_bytes(), "records"))
    small = sorted(shared_path("evtx").rglob("*.evtx"), key=lambda p: p.stat().st_size)[-40:-38]
    for n, path in enumerate(small):
        (evidence / f"Small{n}.evtx").write_bytes(path.read_bytes())
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "process.yml").write_text(PROCESS_RULE)
    cases = {}
    for name, jobs, split_size in (("whole", 1, 1 << 30), ("split", 2, 2 * CHUNK)):
        cases[name] = scan([tmp_path / "ev"], ScanOptions(out=tmp_path / name, quiet=True, progress=False,
                                                          host="EXCH01", jobs=jobs, split_size=split_size,
                                                          index=index, sigma=[rules])).document
        assert verify(tmp_path / name).ok
    whole, split_doc = cases["whole"], cases["split"]
    assert whole.findings and split_doc.findings == whole.findings
    assert split_doc.hosts == whole.hosts
    assert ([(r.rel, r.size, r.sha256) for r in load(tmp_path / "split")]
            == [(r.rel, r.size, r.sha256) for r in load(tmp_path / "whole")])
    rows = connect(tmp_path / "split" / "store").execute("SELECT count(*) FROM events").fetchone()
    assert rows == connect(tmp_path / "whole" / "store").execute("SELECT count(*) FROM events").fetchone()
    parts = {name: len(list((tmp_path / name / "store" / "events").rglob("*.parquet"))) for name in cases}
    assert parts["split"] > parts["whole"] + 2, parts  # the ranges wrote their own parts


def test_a_big_evtx_file_in_a_disk_image_goes_in_ranges_too(tmp_path: Path) -> None:
    """An image's file system seeks (``open_seekable``): its big event log is split like one in a
    folder, with the findings, coverage and manifest of a whole parse."""
    pytest.importorskip("dissect.target", reason="the images extra is not installed")
    from exhunt.api import ScanOptions, scan
    from exhunt.evidence.manifest import load
    from tests.evidence.disk_images import fat16_volume, mbr_disk

    header, chunks = _sysmon()
    log = synthetic_header(header, len(chunks)) + _broken(chunks, records={6})
    image = tmp_path / "exch01.img"
    image.write_bytes(mbr_disk(fat16_volume({"Windows/System32/winevt/Logs/Security.evtx": log})))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "process.yml").write_text(PROCESS_RULE)
    docs = {}
    for name, jobs, split_size in (("whole", 1, 1 << 30), ("split", 2, 2 * CHUNK)):
        docs[name] = scan([image], ScanOptions(out=tmp_path / name, quiet=True, progress=False, host="EXCH01",
                                               jobs=jobs, split_size=split_size, sigma=[rules])).document
    assert docs["whole"].findings and docs["split"].findings == docs["whole"].findings
    assert docs["split"].hosts == docs["whole"].hosts
    manifests = {name: [(r.rel, r.sha256) for r in load(tmp_path / name)] for name in docs}
    assert manifests["split"] == manifests["whole"]
    parts = {name: len(list((tmp_path / name / "store" / "events").rglob("*.parquet"))) for name in docs}
    assert parts["split"] > parts["whole"] + 2, parts
