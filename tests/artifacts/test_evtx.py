"""EVTX: every shared file parses, counts match a plain dump, damaged chunks are warnings."""

from __future__ import annotations

import io
import shutil
import struct
from pathlib import Path

import pytest

from exhunt.artifacts.evtx import CHUNK, FILE_HEADER, MAGIC, EvtxLog
from tests.conftest import shared_path
from tests.helpers import parse_paths


def plain_dump_count(path: Path) -> int:
    """Records as a bare evtx dump sees them (continuing past a bad chunk like the parser does)."""
    from evtx import PyEvtxParser

    records = PyEvtxParser(str(path)).records_json()
    count = 0
    while True:
        try:
            next(records)
        except StopIteration:
            return count
        except RuntimeError:
            continue
        count += 1


def test_claimed_by_magic_not_name() -> None:
    assert EvtxLog.claims("logs/whatever.bin", MAGIC + b"\x00" * 100)
    assert not EvtxLog.claims("security.evtx", b"ElfChnk\x00" + b"\x00" * 100)


@pytest.mark.slow
def test_every_shared_evtx_parses_with_dump_counts(tmp_path: Path) -> None:
    root = shared_path("evtx")
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.evtx"))
    assert len(rels) >= 277
    con = parse_paths(tmp_path, root, rels)
    files = dict(con.execute("SELECT path, artifact FROM files").fetchall())
    assert set(files.values()) == {"evtx"}
    per_file = dict(con.execute("SELECT path, count(*) FROM events GROUP BY path").fetchall())
    for rel in rels:
        assert per_file.get(rel, 0) == plain_dump_count(root / rel), rel
    warnings = con.execute("SELECT path, message FROM warnings").fetchall()
    assert not [w for w in warnings if "parser error" in w[1]], warnings
    assert con.execute("SELECT count(*) FROM events WHERE ts IS NULL OR event_id IS NULL").fetchone()[0] == 0
    assert con.execute("SELECT count(DISTINCT source) FROM events").fetchone()[0] == 1


def test_exchange_management_samples(tmp_path: Path) -> None:
    root = shared_path("evtx", "exchange-management")
    rels = sorted(p.name for p in root.glob("*.evtx"))
    con = parse_paths(tmp_path, root, rels)
    row = con.execute(
        "SELECT channel, provider, event_id, computer, \"user\", kind,"
        " json_extract_string(fields, '$.MemberName'), json_extract_string(fields, '$.Provider_Name')"
        " FROM events WHERE event_id = 4756 LIMIT 1"
    ).fetchone()
    assert row[:6] == ("Security", "Microsoft-Windows-Security-Auditing", 4756, "rootdc1.offsec.lan",
                       "admmig", "event")
    assert row[6].startswith("CN=admin-hacker") and row[7] == row[1]
    sysmon = con.execute(
        "SELECT ts, target_filename, image, json_extract_string(fields, '$.UtcTime'),"
        " json_extract_string(fields, '$.SystemTime') FROM events WHERE event_id = 11"
    ).fetchone()
    assert sysmon[1].endswith("TransportRoles\\Shared\\agents.config")
    assert sysmon[0].isoformat() == "2021-06-04T09:30:48.170000+00:00"  # UtcTime preferred ...
    assert sysmon[3:] == ("2021-06-04 09:30:48.170", "2021-06-04T09:30:48.170578Z")  # ... both kept


def test_webshell_process_trace_is_a_process_row(tmp_path: Path) -> None:
    root = shared_path("evtx", "evtx-attack-samples", "Lateral Movement")
    con = parse_paths(tmp_path, root, ["LM_typical_IIS_webshell_sysmon_1_10_traces.evtx"])
    rows = con.execute(
        "SELECT image, command_line FROM events WHERE kind = 'process' AND parent_image ILIKE '%\\w3wp.exe'"
    ).fetchall()
    assert any(image.lower().endswith("\\cmd.exe") and "net" in cmd.lower() for image, cmd in rows), rows


