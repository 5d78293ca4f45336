"""Windows EVTX files through the ``evtx`` package (the Rust parser), every record, every channel.

Claimed by the file magic ``ElfFile\\0`` whatever the name. The bytes are read once through the
pipeline's hashing stream, so the evidence hash and the parsed bytes are the same bytes, and any
evidence source works, not only folders: a file held whole in memory up to ``in_memory_limit``, a
larger one chunk by chunk, the parser's copy of it spooled (``chunk_pass``).

Damage is data: the Rust parser skips a chunk it cannot read by raising mid-iteration; we catch
it, warn with the chunk and the last good record id, and call ``next()`` again to go on with the
next chunk (a bare ``for`` loop would lose the rest of the file). The parser does not verify
CRC32 checksums, so we do: a chunk whose header or record checksum does not match is reported
(its records are still kept, marked only by the warning, because a bad checksum often means a
log that was being written, not forged data). A file cut inside a chunk is warned about and its
complete records still read (padded in our copy); the parser alone would drop the chunk silently.

Triage (the default index): only the chunks holding a text some detection needs are parsed
(``exhunt.artifacts.evtx_chunks``); the others count their records from their headers. Of the
parsed records, only those whose JSON text holds such a text are mapped and stored; the others
are counted too, with their written times (``Unstored``).
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any, BinaryIO

import orjson

from exhunt.artifacts import evtx_chunks
from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.evtx_chunks import crc32
from exhunt.artifacts.winevent import ROW_COLUMNS, evtx_event_values

MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
FILE_HEADER = 4096
CHUNK = 65536
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
CUT = "file ends"  # how the warning of a file cut inside a chunk begins: said before any other


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
        parse_chunks(ctx, stream)


def parse_chunks(ctx: ParseContext, stream: BinaryIO, first: int = 0, last_before: int | None = None,
                 checked: Callable[[], None] | None = None, counted: int | None = None,
                 ends_file: bool = True) -> None:
    """The records of ``stream``: a whole file, or (``first`` > 0, ``exhunt.parallel.evtx_ranges``)
    the file's chunks from number ``first`` on behind a header of their own, parsed, warned about and
    counted as the whole file's parse does those chunks; ``last_before``: the record id that ends the
    chunk before them (what an "unreadable records after record id" warning names). ``checked``:
    called once the chunks' own checks are warned about, before any record (a whole file's parse says
    every chunk's first: a range's merge puts them there). ``counted`` and ``ends_file``: of a range,
    the chunk count in its file's own header, and whether the range reaches the file's end
    (``chunk_pass``)."""
    with chunk_pass(ctx, stream, first, last_before, counted, ends_file) as (source, selection):
        if checked is not None:
            checked()
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
        after = last_before if selection is None else None  # a selection knows it chunk by chunk
        try:
            for record_id, event, no_at_keys in iter_events(ctx, source, selection, skip, first, after):
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


IN_MEMORY_CHUNKS = 4  # of the engine's read size: a worker's budget holds 8 (exhunt.parallel.limits)
WHOLE_MAX = 8 << 20  # held whole up to this: read in one piece, larger files stream faster (see chunk_pass)


def in_memory_limit() -> int:
    """Bytes of the parser's copy of one EVTX file held in memory before it spools to disk: 4 engine
    chunks (64 MiB; less under a tight ``--memory-limit``), with a file held whole the two together
    what the memory budget gives a worker."""
    from exhunt.artifacts import w3c_fast

    return IN_MEMORY_CHUNKS * w3c_fast.CHUNK


@contextmanager
def chunk_pass(ctx: ParseContext, stream: BinaryIO, first: int = 0, last_before: int | None = None,
               counted: int | None = None,
               ends_file: bool = True) -> Iterator[tuple[IO[bytes], evtx_chunks.Selection | None]]:
    """One pass over the file's chunks as they are read: a cut last chunk padded, every checksum
    verified (the parser verifies none), and under triage the chunks to parse chosen and copied.
    Yields what the parser reads (the file, or with a selection the copy of its chosen chunks,
    ``selection.data``) and the selection (None: the file as it is). A file of up to ``WHOLE_MAX``
    bytes (and the budget's ``in_memory_limit``) is held whole and read in place (one read already
    in memory: its own bytes, no copy); a larger one never is: its chunks stream past, and the copy
    the parser needs (the chosen chunks; every chunk without triage) goes to a spooled temporary file
    that holds memory only up to ``in_memory_limit``. Held whole, a 4 GiB file had cost 4 GiB per
    worker (and the chosen chunks of a larger one were gathered in memory before they were joined);
    streamed, 170 MB files scanned in 3.9 s instead of 5.0 (a large block is fresh pages each time,
    a 64 KiB piece the same memory again; 4 MB files were 2-3% faster held whole). Warnings come as
    a check of the whole file gives them: the cut first, then the checksums in file order. ``first``
    and ``last_before``: of a range of a file's chunks (``parse_chunks``): the number of its first
    chunk, so warnings and the selection name chunks as the whole file's pass does, and the record
    id ending the chunk before it. Records lost without a damaged chunk to show it are warned too:
    a zero-filled chunk among those the file header counts (``counted``: the file's count, for a
    range behind its own header), and a file that ends before the last of them (``ends_file``: this
    pass reaches the file's end), cut at a chunk boundary or down to its header."""
    limit = in_memory_limit()
    pieces = _Pieces(stream, ctx.file.size, min(WHOLE_MAX, limit))
    warnings: list[tuple[str, int | None]] = []
    with contextlib.ExitStack() as stack:
        try:
            source, selection = _chunk_pass(pieces, limit, warnings, stack, first, last_before, counted,
                                            ends_file)
        finally:
            for message, offset in warnings:
                ctx.warn(message, offset=offset)
        yield source, selection


def _chunk_pass(pieces: _Pieces, limit: int, warnings: list[tuple[str, int | None]], stack: contextlib.ExitStack,
                first: int = 0, last_before: int | None = None, counted: int | None = None,
                ends_file: bool = True) -> tuple[IO[bytes], evtx_chunks.Selection | None]:
    header = pieces.header
    verifying = len(header) >= 128 and header.startswith(MAGIC)
    header_ok = verifying and crc32(header[:120]) == struct.unpack_from("<I", header, 124)[0]
    if verifying and not header_ok:
        warnings.append(("EVTX file header checksum mismatch (file edited or not closed cleanly)", 0))
    if counted is None and header_ok:  # a damaged header's count says nothing
        counted = struct.unpack_from("<H", header, 42)[0]
    if counted is not None and counted >= 0xFFFF:  # the two-byte count of a file of 4 GiB or more
        counted = None
    last = first - 1
    selector = evtx_chunks.Selector(last_before) if evtx_chunks.header_selectable(header) else None
    spool: IO[bytes] | None = None
    if pieces.whole is None:  # streamed: the parser's copy (as is, or the chosen chunks) spools
        spool = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=limit, prefix="exhunt-evtx-"))  # noqa: SIM115 - closed by the stack
        spool.write(header if selector is None else bytes(FILE_HEADER))  # a chunk copy's header comes last
    kept: list[memoryview] = []  # held whole: the chosen chunks in place
    cut: tuple[int, int] | None = None  # (chunk number, bytes of it in the file)
    tail = b""  # of a streamed file: zero-filled bytes after its last chunk, too short to be one
    for number, (buffer, at, length) in enumerate(pieces, first):
        offset = FILE_HEADER + number * CHUNK
        last = number
        if length < CHUNK:
            if buffer.startswith(ZERO_CHUNK[:length], at):  # unused, zero-filled space: nothing in it
                tail = bytes(buffer[at : at + length]) if spool is not None else b""
            else:
                warnings.insert(0, (f"{CUT} {length:,} bytes into chunk {number} (of {CHUNK:,}): cut short "
                                    "while copied or written; the chunk's complete records are read, any "
                                    "record past the cut is lost", offset + length))
                buffer, at, cut = bytes(buffer[at : at + length]) + ZERO_CHUNK[length:], 0, (number, length)
                length = CHUNK
        damaged = verifying and length >= 512 and _damaged(warnings, number, offset, buffer, at, length)
        if (counted is not None and number < counted and length == CHUNK and not damaged
                and not buffer.startswith(CHUNK_MAGIC, at) and buffer.startswith(ZERO_CHUNK, at)):
            warnings.append((f"chunk {number}: zero-filled, though the file header counts {counted} chunks: "
                             "the records it held are lost (wiped, or not copied)", offset))
        view = memoryview(buffer)[at : at + length]
        if selector is not None and length == CHUNK:
            if selector.keep(number, buffer, at, damaged or cut is not None):
                if spool is None:
                    kept.append(view)
                else:
                    spool.write(view)
        elif selector is None and spool is not None:
            spool.write(view)
    if ends_file and counted is not None and last + 1 < counted:
        chunks = last + 1
        warnings.append((f"the file ends after {chunks:,} chunk{'s' if chunks != 1 else ''} although its header "
                         f"counts {counted:,}: the records of the other {counted - chunks:,} are lost (cut while "
                         "copied?)", FILE_HEADER + chunks * CHUNK))
    if selector is not None and selector.every_chunk:  # parse the file as it is
        if spool is not None:  # the chunks are there, in order, behind a placeholder header
            spool.seek(0)
            spool.write(header)
            spool.truncate(len(header) + selector.seen * CHUNK)
            spool.seek(0, io.SEEK_END)
            spool.write(tail)
        selector = None
    if selector is None:
        return (spool if spool is not None else pieces.in_memory(cut)), None
    if spool is None:
        copy: IO[bytes] | None = (io.BytesIO(b"".join([evtx_chunks.synthetic_header(header, len(kept)), *kept]))
                                  if kept else None)
    elif selector.numbers:
        spool.seek(0)
        spool.write(evtx_chunks.synthetic_header(header, len(selector.numbers)))
        copy = spool
    else:
        copy = None
    return (copy if copy is not None else io.BytesIO()), selector.selection(copy)


