"""Windows EVTX files through the ``evtx`` package (the Rust parser), every record, every channel.

Claimed by the file magic ``ElfFile\\0`` whatever the name. The bytes are read once through the
pipeline's hashing stream (into memory, or a private temporary file when large) so the evidence
hash and the parsed bytes are the same bytes, and any evidence source works, not only folders.

Damage is data: the Rust parser skips a chunk it cannot read by raising mid-iteration; we catch
it, warn with the chunk and the last good record id, and call ``next()`` again to go on with the
next chunk (a bare ``for`` loop would lose the rest of the file). The parser does not verify
CRC32 checksums, so we do: a chunk whose header or record checksum does not match is reported
(its records are still kept, marked only by the warning, because a bad checksum often means a
log that was being written, not forged data). A file cut inside a chunk is warned about and its
complete records still read (``pad_cut_chunk``); the parser alone would drop the chunk silently.

Triage (the default index): only the chunks holding a text some detection needs are parsed
(``exhunt.artifacts.evtx_chunks``); the others count their records from their headers. Of the
parsed records, only those whose JSON text holds such a text are mapped and stored; the others
are counted too, with their written times (``Unstored``).
"""

from __future__ import annotations

import io
import re
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any, BinaryIO

import orjson

from exhunt.artifacts import evtx_chunks
from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.winevent import ROW_COLUMNS, evtx_event_values

MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
FILE_HEADER = 4096
CHUNK = 65536
MAX_IN_MEMORY = 256 << 20  # larger files are spooled to a private temporary file
ZERO_CHUNK = bytes(CHUNK)
MAX_CONSECUTIVE_ERRORS = 1000  # a parser stuck on one spot must not loop for ever
CHUNK_NUMBER_RE = re.compile(r"chunk number (\d+)")
FIRST_ID_RE = re.compile(r"record IDs (\d+)\.\.")
COLUMNS = (*ROW_COLUMNS, "host", "path", "source")  # of the tuples handed to the store
RECORD_ID = ROW_COLUMNS.index("record_id")
TS = ROW_COLUMNS.index("ts")
# host facts of the records triage did not store (findings.coverage.host_coverage adds them in)
NOT_STORED = "evtx_records_not_stored"
FIRST_NOT_STORED, LAST_NOT_STORED = "evtx_first_not_stored", "evtx_last_not_stored"
FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


class EvtxLog(Artifact):
    """A Windows XML event log file (.evtx)."""

    name = "evtx"
    head_start = rb"elffile"
    is_log = True
    is_event_log = True

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        return head.startswith(MAGIC)

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        with _materialize(stream, ctx.file.size) as data:
            must_parse = pad_cut_chunk(ctx, data)
            data.seek(0)
            must_parse |= verify_checksums(ctx, data)
            selection = evtx_chunks.select(data, must_parse)
            source: IO[bytes] = data
            unstored = Unstored()
            if selection is not None:
                unstored.add_chunks(selection)
                if selection.data is None:
                    not_stored(ctx, unstored)
                    return
                source = selection.data
            source.seek(0)
            events = ctx.writer.table("events")
            extra = (ctx.host, ctx.file.rel, "evtx")
            count = 0
            skip = unstored if evtx_chunks.filters_records() else None
            try:
                for record_id, event, no_at_keys in iter_events(ctx, source, selection, skip):
                    try:
                        values = evtx_event_values(event, no_at_keys)
                    except (TypeError, ValueError, AttributeError) as exc:
                        ctx.warn(f"record {record_id}: unreadable event structure ({exc})")
                        continue
                    if values[RECORD_ID] is None:
                        values = (*values[:RECORD_ID], record_id, *values[RECORD_ID + 1 :])
                    if values[TS] is None:
                        ctx.warn(f"record {record_id}: no readable TimeCreated/SystemTime")
                    events.add_values(COLUMNS, values + extra)  # no dict per event: the hot path
                    count += 1
            finally:  # what was read and skipped counts even when the parse stops early
                ctx.events += count
                not_stored(ctx, unstored)