def _multi_chunk_sample() -> Path:
    root = shared_path("evtx", "evtx-attack-samples")
    for path in sorted(root.rglob("*.evtx"), key=lambda p: -p.stat().st_size):
        if path.stat().st_size >= FILE_HEADER + 4 * CHUNK:
            return path
    pytest.skip("no multi-chunk EVTX sample")


@pytest.mark.parametrize(
    ("where", "damage", "lost", "message"),
    [
        (0, b"XXXXXXXX", True, "chunk 1"),  # chunk signature: the parser drops that chunk
        (0x7C, None, False, "header checksum mismatch"),  # header CRC32: records kept, warned
        (0x300, b"\xff" * 0x40, True, "chunk"),  # record area overwritten: chunk lost, warned
    ],
)
def test_damaged_chunk_keeps_other_chunks_and_warns(
    tmp_path: Path, where: int, damage: bytes | None, lost: bool, message: str
) -> None:
    source = _multi_chunk_sample()
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    target = evidence / "damaged.evtx"
    shutil.copyfile(source, target)
    data = bytearray(target.read_bytes())
    offset = FILE_HEADER + CHUNK + where
    if damage is None:
        data[offset] ^= 0xFF
    else:
        data[offset : offset + len(damage)] = damage
    target.write_bytes(bytes(data))
    total = plain_dump_count(source)
    first, last = struct.unpack_from("<QQ", source.read_bytes(), FILE_HEADER + CHUNK + 24)
    con = parse_paths(tmp_path, evidence, ["damaged.evtx"])
    ids = {r[0] for r in con.execute("SELECT record_id FROM events").fetchall()}
    chunk1 = {i for i in ids if first <= i <= last}
    if lost:
        assert not chunk1 and 0 < len(ids) < total
    else:
        assert len(ids) == total
    assert max(ids) > last, "records of the chunks after the damaged one are kept"
    warnings = con.execute("SELECT message, \"offset\" FROM warnings").fetchall()
    assert any(message in m for m, _ in warnings), warnings
    assert any(o == FILE_HEADER + CHUNK for _, o in warnings), warnings


def test_not_evtx_after_magic_is_a_warning(tmp_path: Path) -> None:
    from tests.helpers import parse_bytes

    con = parse_bytes(tmp_path, "x.evtx", MAGIC + b"\x01" * 200)
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM warnings").fetchone()[0] >= 1


def test_fast_rows_equal_the_reference_mapping(tmp_path: Path) -> None:
    """The tuple-per-event path writes exactly the rows ``event_record`` (the readable mapping) gives."""
    import orjson
    import pyarrow as pa
    from evtx import PyEvtxParser

    from exhunt.artifacts.winevent import event_record
    from exhunt.events.schema import EVENTS

    root = shared_path("evtx")
    rels = ["exchange-management/" + p.name for p in sorted((root / "exchange-management").glob("*.evtx"))]
    rels += sorted(p.relative_to(root).as_posix() for p in (root / "evtx-attack-samples").rglob("*.evtx"))[:40]
    con = parse_paths(tmp_path, root, rels)
    expected = []
    for rel in rels:
        for record in PyEvtxParser(str(root / rel)).records_json():
            row = event_record(orjson.loads(record["data"])["Event"])
            expected.append({**row, "host": "h", "path": rel, "source": "evtx"})
    reference = pa.Table.from_pylist(expected, schema=EVENTS)
    con.register("reference", reference)
    columns = ", ".join(f'"{f.name}"' for f in EVENTS)
    got = con.execute(f"SELECT {columns} FROM events ORDER BY path, record_id").fetchall()
    want = con.execute(f"SELECT {columns} FROM reference ORDER BY path, record_id").fetchall()
    assert len(got) == len(want) > 100
    assert got == want