def _damaged(warnings: list[tuple[str, int | None]], number: int, offset: int, buffer: bytes, at: int,
             length: int) -> bool:
    """Whether the chunk's header or record-area CRC32 does not match, or its signature is wrong
    (warned); unused, zero-filled space is fine (``strip()`` was 40x slower, a comparison ~4x)."""
    view = memoryview(buffer)
    if buffer.startswith(CHUNK_MAGIC, at):
        header_ok, data_ok = checksums_match(buffer, at, length)
        if header_ok and data_ok:
            return False
        first, last = struct.unpack_from("<QQ", buffer, at + 24)
        what = " and ".join(n for n, ok in (("header", header_ok), ("records", data_ok)) if not ok)
        warnings.append((f"chunk {number} (record ids {first}..{last}): {what} checksum mismatch; "
                          "records kept as parsed", offset))
        return True
    if buffer.startswith(ZERO_CHUNK[:length], at):
        return False
    warnings.append((f"chunk {number}: bad chunk signature {bytes(view[at : at + 8])!r}", offset))
    return True


def checksums_match(buffer: bytes, at: int, length: int = CHUNK) -> tuple[bool, bool]:
    """Whether the header CRC32 and the record-area CRC32 of the chunk at ``at`` (``length`` bytes of
    it in ``buffer``) match what its header says."""
    view = memoryview(buffer)
    free = min(struct.unpack_from("<I", buffer, at + 48)[0], length)
    header_ok = (crc32(view[at + 128 : at + 512], crc32(view[at : at + 120]))
                 == struct.unpack_from("<I", buffer, at + 124)[0])
    data_ok = free < 512 or (crc32(view[at + 512 : at + free]) == struct.unpack_from("<I", buffer, at + 52)[0])
    return header_ok, data_ok


