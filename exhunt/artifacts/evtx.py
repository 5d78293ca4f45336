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
"""

from __future__ import annotations

import io
import re
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, BinaryIO

import orjson

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
COLUMNS = (*ROW_COLUMNS, "host", "path", "source")  # of the tuples handed to the store
RECORD_ID = ROW_COLUMNS.index("record_id")
TS = ROW_COLUMNS.index("ts")


class EvtxLog(Artifact):
    """A Windows XML event log file (.evtx)."""

    name = "evtx"

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        return head.startswith(MAGIC)

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        with _materialize(stream, ctx.file.size) as data:
            pad_cut_chunk(ctx, data)
            data.seek(0)
            verify_checksums(ctx, data)
            data.seek(0)
            events = ctx.writer.table("events")
            extra = (ctx.host, ctx.file.rel, "evtx")
            count = 0
            for record_id, event, no_at_keys in iter_events(ctx, data):
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
            ctx.events += count


@contextmanager
def _materialize(stream: BinaryIO, size_hint: int = 0) -> Iterator[IO[bytes]]:
    """All bytes of the stream in a seekable file object the Rust parser can read."""
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


def iter_events(ctx: ParseContext, data: IO[bytes]) -> Iterator[tuple[int | None, dict[str, Any], bool]]:
    """``(record_id, {"System": ..., ...}, no_at_keys)`` for every readable record (``no_at_keys``:
    the JSON text has no "@", so no key starts with one); bad chunks become warnings."""
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
            match = CHUNK_NUMBER_RE.search(str(exc))
            offset = FILE_HEADER + int(match.group(1)) * CHUNK if match else None
            ctx.warn(f"unreadable records after record id {last_id}: {type(exc).__name__}: {exc}",
                     offset=offset)
            continue
        errors = 0
        if not isinstance(record, dict):
            continue
        record_id = record.get("event_record_id")
        last_id = record_id if isinstance(record_id, int) else last_id
        try:
            text = record["data"]
            document = orjson.loads(text)
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            ctx.warn(f"record {record_id}: undecodable JSON from the parser ({exc})")
            continue
        event = document.get("Event") if isinstance(document, dict) else None
        if not isinstance(event, dict):
            ctx.warn(f"record {record_id}: no Event element")
            continue
        yield record_id, event, isinstance(text, str) and "@" not in text  # memchr: fast


def pad_cut_chunk(ctx: ParseContext, data: IO[bytes]) -> None:
    """A file that ends inside a chunk (copied while written, or cut) loses that whole chunk in the
    parser, silently. Warn, and fill our own copy (memory or a private temporary file, never the
    evidence) with zeros to the chunk's end, so the chunk's complete records are read."""
    size = data.seek(0, io.SEEK_END)
    cut = (size - FILE_HEADER) % CHUNK if size > FILE_HEADER else 0
    if not cut:
        return
    data.seek(size - cut)
    if data.read(cut) == ZERO_CHUNK[:cut]:
        return  # unused, zero-filled space: nothing was in it
    number = (size - FILE_HEADER) // CHUNK
    ctx.warn(f"file ends {cut:,} bytes into chunk {number} (of {CHUNK:,}): cut short while copied or "
             "written; the chunk's complete records are read, any record past the cut is lost",
             offset=size)
    data.seek(size)
    data.write(ZERO_CHUNK[cut:])


def verify_checksums(ctx: ParseContext, data: IO[bytes]) -> None:
    """Warn for a file or chunk header / record-area CRC32 that does not match (the parser ignores them)."""
    header = data.read(FILE_HEADER)
    if len(header) < 128 or not header.startswith(MAGIC):
        return
    if zlib.crc32(header[:120]) != struct.unpack_from("<I", header, 124)[0]:
        ctx.warn("EVTX file header checksum mismatch (file edited or not closed cleanly)", offset=0)
    number = 0
    while True:
        chunk = data.read(CHUNK)
        if len(chunk) < 512:
            return
        offset = FILE_HEADER + number * CHUNK
        if chunk.startswith(CHUNK_MAGIC):
            free = min(struct.unpack_from("<I", chunk, 48)[0], len(chunk))
            header_ok = zlib.crc32(chunk[:120] + chunk[128:512]) == struct.unpack_from("<I", chunk, 124)[0]
            data_ok = free < 512 or zlib.crc32(chunk[512:free]) == struct.unpack_from("<I", chunk, 52)[0]
            if not header_ok or not data_ok:
                first, last = struct.unpack_from("<QQ", chunk, 24)
                what = " and ".join(n for n, ok in (("header", header_ok), ("records", data_ok)) if not ok)
                ctx.warn(f"chunk {number} (record ids {first}..{last}): {what} checksum mismatch; "
                         "records kept as parsed", offset=offset)
        elif chunk != ZERO_CHUNK[: len(chunk)]:  # unused (zero-filled) space is fine; strip() was 40x slower
            ctx.warn(f"chunk {number}: bad chunk signature {chunk[:8]!r}", offset=offset)
        number += 1