@pytest.mark.parametrize("hint", [0, 1, 99_999, 100_000, 100_001, 10_000_000])
def test_read_upto_whatever_the_listed_size(hint: int) -> None:
    """The listed size is only a first read size: a file that grew or shrank is read whole."""
    import io

    from exhunt.artifacts.evtx import _read_upto

    data = bytes(range(256)) * 400 + b"end"  # 102,403 bytes
    stream = io.BufferedReader(io.BytesIO(data), buffer_size=1 << 20)
    assert _read_upto(stream, 1 << 20, hint) == data
    stream = io.BufferedReader(io.BytesIO(data), buffer_size=4096)
    assert _read_upto(stream, 70_000, hint) == data[:70_000]


@pytest.mark.parametrize("cut_records", [0, 3])
def test_file_cut_inside_a_chunk_keeps_its_complete_records(tmp_path: Path, cut_records: int) -> None:
    """A copy cut short mid-chunk: the parser alone drops the whole last chunk without a word; we
    warn with the offset and read every record that is complete (``cut_records``: also cut into the
    middle of the records, so the last few are lost, not all of the chunk's)."""
    source = _multi_chunk_sample()
    data = source.read_bytes()
    chunks = 1 + max(n for n in range((len(data) - FILE_HEADER) // CHUNK)
                     if data.startswith(b"ElfChnk\x00", FILE_HEADER + n * CHUNK))  # zero-filled space after
    last = FILE_HEADER + (chunks - 1) * CHUNK
    free = struct.unpack_from("<I", data, last + 48)[0]
    cut = last + free + 10 if not cut_records else last + 512 + (free - 512) // 2
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "cut.evtx").write_bytes(data[:cut])
    total = plain_dump_count(source)
    assert plain_dump_count(evidence / "cut.evtx") < total, "the parser alone loses the cut chunk"
    con = parse_paths(tmp_path, evidence, ["cut.evtx"])
    kept = con.execute("SELECT count(*) FROM events").fetchone()[0]
    first_of_last = struct.unpack_from("<Q", data, last + 24)[0]
    in_last = con.execute("SELECT count(*) FROM events WHERE record_id >= ?", [first_of_last]).fetchone()[0]
    if cut_records:
        assert in_last > 0 and kept < total
    else:
        assert kept == total
    warnings = con.execute("SELECT message, \"offset\" FROM warnings").fetchall()
    assert any(f"into chunk {chunks - 1}" in m and o == cut for m, o in warnings), warnings
    assert (evidence / "cut.evtx").read_bytes() == data[:cut], "the evidence is never written"


@pytest.mark.parametrize(("content", "says"), [(b"", "empty"), (b"hello\n", "without the EVTX signature")])
def test_misnamed_evtx_is_a_warning(tmp_path: Path, content: bytes, says: str) -> None:
    from tests.helpers import parse_bytes

    con = parse_bytes(tmp_path, "Security.evtx", content)
    assert con.execute("SELECT artifact FROM files").fetchone()[0] is None
    messages = [m for (m,) in con.execute("SELECT message FROM warnings").fetchall()]
    assert any(says in m for m in messages), messages


def test_system_level_is_kept_for_sigma(tmp_path: Path) -> None:
    """``Level`` is a System value Sigma rules match on (``Level: Error``): it must reach ``fields``."""
    import orjson
    from evtx import PyEvtxParser

    source = _multi_chunk_sample()
    levels = {}
    for record in PyEvtxParser(str(source)).records_json():
        system = orjson.loads(record["data"])["Event"]["System"]
        levels[system["EventRecordID"]] = system.get("Level")
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    shutil.copyfile(source, evidence / "a.evtx")
    con = parse_paths(tmp_path, evidence, ["a.evtx"])
    got = dict(con.execute("SELECT record_id, json_extract(fields, '$.Level')::INTEGER FROM events").fetchall())
    assert got == levels and set(levels.values()) - {None}