class _Pieces:
    """The file header, then the file 64 KiB at a time (``(buffer, offset, length)``; only the last
    piece can be shorter): in place from the file's bytes when it is held whole, else read from the
    stream, which is left at its end either way (every byte read: the hashes are the whole file's)."""

    def __init__(self, stream: BinaryIO, size_hint: int, limit: int) -> None:
        self.stream = stream
        self.whole: bytes | None = None
        self.prefix = b""  # read already (a file that grew past the limit while read)
        whole = getattr(stream, "whole", None)
        if isinstance(whole, bytes) and stream.tell() == 0:  # read whole by the worker already
            stream.seek(0, io.SEEK_END)
            self.whole = whole
        elif size_hint <= limit:
            head = _read_upto(stream, limit + 1, size_hint)
            if len(head) <= limit:
                self.whole = head
            else:
                self.prefix = head
        self.header = self.whole[:FILE_HEADER] if self.whole is not None else self._read(FILE_HEADER)

    def _read(self, size: int) -> bytes:
        parts, have = [], 0
        if self.prefix:
            parts.append(self.prefix[:size])
            self.prefix = self.prefix[size:]
            have = len(parts[0])
        while have < size and (part := self.stream.read(size - have)):
            parts.append(part)
            have += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def __iter__(self) -> Iterator[tuple[bytes, int, int]]:
        if self.whole is not None:
            data = self.whole
            for offset in range(FILE_HEADER, len(data), CHUNK):
                yield data, offset, min(CHUNK, len(data) - offset)
            return
        while piece := self._read(CHUNK):
            yield piece, 0, len(piece)
            if len(piece) < CHUNK:
                return

    def in_memory(self, cut: tuple[int, int] | None) -> IO[bytes]:
        """The file held whole, as the parser reads it: a cut chunk padded in the copy (never the
        evidence; ``BytesIO`` copies its bytes only when written to)."""
        assert self.whole is not None
        data = io.BytesIO(self.whole)
        if cut is not None:
            data.seek(len(self.whole))
            data.write(ZERO_CHUNK[cut[1]:])
        return data


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
                unstored: Unstored | None = None, first: int = 0,
                last_id: int | None = None) -> Iterator[tuple[int | None, dict[str, Any], bool]]:
    """``(record_id, {"System": ..., ...}, no_at_keys)`` for every readable record (``no_at_keys``:
    the JSON text has no "@", so no key starts with one); bad chunks become warnings. ``selection``:
    of a triage copy, so warnings say what the full parse says (chunk numbers, last record id).
    ``unstored``: records holding no literal (``evtx_chunks.record_matches``) are counted there
    instead, before their JSON is decoded. ``first``: the number of ``data``'s first chunk in its
    file (a range of a file's chunks, parsed as it is); ``last_id``: the record id before it."""
    from evtx import PyEvtxParser

    try:
        parser = PyEvtxParser(data)
    except (RuntimeError, OSError, ValueError) as exc:
        ctx.warn(f"not a readable EVTX file: {exc}", offset=0)
        return
    records = parser.records_json()
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
            if match and number is not None and (selection is not None or first):
                number = selection.original(number) if selection is not None else number + first
                text = text[: match.start(1)] + str(number) + text[match.end(1):]
            if selection is not None:  # the last record before this chunk may be in a skipped one
                ids = FIRST_ID_RE.search(text)
                where = number if number is not None else selection.by_first_id.get(int(ids.group(1))) if ids else None
                if where is not None and where in selection.last_before:
                    # the record before the chunk in file order (a wrapped log's greatest id is not
                    # it), unless the parse had reached into the chunk itself
                    span = selection.ids.get(where)
                    if span is None or last_id is None or not span[0] <= last_id <= span[1]:
                        last_id = selection.last_before[where]
            offset = FILE_HEADER + number * CHUNK if number is not None else None
            since = f"after record id {last_id}" if last_id is not None else "before any record was read"
            ctx.warn(f"unreadable records {since}: {type(exc).__name__}: {text}", offset=offset)
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