@dataclass
class Unstored:
    """The records triage did not store: how many, and the range of their written times (record
    headers: of skipped chunks, and the parser's ``timestamp`` of parsed records without a literal)."""

    records: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add_chunks(self, selection: evtx_chunks.Selection) -> None:
        self.records += selection.skipped_records
        for filetime in (selection.first_written, selection.last_written):
            self._written(filetime_datetime(filetime))

    def add_record(self, timestamp: object) -> None:
        """One parsed record left out; ``timestamp``: its written time as the parser renders it."""
        self.records += 1
        if isinstance(timestamp, str):
            with suppress(ValueError):
                when = datetime.fromisoformat(timestamp.removesuffix(" UTC"))
                self._written(when if when > FILETIME_EPOCH else None)  # a zero time is no time

    def _written(self, when: datetime | None) -> None:
        if when is None:
            return
        self.first = when if self.first is None or when < self.first else self.first
        self.last = when if self.last is None or when > self.last else self.last


def not_stored(ctx: ParseContext, unstored: Unstored) -> None:
    """Coverage of the records triage did not store, kept as host facts the coverage adds in."""
    if not unstored.records:
        return
    ctx.events += unstored.records
    ctx.fact(NOT_STORED, str(unstored.records))
    for fact, when in ((FIRST_NOT_STORED, unstored.first), (LAST_NOT_STORED, unstored.last)):
        if when is not None:
            ctx.fact(fact, when.isoformat())