def test_file_read_whole_is_parsed_from_its_own_bytes() -> None:
    """A file the worker read whole (``open_hashing(data=...)``) reaches the parser as those very
    bytes, not a copy made through the stream (~50 us per 137 KB file), and the stream is left at
    its end so the drain reads nothing more; the hashes are the whole file's."""
    import hashlib

    from exhunt.artifacts.evtx import chunk_pass
    from exhunt.artifacts.files import drain, open_hashing

    data = _multi_chunk_sample().read_bytes()
    stream, raw = open_hashing(None, data=data)  # type: ignore[arg-type]  # no file: read already
    stream.peek(4096)  # as the worker sniffs the head
    with chunk_pass(_Context(len(data)), stream) as (source, selection):  # type: ignore[arg-type]
        assert selection is None and isinstance(source, io.BytesIO) and source.getvalue() is data
    drain(stream)
    assert raw.bytes_read == len(data) and raw.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    assert stream.read() == b""


class _Context:
    """What ``chunk_pass`` needs of a parse context: the listed size and the warnings."""

    def __init__(self, size: int) -> None:
        self.file = type("File", (), {"size": size})()
        self.seen: list[tuple[str, int | None]] = []

    def warn(self, message: str, offset: int | None = None) -> None:
        self.seen.append((message, offset))


def _pass(data: bytes, limit: int | None = None, listed: int | None = None) -> tuple:
    """Everything ``chunk_pass`` decides for ``data`` read through a stream: held whole, or (a
    ``limit`` below its size) streamed chunk by chunk; and whether the parser's copy spilled to disk.
    ``listed``: the size the listing gave, when the file grew since."""
    import io
    from unittest import mock

    from exhunt.artifacts import evtx

    ctx = _Context(len(data) if listed is None else listed)
    stream = io.BufferedReader(io.BytesIO(data), buffer_size=8192)
    with (mock.patch.object(evtx, "in_memory_limit", return_value=limit or len(data) + 1),
          evtx.chunk_pass(ctx, stream) as (source, selection)):  # type: ignore[arg-type]
        source.seek(0)
        copy = source.read()
        spilled = bool(getattr(source, "_rolled", False))
        facts = None if selection is None else (
            selection.data is not None, selection.numbers, selection.skipped_records, selection.first_written,
            selection.last_written, selection.last_before, selection.by_first_id)
    assert stream.read() == b"", "every byte read: the hashes are the whole file's"
    return (ctx.seen, copy, facts), spilled


