"""EVTX triage: a chunk is parsed when it holds a literal (UTF-16LE, caseless); the records of the
others are counted from their headers; of a parsed chunk, the records whose JSON holds a literal are
stored, the others counted; damaged chunks are always parsed; --index full parses and stores all."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exhunt.artifacts import evtx_chunks
from exhunt.artifacts.evtx import CHUNK, FILE_HEADER, NOT_STORED, Unstored
from tests.artifacts.test_evtx import _multi_chunk_sample, plain_dump_count
from tests.helpers import caseless_spellings, parse_paths


@pytest.fixture
def literals() -> Iterator[None]:
    yield
    evtx_chunks.configure(None)


def test_literals_match_utf16_caseless(literals: None) -> None:
    evtx_chunks.configure(("\\w3wp.exe",))
    assert evtx_chunks.chunk_matches("C:\\Windows\\W3WP.EXE -ap".encode("utf-16-le"))
    assert evtx_chunks.chunk_matches(b"\x01" + "c:\\windows\\w3wp.exe".encode("utf-16-le"))  # odd offset
    assert not evtx_chunks.chunk_matches("C:\\Windows\\w3wpxexe".encode("utf-16-le"))
    assert not evtx_chunks.chunk_matches("C:\\Windows\\w3wp.ex".encode("utf-16-le"))
    evtx_chunks.configure(())
    assert not evtx_chunks.chunk_matches("anything".encode("utf-16-le"))
    evtx_chunks.configure(None)
    assert evtx_chunks.chunk_matches(b"")



def test_records_match_their_values_as_json_writes_them(literals: None) -> None:
    evtx_chunks.configure(("\\lsass.exe", 'say "hi"', "attrib"))
    assert evtx_chunks.record_matches(orjson.dumps({"Event": {"Image": "C:\\Windows\\LSASS.EXE"}}).decode())
    assert evtx_chunks.record_matches(orjson.dumps({"Event": {"Data": 'they Say "Hi"'}}).decode())
    assert evtx_chunks.record_matches(orjson.dumps({"Event": {"Data": "ATTRIB +h"}}).decode())
    # the parser's own keys are no values: "#attributes" holds "attrib" in every record
    assert not evtx_chunks.record_matches('{"Event":{"#attributes":{"xmlns":"x"},"Data":{"#text":"lsass.exe"}}}')
    evtx_chunks.configure(())
    assert not evtx_chunks.record_matches('{"Event":{}}')
    evtx_chunks.configure(None)
    assert evtx_chunks.record_matches('{"Event":{}}') and not evtx_chunks.filters_records()


@settings(max_examples=300, deadline=None)
@given(literal=st.text(min_size=1, max_size=12), before=st.binary(max_size=40), after=st.binary(max_size=40),
       data=st.data())
def test_a_chunk_holding_a_literal_always_matches(literal: str, before: bytes, after: bytes,
                                                   data: st.DataObject) -> None:
    """The filter may select more chunks than hold a literal, never fewer: any text, any case of its
    ASCII letters or a character SQL takes for one (``İ`` for ``i``), at any offset among any bytes
    (deleting NULs keeps every occurrence)."""
    written = data.draw(caseless_spellings(literal))
    try:
        evtx_chunks.configure((literal,))
        assert evtx_chunks.chunk_matches(before + written.encode("utf-16-le", "surrogatepass") + after)
    finally:
        evtx_chunks.configure(None)


@settings(max_examples=300, deadline=None)
@given(literal=st.text(min_size=1, max_size=12), before=st.text(max_size=20), after=st.text(max_size=20),
       data=st.data())
def test_a_record_holding_a_literal_always_matches(literal: str, before: str, after: str, data: st.DataObject) -> None:
    """Of a record's JSON text likewise: a value holding the literal spelled as SQL matches it."""
    value = before + data.draw(caseless_spellings(literal)) + after
    try:
        evtx_chunks.configure((literal,))
        assert evtx_chunks.record_matches(orjson.dumps({"Event": {"EventData": {"Data": value}}}).decode())
    finally:
        evtx_chunks.configure(None)


@pytest.mark.parametrize("literal", ["İ", "mİmİkatz", "\u212aerberos", "proceſſ"])
def test_a_literal_spelled_with_a_folding_character_matches_its_letters(literal: str) -> None:
    """SQL compares ``İ`` in a rule as ``i`` (``exhunt.sqlfold``): the chunk and the record filters
    select a text holding the plain letters too (hypothesis found a record literal 'İ' missed)."""
    plain = literal.replace("İ", "i").replace("\u212a", "K").replace("ſ", "s")
    try:
        evtx_chunks.configure((literal,))
        assert evtx_chunks.chunk_matches(b"\0" * 8 + f"x {plain.upper()} y".encode("utf-16-le"))
        assert evtx_chunks.record_matches(orjson.dumps({"Event": {"EventData": {"Data": f"x {plain} y"}}}).decode())
    finally:
        evtx_chunks.configure(None)


