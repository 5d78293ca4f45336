"""EVTX triage: parse only the chunks that hold a text some loaded rule or check needs.

EVTX chunks (64 KiB after the 4 KiB file header) are self-contained: each has its own string and
template tables, so every text of its records (values, channel and provider names) is in the
chunk's own bytes as UTF-16LE. One Hyperscan scan per chunk for the necessary literals of the
loaded detections (``exhunt.detections.eventfilter``) tells whether any record in it could match;
the scan runs over the chunk's even and odd bytes (two strided slices, C copies) for the low
bytes of the literals' UTF-16LE code units, ASCII-caseless: a text at an even offset has its low
bytes side by side in the even slice, one at an odd offset in the odd slice, so every chunk
holding a literal still matches, a few more may. The interleaved UTF-16 patterns' NULs made
Hyperscan's literal matcher verify a candidate at nearly every character (2.5x slower); deleting
the NULs (``bytes.translate``) cost ~1.5x the two slices;
the parser is then given a synthetic file (the file header, chunk count and CRC fixed, plus the
selected chunks), which the ``evtx`` package reads like the original.

A letter for which SQL's caseless matching also takes a non-ASCII character (``exhunt.sqlfold``:
``İ`` for ``i``) is searched as either low byte. Such patterns are no pure literals: they compile
in ~35 ms against ~1 (the checks' literals), so the database goes to the text prefilter's disk
cache and later scans load it.

Kept exact without parsing: the records of a skipped chunk are counted from its header (first and
last record id), and chunks the full parse would warn about (checksum mismatch, bad signature, a
cut chunk) are always parsed. ``configure(None)`` (``--index full``) parses every chunk.

Then the same literals per record: a parsed record whose JSON text holds none of them (written as
JSON writes them, ASCII-caseless; the parser's own ``"#attributes"`` and ``"#text"`` keys left
out: "attrib" would match every record) is counted, not mapped or stored (``record_matches``); its
text is searched with those non-ASCII characters written as their letters (``sqlfold.to_ascii``,
free on an ASCII text), so the record patterns stay pure literals.
The contract is the event's: every event a loaded detection could use holds a literal; a chunk
holds one when any of its records does, so three in four records of a selected chunk held none
on the shared set and were mapped and stored for nothing.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from exhunt.sqlfold import spellings, to_ascii

try:  # Intel ISA-L's CRC-32 (zlib's polynomial; carry-less multiply): ~11 GB/s here against zlib's 2.2,
    # and every chunk's record area is checked: 1.3 of the workers' 5.5 CPU s over 2.85 GB of EVTX
    from isal.isal_zlib import crc32
except ImportError:  # a platform without its wheel: the same values, slower
    from zlib import crc32

FILE_HEADER = 4096
CHUNK = 65536
CHUNK_MAGIC = b"ElfChnk\x00"
RECORD_MAGIC = b"\x2a\x2a\x00\x00"

_LITERALS: tuple[str, ...] | None = None  # None: parse every chunk
_DATABASE: Any = None  # the compiled Hyperscan database of _LITERALS (None when there are none)
_RECORDS: Any = None  # the literals as a record's JSON text holds them (None when there are none)
MATCH_ALL = object()  # _DATABASE when a literal has no byte but NUL: every chunk matches
# keys the parser's JSON adds (XML attributes and element text), never a value: blanked before the search
JSON_KEYS = ((b'"#attributes":', b'"":'), (b'"#text":', b'"":'))


_COMPILED: dict[tuple[str, ...], tuple[Any, Any]] = {}  # literals -> their two databases, this process's


def configure(literals: tuple[str, ...] | None) -> None:
    """Set this process's chunk literals (a pool initializer calls it); compiled once per process and
    set of literals: a Dask worker sets them for each task and gives its own back after (~3 ms a
    compile of the checks' 50 literals, more with a Sigma pack's)."""
    global _LITERALS, _DATABASE, _RECORDS
    if literals == _LITERALS and (not literals or _DATABASE is not None):
        return
    _LITERALS = literals
    if not literals:
        _DATABASE = _RECORDS = None
        return
    compiled = _COMPILED.get(literals)
    if compiled is None:
        if len(_COMPILED) >= 4:
            _COMPILED.clear()
        # a literal holding such a character is searched as SQL compares it: as its letter (``İ`` is ``i``)
        folded = tuple(dict.fromkeys(map(to_ascii, literals)))
        compiled = _COMPILED[literals] = (compile_literals(folded), compile_literals(folded, json_pattern))
    _DATABASE, _RECORDS = compiled


def current() -> tuple[str, ...] | None:
    return _LITERALS


def low_bytes(text: str) -> bytes:
    """The low byte of each UTF-16LE code unit of ``text``: what it looks like in a strided slice."""
    return text.encode("utf-16-le", "surrogatepass")[0::2]


def literal_pattern(text: str) -> str:
    """A Hyperscan expression matching the bytes of ``low_bytes(text)`` exactly (ASCII case aside), a
    letter's byte or the low byte of a character SQL's caseless matching takes for it (``sqlfold``)."""
    return "".join(_either([low_bytes(s) for s in spellings(c)]) for c in text)


def json_pattern(text: str) -> str:
    """A Hyperscan expression matching ``text`` as it appears in JSON (quotes, backslashes and control
    characters escaped as the parser's serde_json escapes them, UTF-8 otherwise)."""
    return _either([json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8", "surrogatepass")])


def _either(forms: list[bytes]) -> str:
    """A Hyperscan expression matching any of ``forms`` (bytes, each escaped)."""
    escaped = ["".join(f"\\x{b:02x}" for b in form) for form in forms]
    return escaped[0] if len(escaped) == 1 else f"(?:{'|'.join(escaped)})"


def compile_literals(literals: tuple[str, ...], pattern: Any = literal_pattern) -> Any:
    """The database of the literals (each made an expression by ``pattern``, caseless, first match
    only: the text prefilter's flags, whose ``^``/``$`` none uses), or MATCH_ALL when one is empty
    (every chunk matches). Loaded from the disk cache when the set compiled before."""
    import hyperscan

    from exhunt.artifacts import linefilter

    if any(not text for text in literals):
        return MATCH_ALL
    patterns = list(dict.fromkeys(pattern(text) for text in literals))
    blob = linefilter.compile_patterns(patterns, linefilter.cache_dir(), single_from=0).blob
    database = hyperscan.loadb(blob, hyperscan.HS_MODE_BLOCK)
    database.scratch = hyperscan.Scratch(database)
    return database


def _stop(pattern: int, start: int, end: int, flags: int, context: Any) -> bool:
    return True  # stop at the first match: Hyperscan then raises ScanTerminated


def chunk_matches(chunk: bytes, end: int | None = None, start: int = 0) -> bool:
    """Whether ``chunk[start:end]`` holds any literal (None configured: every chunk does); ``start``:
    where the chunk begins in a buffer holding more (the whole file), so it is not copied first."""
    if _LITERALS is None:
        return True
    if _DATABASE is None:
        return False
    if _DATABASE is MATCH_ALL:
        return True
    import hyperscan

    end = len(chunk) if end is None else end
    for first in (start, start + 1):  # texts at even offsets, then at odd ones
        try:
            _DATABASE.scan(low_bytes_of(chunk, first, end), match_event_handler=_stop)
        except hyperscan.ScanTerminated:  # how Hyperscan reports a stopped scan: a match
            return True
    return False


NUMPY_FROM = 6144


def low_bytes_of(buffer: bytes, start: int, end: int) -> Any:
    """``buffer[start:end:2]``, the low bytes of the UTF-16 code units from ``start``, as an array:
    the units read as 16-bit integers and narrowed with SIMD (5 against 10 us per chunk of the shared
    set for both parities; a strided copy goes byte by byte), the last byte on its own when the span
    is odd (never a read past ``end``). Spans under ``NUMPY_FROM`` bytes take the strided copy: numpy's
    ~0.8 us a call costs more there."""
    if end - start < NUMPY_FROM:
        return buffer[start:end:2]
    import numpy as np

    units = np.frombuffer(buffer, "<u2", (end - start) // 2, start).astype(np.uint8)
    return np.concatenate((units, np.frombuffer(buffer, np.uint8, 1, end - 1))) if (end - start) % 2 else units


def filters_records() -> bool:
    """Whether records are filtered (triage): else every parsed record is stored."""
    return _LITERALS is not None


def record_matches(text: str) -> bool:
    """Whether a parsed record's JSON text holds a literal (no literals configured: every record does)."""
    if _LITERALS is None or _RECORDS is MATCH_ALL:
        return True
    if _RECORDS is None:
        return False
    import hyperscan

    data = to_ascii(text).encode("utf-8", "surrogatepass")
    for key, blank in JSON_KEYS:
        data = data.replace(key, blank)
    try:
        _RECORDS.scan(data, match_event_handler=_stop)
    except hyperscan.ScanTerminated:
        return True
    return False


@dataclass
class Selection:
    """What to parse of one file: its synthetic copy (None: nothing), the original number of each
    chunk in it (to report parser errors where they are) and how many records were left out."""

    data: IO[bytes] | None
    numbers: list[int]
    skipped_records: int
    first_written: int | None = None  # FILETIME range of the skipped records (their record headers)
    last_written: int | None = None
    last_before: dict[int, int] = field(default_factory=dict)  # chunk -> last record id before it
    by_first_id: dict[int, int] = field(default_factory=dict)  # first record id -> chunk (parsed ones)
    ids: dict[int, tuple[int, int]] = field(default_factory=dict)  # chunk -> its header's record ids (parsed)

    def original(self, number: int) -> int:
        """The original number of the triage copy's chunk ``number``."""
        return self.numbers[number] if 0 <= number < len(self.numbers) else number


def chunks(data: IO[bytes]) -> Iterator[tuple[bytes, int]]:
    """``(buffer, offset)`` of each whole chunk after the file header, in order: an in-memory file's
    own bytes at the chunk's offset (no copy of each chunk), else each chunk read (offset 0)."""
    if isinstance(data, io.BytesIO):
        buffer = data.getvalue()  # the BytesIO's own bytes object, not a copy
        for offset in range(FILE_HEADER, len(buffer) - CHUNK + 1, CHUNK):
            yield buffer, offset
        return
    data.seek(FILE_HEADER)
    while len(chunk := data.read(CHUNK)) == CHUNK:
        yield chunk, 0


def header_selectable(header: bytes) -> bool:
    """Whether triage may copy the chunks of a file with this header: literals are configured and
    the header is whole and intact (a damaged one: the parser's own reading of it must decide)."""
    return _LITERALS is not None and header_intact(header)


def header_intact(header: bytes) -> bool:
    """Whether a file header is long enough to hold its checksum and the checksum holds."""
    return len(header) >= 128 and crc32(header[:120]) == struct.unpack_from("<I", header, 124)[0]


class Selector:
    """The triage decision chunk by chunk, in file order (``keep``), and what is known of the chunks
    left out; ``selection`` at the end. Chunks are 64 KiB after the file header; a file's pieces
    shorter than that are no chunk (a cut one was padded to its length first)."""

    def __init__(self, previous_last: int | None = None) -> None:
        """``previous_last``: the last record id of the chunk before the first one seen (of a range of
        a file's chunks), else None."""
        self.numbers: list[int] = []
        self.seen = 0
        self.skipped = 0
        self.written: list[int] = []
        self.last_before: dict[int, int] = {}
        self.by_first_id: dict[int, int] = {}
        self.ids: dict[int, tuple[int, int]] = {}
        self.previous_last = previous_last

    def keep(self, number: int, buffer: bytes, at: int, must_parse: bool) -> bool:
        """Whether chunk ``number`` (at ``at`` in ``buffer``) is parsed; counts the records of one that
        is not. ``must_parse``: the full parse warns about it (damaged, cut), so triage parses it."""
        self.seen += 1
        if not buffer.startswith(CHUNK_MAGIC, at):
            if must_parse:
                self.numbers.append(number)
                if self.previous_last is not None:  # what a warning about its records names
                    self.last_before[number] = self.previous_last
            return must_parse
        first, last = struct.unpack_from("<QQ", buffer, at + 24)
        kept = must_parse or chunk_matches(buffer, at + used_end(buffer, at), at)
        if kept:
            self.numbers.append(number)
            self.by_first_id[first] = number
            self.ids[number] = (first, last)
            if self.previous_last is not None:
                self.last_before[number] = self.previous_last
        else:
            self.skipped += max(0, last - first + 1)
            self.written.extend(written_range(buffer, at))
        self.previous_last = last
        return kept

    @property
    def every_chunk(self) -> bool:
        """Every chunk was kept: the file is parsed as it is, not a copy of its chunks."""
        return len(self.numbers) == self.seen

    def selection(self, data: IO[bytes] | None) -> Selection:
        """``data``: the copy of the kept chunks behind their fixed header (None when none was kept)."""
        first_written, last_written = (min(self.written), max(self.written)) if self.written else (None, None)
        if not self.numbers:
            return Selection(None, [], self.skipped, first_written, last_written)
        return Selection(data, self.numbers, self.skipped, first_written, last_written, self.last_before,
                         self.by_first_id, self.ids)


def select(data: IO[bytes], must_parse: set[int]) -> Selection | None:
    """The chunks to parse of a file held whole (its copy in memory), or None when every chunk is
    (then parse the file as it is). The scan's own parse streams its chunks instead
    (``evtx.chunk_pass``) with the same ``Selector``."""
    if _LITERALS is None:
        return None
    data.seek(0)
    header = data.read(FILE_HEADER)
    if not header_selectable(header):
        return None
    selector = Selector()
    keep: list[bytes | memoryview] = []
    # anything shorter than a chunk holds none (``evtx.chunk_pass`` pads a cut one first)
    for number, (buffer, at) in enumerate(chunks(data)):
        if selector.keep(number, buffer, at, number in must_parse):
            keep.append(memoryview(buffer)[at : at + CHUNK])
    if selector.every_chunk:
        return None
    copy = io.BytesIO(b"".join([synthetic_header(header, len(keep)), *keep])) if keep else None
    return selector.selection(copy)


def used_end(chunk: bytes, at: int = 0) -> int:
    """The free-space offset of the chunk at ``at`` (its start in ``chunk``): the parser reads no
    record past it (and the records' strings and templates are inside the records), so the rest (a
    third of the bytes of the shared set's chunks are in use) need not be searched. An offset out of
    range: the whole chunk."""
    length = min(CHUNK, len(chunk) - at)
    free = struct.unpack_from("<I", chunk, at + 48)[0]
    return free if 512 <= free < length else length


_RECORD_HEAD = struct.Struct("<4sIQQ").unpack_from  # magic, size, record id, written time
_FREE_SPACE = struct.Struct("<I").unpack_from


def written_range(chunk: bytes, at: int = 0) -> tuple[int, ...]:
    """Earliest and latest written time (FILETIME) in the record headers of the chunk at ``at``,
    walked by size."""
    free = at + min(_FREE_SPACE(chunk, at + 48)[0], min(CHUNK, len(chunk) - at))
    offset = at + 512
    times: list[int] = []
    while offset + 24 <= free:
        magic, size, _, written = _RECORD_HEAD(chunk, offset)
        if magic != RECORD_MAGIC:
            break
        times.append(written)
        if size < 24:
            break
        offset += size
    if 0 in times:  # a zero time (seen in cleared logs) is no time
        times = [t for t in times if t]
    return (min(times), max(times)) if times else ()


def intact_chunks(data: bytes) -> list[bytes]:
    """The whole chunks of a file's bytes whose signature and record-area checksum hold: chunks that
    read the same in any file (the material of the bench's large files and of the ranges' tests)."""
    chunks = []
    for at in range(FILE_HEADER, len(data) - CHUNK + 1, CHUNK):
        chunk = data[at : at + CHUNK]
        free = struct.unpack_from("<I", chunk, 48)[0]
        if chunk.startswith(CHUNK_MAGIC) and crc32(chunk[512:free]) == struct.unpack_from("<I", chunk, 52)[0]:
            chunks.append(chunk)
    return chunks


def synthetic_header(header: bytes, chunks: int) -> bytes:
    """The file header with first/last chunk numbers and the chunk count of ``chunks``, CRC fixed."""
    fixed = bytearray(header.ljust(FILE_HEADER, b"\x00"))
    struct.pack_into("<QQ", fixed, 8, 0, chunks - 1)
    struct.pack_into("<H", fixed, 42, min(chunks, 0xFFFF))
    struct.pack_into("<I", fixed, 124, crc32(bytes(fixed[:120])))
    return bytes(fixed)