@pytest.mark.parametrize("literals", [None, ("lsass.exe",), ("no such text anywhere",), ("",)])
@pytest.mark.parametrize("damage", ["none", "checksums", "cut", "zero tail"])
def test_a_file_streamed_chunk_by_chunk_is_read_as_one_held_whole(literals: tuple[str, ...] | None,
                                                                  damage: str) -> None:
    """A file larger than the memory budget is never held whole: its chunks stream past and only the
    parser's copy is kept (spooled). The warnings, the triage selection and the copy's bytes are the
    same as for the file held whole, whatever the damage and whichever chunks triage keeps (some,
    none, every one: then the copy is the file itself)."""
    from exhunt.artifacts import evtx_chunks

    data = bytearray(_multi_chunk_sample().read_bytes())
    if damage == "checksums":
        data[FILE_HEADER + CHUNK + 0x300: FILE_HEADER + CHUNK + 0x340] = b"\xff" * 0x40  # records CRC
        data[FILE_HEADER + 2 * CHUNK: FILE_HEADER + 2 * CHUNK + 8] = b"XXXXXXXX"  # a bad signature
        data[20:24] = b"\xff\xff\xff\xff"  # the file header's checksum
        data += bytes(CHUNK) + bytes(600)  # an unused chunk, then zero-filled space too short to be one
    elif damage == "cut":  # the last chunk in use cut inside its records
        last = max(FILE_HEADER + n * CHUNK for n in range((len(data) - FILE_HEADER) // CHUNK)
                   if data.startswith(b"ElfChnk\x00", FILE_HEADER + n * CHUNK))
        del data[last + 512 + (struct.unpack_from("<I", data, last + 48)[0] - 512) // 2:]
    elif damage == "zero tail":
        data += bytes(1000)
    try:
        evtx_chunks.configure(literals)
        whole, _ = _pass(bytes(data))
        streamed, spilled = _pass(bytes(data), limit=CHUNK)
        grown, _ = _pass(bytes(data), limit=CHUNK, listed=FILE_HEADER)  # listed small, read past the limit
    finally:
        evtx_chunks.configure(None)
    assert streamed == whole == grown
    warnings, copy, facts = whole
    if damage == "checksums":
        assert len(warnings) >= 3
    if damage == "cut":
        assert "into chunk" in warnings[0][0] and warnings[0][1] == len(data)
    if facts is None:  # the file as it is (padded when cut)
        assert copy[: len(data)] == bytes(data) and not copy[len(data):].strip(b"\x00")
    if len(copy) > CHUNK:
        assert spilled, "a copy larger than the budget is on disk, not in memory"


@pytest.mark.parametrize(("keep", "message", "offset"), [
    # (what of the file is kept: the header and chunks, a zero-filled one among them), the warning, where
    (lambda h, c: h + c[0] + bytes(CHUNK) + b"".join(c[2:]), "chunk 1: zero-filled, though the file header counts",
     FILE_HEADER + CHUNK),
    (lambda h, c: h + b"".join(c[:2]), "the file ends after 2 chunks although its header counts",
     FILE_HEADER + 2 * CHUNK),
    (lambda h, c: h, "the file ends after 0 chunks although its header counts", FILE_HEADER),
], ids=["zero-filled chunk", "cut at a chunk boundary", "cut to its header"])
def test_records_lost_with_no_damaged_chunk_are_warned(tmp_path: Path, keep, message: str,  # type: ignore[no-untyped-def]
                                                       offset: int) -> None:
    """A chunk wiped to zeros, or chunks missing from the end, look like unused space unless the file
    header's chunk count is read: the records they held are lost, and the warning says so (the host
    is then not clean on that file: ``coverage.unread``)."""
    data = _counted_sample().read_bytes()
    counted = struct.unpack_from("<H", data, 42)[0]
    chunks = [data[FILE_HEADER + n * CHUNK : FILE_HEADER + (n + 1) * CHUNK] for n in range(counted)]
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "lost.evtx").write_bytes(keep(data[:FILE_HEADER], chunks))
    con = parse_paths(tmp_path, evidence, ["lost.evtx"])
    warnings = con.execute("SELECT message, \"offset\" FROM warnings").fetchall()
    assert [(m, o) for m, o in warnings if message in m] == [(next(m for m, _ in warnings if message in m), offset)]
    intact = parse_paths(tmp_path / "intact", _copy(tmp_path / "intact-ev", data), ["whole.evtx"])
    assert intact.execute("SELECT count(*) FROM warnings").fetchone() == (0,)


def _copy(folder: Path, data: bytes) -> Path:
    folder.mkdir()
    (folder / "whole.evtx").write_bytes(data)
    return folder


def _counted_sample() -> Path:
    """A shared sample whose header counts 4 chunks or more, all of them in the file."""
    for path in sorted(shared_path("evtx").rglob("*.evtx"), key=lambda p: p.stat().st_size):
        head = path.read_bytes()[:FILE_HEADER]
        counted = struct.unpack_from("<H", head, 42)[0] if head.startswith(MAGIC) else 0
        if counted >= 4 and path.stat().st_size >= FILE_HEADER + counted * CHUNK:
            return path
    pytest.skip("no EVTX sample counting 4 chunks")