def _copy(tmp_path: Path) -> tuple[Path, bytes]:
    source = _multi_chunk_sample()
    evidence = tmp_path / "evidence"
    evidence.mkdir(exist_ok=True)
    shutil.copyfile(source, evidence / "sample.evtx")
    return evidence, source.read_bytes()


def _literal_of_some_chunks(data: bytes) -> tuple[str, set[int]]:
    """A text (as UTF-16LE, any case) that some of the sample's chunks hold and others do not."""
    count = (len(data) - FILE_HEADER) // CHUNK
    chunks = [data[FILE_HEADER + i * CHUNK: FILE_HEADER + (i + 1) * CHUNK] for i in range(count)]
    used = {i for i, c in enumerate(chunks) if c.startswith(b"ElfChnk")}
    for word in ("DestAddress", "svchost.exe", "lsass.exe", "cmd.exe", "powershell", "TermService"):
        needle = word.lower().encode("utf-16-le")
        having = {i for i in used if needle in chunks[i].lower()}
        if having and having != used:
            return word, having
    pytest.skip("no text present in some chunks only")


def _records_holding(path: Path, word: str) -> tuple[set[int], set[int]]:
    """Event record ids (System/EventRecordID, as stored) and record header ids of the records whose
    values (the parser's JSON, its own keys aside) hold ``word``, any ASCII case."""
    from evtx import PyEvtxParser

    events, headers = set(), set()
    for record in PyEvtxParser(str(path)).records_json():
        text = record["data"].replace('"#attributes":', "").replace('"#text":', "")
        if word.lower() in text.lower():
            events.add(orjson.loads(record["data"])["Event"]["System"]["EventRecordID"])
            headers.add(record["event_record_id"])
    return events, headers


def test_only_matching_records_are_stored_and_every_record_counted(tmp_path: Path, literals: None) -> None:
    evidence, data = _copy(tmp_path)
    word, having = _literal_of_some_chunks(data)
    evtx_chunks.configure((word,))
    con = parse_paths(tmp_path / "triage", evidence, ["sample.evtx"])
    stored = {r for (r,) in con.execute("SELECT record_id FROM events").fetchall()}
    in_chunks = set()
    for number in having:
        first, last = struct.unpack_from("<QQ", data, FILE_HEADER + number * CHUNK + 24)
        in_chunks |= set(range(first, last + 1))
    holding, headers = _records_holding(evidence / "sample.evtx", word)
    assert stored == holding
    assert 0 < len(headers) < len(in_chunks) and headers <= in_chunks
    not_stored = con.execute("SELECT sum(CAST(value AS BIGINT)) FROM host_facts WHERE fact = ?",
                             [NOT_STORED]).fetchone()[0]
    assert not_stored > 0
    assert len(stored) + not_stored == plain_dump_count(evidence / "sample.evtx")
    evtx_chunks.configure(None)
    full = parse_paths(tmp_path / "full", evidence, ["sample.evtx"])
    assert stored < {r for (r,) in full.execute("SELECT record_id FROM events").fetchall()}
    assert full.execute("SELECT count(*) FROM events").fetchone()[0] == plain_dump_count(evidence / "sample.evtx")
    assert full.execute("SELECT count(*) FROM host_facts WHERE fact = ?", [NOT_STORED]).fetchone()[0] == 0


def test_damaged_chunk_is_parsed_and_warned_as_in_full(tmp_path: Path, literals: None) -> None:
    evidence, data = _copy(tmp_path)
    damaged = bytearray(data)
    damaged[FILE_HEADER + CHUNK + 0x300: FILE_HEADER + CHUNK + 0x340] = b"\xff" * 0x40
    (evidence / "sample.evtx").write_bytes(bytes(damaged))
    evtx_chunks.configure(("no such text anywhere",))
    triage = parse_paths(tmp_path / "triage", evidence, ["sample.evtx"])
    evtx_chunks.configure(None)
    full = parse_paths(tmp_path / "full", evidence, ["sample.evtx"])
    query = "SELECT message, \"offset\" FROM warnings ORDER BY ALL"
    assert triage.execute(query).fetchall() == full.execute(query).fetchall()
    assert any(o == FILE_HEADER + CHUNK for _, o in full.execute(query).fetchall())