def filetime_datetime(filetime: int | None) -> datetime | None:
    if not filetime:
        return None
    try:
        return FILETIME_EPOCH + timedelta(microseconds=filetime // 10)
    except OverflowError:
        return None


@contextmanager
def _materialize(stream: BinaryIO, size_hint: int = 0) -> Iterator[IO[bytes]]:
    """All bytes of the stream in a seekable file object the Rust parser can read (a file read whole
    already: its own bytes, no copy; the stream is then left at its end, every byte read)."""
    whole = getattr(stream, "whole", None)
    if isinstance(whole, bytes) and stream.tell() == 0:
        stream.seek(0, io.SEEK_END)
        yield io.BytesIO(whole)  # copied only if written to (pad_cut_chunk)
        return
    head = _read_upto(stream, MAX_IN_MEMORY + 1, size_hint)
    if len(head) <= MAX_IN_MEMORY:
        yield io.BytesIO(head)
        return
    with tempfile.TemporaryFile(prefix="exhunt-evtx-") as spool:
        spool.write(head)
        del head
        shutil.copyfileobj(stream, spool, 1 << 20)
        spool.seek(0)
        yield spool


def _read_upto(stream: BinaryIO, limit: int, size_hint: int) -> bytes:
    """Up to ``limit`` bytes. Why not ``read(limit)``: a buffered read allocates its whole size
    first, and 256 MiB per file cost ~25 us per small log. The listed size is read first, then
    (the end, or a file that grew) in doubling steps from 64 KiB, so no step allocates much."""
    parts: list[bytes] = []
    total = 0
    want = max(1, size_hint + 1)  # +1: a file of the listed size ends inside this read
    while total < limit:
        chunk = stream.read(min(want, limit - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
        want = max(1 << 16, total)
    return b"".join(parts)


def iter_events(ctx: ParseContext, data: IO[bytes], selection: evtx_chunks.Selection | None = None,
                unstored: Unstored | None = None) -> Iterator[tuple[int | None, dict[str, Any], bool]]:
    """``(record_id, {"System": ..., ...}, no_at_keys)`` for every readable record (``no_at_keys``:
    the JSON text has no "@", so no key starts with one); bad chunks become warnings. ``selection``:
    of a triage copy, so warnings say what the full parse says (chunk numbers, last record id).
    ``unstored``: records holding no literal (``evtx_chunks.record_matches``) are counted there
    instead, before their JSON is decoded."""
    from evtx import PyEvtxParser

    try:
        parser = PyEvtxParser(data)
    except (RuntimeError, OSError, ValueError) as exc:
        ctx.warn(f"not a readable EVTX file: {exc}", offset=0)
        return
    records = parser.records_json()
    last_id: int | None = None
    errors = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except Exception as exc:  # the binding raises RuntimeError and friends for a bad chunk/record
            errors += 1
            if errors > MAX_CONSECUTIVE_ERRORS:
                ctx.warn(f"{MAX_CONSECUTIVE_ERRORS} consecutive parse errors: rest of file skipped")
                return
            text = str(exc)
            match = CHUNK_NUMBER_RE.search(text)
            number = int(match.group(1)) if match else None
            if match and selection is not None and number is not None:
                number = selection.original(number)
                text = text[: match.start(1)] + str(number) + text[match.end(1):]
            if selection is not None:  # the last record before this chunk may be in a skipped one
                ids = FIRST_ID_RE.search(text)
                where = number if number is not None else selection.by_first_id.get(int(ids.group(1))) if ids else None
                if where is not None and where in selection.last_before:
                    last_id = max(last_id or 0, selection.last_before[where])
            offset = FILE_HEADER + number * CHUNK if number is not None else None
            ctx.warn(f"unreadable records after record id {last_id}: {type(exc).__name__}: {text}",
                     offset=offset)
            continue
        errors = 0
        if not isinstance(record, dict):
            continue
        record_id = record.get("event_record_id")
        last_id = record_id if isinstance(record_id, int) else last_id
        try:
            text = record["data"]
            if unstored is not None and isinstance(text, str) and not evtx_chunks.record_matches(text):
                unstored.add_record(record.get("timestamp"))
                continue
            document = orjson.loads(text)
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            ctx.warn(f"record {record_id}: undecodable JSON from the parser ({exc})")
            continue
        event = document.get("Event") if isinstance(document, dict) else None
        if not isinstance(event, dict):
            ctx.warn(f"record {record_id}: no Event element")
            continue
        yield record_id, event, isinstance(text, str) and "@" not in text  # memchr: fast


def pad_cut_chunk(ctx: ParseContext, data: IO[bytes]) -> set[int]:
    """A file that ends inside a chunk (copied while written, or cut) loses that whole chunk in the
    parser, silently. Warn, and fill our own copy (memory or a private temporary file, never the
    evidence) with zeros to the chunk's end, so the chunk's complete records are read. Returns
    the cut chunk's number (triage always parses it)."""
    size = data.seek(0, io.SEEK_END)
    cut = (size - FILE_HEADER) % CHUNK if size > FILE_HEADER else 0
    if not cut:
        return set()
    data.seek(size - cut)
    if data.read(cut) == ZERO_CHUNK[:cut]:
        return set()  # unused, zero-filled space: nothing was in it
    number = (size - FILE_HEADER) // CHUNK
    ctx.warn(f"file ends {cut:,} bytes into chunk {number} (of {CHUNK:,}): cut short while copied or "
             "written; the chunk's complete records are read, any record past the cut is lost",
             offset=size)
    data.seek(size)
    data.write(ZERO_CHUNK[cut:])
    return {number}


def verify_checksums(ctx: ParseContext, data: IO[bytes]) -> set[int]:
    """Warn for a file or chunk header / record-area CRC32 that does not match (the parser ignores
    them). Returns the numbers of the chunks warned about (triage always parses them)."""
    damaged: set[int] = set()
    header = data.read(FILE_HEADER)
    if len(header) < 128 or not header.startswith(MAGIC):
        return damaged
    if zlib.crc32(header[:120]) != struct.unpack_from("<I", header, 124)[0]:
        ctx.warn("EVTX file header checksum mismatch (file edited or not closed cleanly)", offset=0)
    for number, (buffer, at, length) in enumerate(evtx_chunks.chunks(data, least=512)):
        offset = FILE_HEADER + number * CHUNK
        view = memoryview(buffer)
        if buffer.startswith(CHUNK_MAGIC, at):
            free = min(struct.unpack_from("<I", buffer, at + 48)[0], length)
            header_ok = (zlib.crc32(view[at + 128 : at + 512], zlib.crc32(view[at : at + 120]))
                         == struct.unpack_from("<I", buffer, at + 124)[0])
            data_ok = free < 512 or (zlib.crc32(view[at + 512 : at + free])
                                     == struct.unpack_from("<I", buffer, at + 52)[0])
            if not header_ok or not data_ok:
                first, last = struct.unpack_from("<QQ", buffer, at + 24)
                what = " and ".join(n for n, ok in (("header", header_ok), ("records", data_ok)) if not ok)
                ctx.warn(f"chunk {number} (record ids {first}..{last}): {what} checksum mismatch; "
                         "records kept as parsed", offset=offset)
                damaged.add(number)
        # unused (zero-filled) space is fine; strip() was 40x slower, a memoryview comparison ~4x
        elif not buffer.startswith(ZERO_CHUNK[:length], at):
            ctx.warn(f"chunk {number}: bad chunk signature {bytes(view[at : at + 8])!r}", offset=offset)
            damaged.add(number)
    return damaged