def test_text_past_the_free_space_offset_selects_no_chunk(tmp_path: Path, literals: None) -> None:
    """Bytes past a chunk's free-space offset (slack of an earlier use) are never parsed into records,
    so a literal there must not make the chunk parsed; the same literal inside the records does."""
    evidence, data = _copy(tmp_path)
    slack = bytearray(data)
    word = "exhunt slack marker"
    number = next(n for n in range((len(data) - FILE_HEADER) // CHUNK)
                  if struct.unpack_from("<I", data, FILE_HEADER + n * CHUNK + 48)[0] < CHUNK - 200)
    start = FILE_HEADER + number * CHUNK
    free = struct.unpack_from("<I", data, start + 48)[0]
    text = word.upper().encode("utf-16-le")
    slack[start + free + 8: start + free + 8 + len(text)] = text
    (evidence / "sample.evtx").write_bytes(bytes(slack))
    evtx_chunks.configure((word,))
    triage = parse_paths(tmp_path / "triage", evidence, ["sample.evtx"])
    assert triage.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert triage.execute("SELECT count(*) FROM warnings").fetchone()[0] == 0  # checksums still match
    evtx_chunks.configure(None)
    full = parse_paths(tmp_path / "full", evidence, ["sample.evtx"])
    assert full.execute("SELECT count(*) FROM events WHERE fields ILIKE ?", [f"%{word}%"]).fetchone()[0] == 0
    evtx_chunks.configure((word,))
    assert evtx_chunks.chunk_matches(text)  # the text itself is a match: only its place excludes it


def test_unstored_records_keep_count_and_written_range() -> None:
    """A skipped record counts; its written time (as the parser renders it) widens the range; a zero
    time (cleared logs) or none is no time, as in the skipped chunks' record headers."""
    unstored = Unstored()
    for timestamp in ("2019-07-19T14:53:47.2393Z UTC", "1601-01-01T00:00:00Z UTC", None,
                      "2019-07-19T14:53:47.239318Z UTC", "2019-07-18T01:02:03Z UTC", "garbage"):
        unstored.add_record(timestamp)
    assert unstored.records == 6
    assert unstored.first == datetime(2019, 7, 18, 1, 2, 3, tzinfo=UTC)
    assert unstored.last == datetime(2019, 7, 19, 14, 53, 47, 239318, tzinfo=UTC)


def test_low_bytes_are_the_strided_slice() -> None:
    """The chunk filter's low bytes (16-bit units narrowed with numpy) are exactly ``buffer[start:end:2]``
    for every span, odd or even, empty or up to the buffer's end: no byte past ``end`` is read."""
    import random

    from exhunt.artifacts.evtx_chunks import low_bytes_of

    rng = random.Random(7)
    for _ in range(3000):
        buffer = rng.randbytes(rng.choice((rng.randint(0, 300), rng.randint(6000, 20_000))))
        start = rng.randint(0, len(buffer))
        end = rng.randint(start, len(buffer))
        assert bytes(low_bytes_of(buffer, start, end)) == buffer[start:end:2], (len(buffer), start, end)


def test_literals_set_again_are_not_compiled_again() -> None:
    """A Dask worker sets the scan's literals for each task and its own back after: each set is
    compiled once per process, not at every task."""
    before = evtx_chunks.current()
    try:
        evtx_chunks.configure(("mimikatz", "lsass"))
        first = (evtx_chunks._DATABASE, evtx_chunks._RECORDS)
        evtx_chunks.configure(None)
        assert evtx_chunks._DATABASE is None and evtx_chunks._RECORDS is None
        evtx_chunks.configure(("mimikatz", "lsass"))
        assert evtx_chunks._DATABASE is first[0] and evtx_chunks._RECORDS is first[1]
        assert evtx_chunks.chunk_matches("x mimikatz y".encode("utf-16-le"))
        assert not evtx_chunks.chunk_matches("nothing here".encode("utf-16-le"))
    finally:
        evtx_chunks.configure(before)


def test_a_set_compiled_once_is_loaded_from_the_disk_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           literals: None) -> None:
    """The folded letters make the chunk patterns slow to compile: a later process loads them."""
    from exhunt.artifacts import linefilter

    monkeypatch.setenv("EXHUNT_CACHE", str(tmp_path))
    monkeypatch.setattr(evtx_chunks, "_COMPILED", {})
    evtx_chunks.configure(("mimikatz", "lsass"))
    assert len(list((tmp_path / "hyperscan").glob("*.hsdb"))) == 2  # the chunks' and the records' databases
    evtx_chunks.configure(None)
    monkeypatch.setattr(evtx_chunks, "_COMPILED", {})  # a new process
    monkeypatch.setattr(linefilter, "_database", lambda *a: pytest.fail("compiled again"))
    evtx_chunks.configure(("mimikatz", "lsass"))
    assert evtx_chunks.chunk_matches("x m\u0130m\u0130\u212aatz y".encode("utf-16-le"))
    assert not evtx_chunks.chunk_matches("nothing here".encode("utf-16-le"))
