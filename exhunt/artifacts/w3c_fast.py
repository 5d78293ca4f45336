"""The fast path for W3C-style logs: header blocks split by hand, data read by Arrow's CSV reader,
normalized by the dialect's Arrow kernels (``fast_arrow``: a few dozen calls per segment; a DuckDB
query per segment cost 5-7 ms, more than parsing it). No Python object per log line.

Any segment the fast path cannot prove it reads exactly like the reference parser (``w3c``) — NUL
bytes, invalid UTF-8, blank or overlong lines, a wrong number of values, an unparseable time or
URL encoding — is handed to the reference parser, so both give the same rows and warnings
(``tests/artifacts/test_w3c_fast.py`` proves it on real and generated logs).
"""

from __future__ import annotations

import bisect
import contextlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from exhunt.artifacts import linefilter, scopes
from exhunt.artifacts.base import ParseContext
from exhunt.artifacts.linefilter import LineSelector, TriagePlan
from exhunt.artifacts.lines import MAX_LINE
from exhunt.artifacts.w3c import Block, apply_header, iter_records
from exhunt.bytecount import newlines
from exhunt.events.selected import SELECTED
from exhunt.sqltext import identifier, literal

if TYPE_CHECKING:  # imported by ``_connection``: most segments never need DuckDB (nor the fork server)
    import duckdb

CHUNK = 16 << 20  # read size; workers may lower it under --memory-limit (exhunt.parallel.limits)
DUCKDB_MEMORY: str | None = None  # per-worker DuckDB memory_limit, set by the worker initializer
MIN_FAST_BYTES = 64 << 10
NUL_PROBE = 2048  # triage notices a NUL stretch this long or longer (a crash leaves whole pages of them)
TRIAGE: TriagePlan | None = None  # the scan's prefilter, set by the worker initializer; None: parse every line
BOM = b"\xef\xbb\xbf"


class Dialect(Protocol):
    """What a log family tells the engine: how to split, the reference handler and the fast SQL."""

    field_sep: str
    quote_char: str | bool

    def split(self, text: str) -> list[str]: ...

    def on_block(self, ctx: ParseContext, block: Block, first_line: int) -> None: ...

    def handle(self, ctx: ParseContext, number: int, text: str, block: Block, record: dict[str, str]) -> None: ...

    def fast_ready(self, ctx: ParseContext, block: Block) -> bool: ...

    def fast_arrow(self, ctx: ParseContext, block: Block, seg: pa.Table) -> pa.Table | None: ...

    def fast_facts(self, ctx: ParseContext, seg: pa.Table, block: Block) -> None: ...

    def source(self, ctx: ParseContext, block: Block) -> str: ...


_CON: duckdb.DuckDBPyConnection | None = None


def _connection() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process: opening one costs more than parsing a small log."""
    global _CON
    if _CON is None:
        import duckdb

        config: dict[str, str | bool | int | float | list[str]] = {"threads": 1}
        if DUCKDB_MEMORY:
            config["memory_limit"] = DUCKDB_MEMORY
        _CON = duckdb.connect(":memory:", config=config)
        _CON.execute("SET TimeZone = 'UTC'")
    return _CON


@dataclass
class PivotContext(ParseContext):
    """The context of the pivot pass: it stores rows of lines the first pass did not parse, so
    header and block facts and warnings (the first pass wrote them) are dropped, and only warnings
    about the lines this pass selected (``lines``) are kept."""

    lines: set[int] = field(default_factory=set)

    def warn(self, message: str, line: int | None = None, offset: int | None = None) -> None:
        if line is not None and line in self.lines:
            super().warn(message, line, offset)

    def warn_file(self, message: str) -> None:
        """A problem of this pass itself (the file cannot be read again)."""
        super().warn(message)

    def fact(self, fact: str, value: str, line: int | None = None, confidence: str = "high") -> None:
        return None


class _Chain(io.RawIOBase):
    """Bytes already read, then the rest of the stream: lets the reference parser take over mid-file."""

    def __init__(self, first: bytes, rest: BinaryIO) -> None:
        self._first = memoryview(first)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._first.nbytes:
            n = min(len(buffer), self._first.nbytes)
            buffer[:n] = self._first[:n]
            self._first = self._first[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class W3cEngine:
    """Runs one file through the fast path, segment by segment, with the reference as the fallback."""

    def __init__(self, ctx: ParseContext, dialect: Dialect, use_fast: bool = True) -> None:
        self.ctx = ctx
        self.dialect = dialect
        self.use_fast = use_fast
        self.block = Block()
        self.block_started = False
        self.line = 0  # lines consumed so far, but for those of ``_uncounted``
        self.offset = 0  # bytes consumed so far
        # segments passed whose lines are not counted yet, each from a byte position: the pivot pass
        # counts a segment's newlines only when a later hit needs its line numbers (``_settle``)
        self._uncounted: list[tuple[bytes, int]] = []
        self._uncounted_bytes = 0
        self.fast_rows = 0
        self.slow_rows = 0
        self.chunk = CHUNK  # byte ranges of a split file replay the whole-file chunking exactly
        self.triage = TRIAGE
        self.nul_said = False  # triage warns of NUL bytes once a file (a full parse, once a line)
        self.fact_values: list[str] = []  # the values of the selector's first-match-only fact patterns
        self.selector = self._first_pass_selector()
        self.pivot = _selector(TRIAGE.pivot if TRIAGE is not None and self.selector is not None else None)
        self.searched = _selector(TRIAGE.searched if self.pivot is not None and TRIAGE is not None else None)
        self.mark = TRIAGE is not None and TRIAGE.mark and self.selector is not None  # --index full
        self._pieces: pa.Array | None = None  # the last fast segment's lines before CRs were trimmed
        self.selected_rows = 0  # lines the prefilter (or the pivot pass) chose, parsed and stored

    def rescope(self) -> None:
        """A ``#Fields`` header is in force: its own prefilter when scopes drop patterns for it
        (``artifacts.scopes``; every pass chooses the same, from the header alone)."""
        if TRIAGE is not None and TRIAGE.scoped and self.selector is not None:
            self.fact_values = []
            self.selector = self._first_pass_selector(self.block.fields)

    def _first_pass_selector(self, fields: list[str] | None = None) -> LineSelector | None:
        """The first pass's prefilter for this file's dialect: the scan's database for a dialect
        that reads facts generically; the stored patterns alone for one that reads none (no call
        per fact line), as does --index full; for one with ``fact_patterns``, the stored ones with
        the fact values this process has learnt, once learning pays (see ``_LEARNT``). ``fields``:
        the header in force, whose scopes may drop stored patterns (``scopes.stored_for``); a set
        that does not compile falls back to every stored pattern (a superset)."""
        if TRIAGE is None or TRIAGE.blob is None:
            return None
        stored = scopes.stored_for(TRIAGE, fields)
        whole = stored is TRIAGE.stored  # the scan's own database holds exactly these (and the facts)
        if not stored or (TRIAGE.fact_from is None and whole):
            return _selector(TRIAGE.blob, TRIAGE.fact_from)
        if TRIAGE.fact_from is None or TRIAGE.mark or getattr(self.dialect, "segment_facts", None) is None:
            # --index full: facts from every row
            return _compiled_selector(stored) or (None if whole else self._first_pass_selector())
        patterns = getattr(self.dialect, "fact_patterns", None)
        if patterns is not None and _LEARNT:
            other, singles, values = patterns(sorted(_LEARNT))
            learnt = (*stored, other, *singles)
            count = len(stored)
            if _FACT_LINES[0] >= LEARN_AFTER or linefilter.is_cached(learnt, linefilter.cache_dir(), count + 1):
                selector = _compiled_selector(learnt, count, count + 1)
                if selector is not None:
                    self.fact_values = values
                    return selector
        if whole:
            return _selector(TRIAGE.blob, TRIAGE.fact_from)
        return _compiled_selector((*stored, *TRIAGE.facts), len(stored)) or self._first_pass_selector()

    def run(self, stream: BinaryIO, first_read: int | None = None, at_start: bool = True) -> None:
        """Parse ``stream``. A byte range of a split file passes ``at_start=False`` (no BOM there)
        and ``first_read`` so its chunks end where the whole-file chunks end (same segments, same
        once-per-segment warnings)."""
        carry = b""
        first = True
        size = first_read or self.chunk
        if at_start and first_read is None and (leading := _leading_headers(stream, size)):
            first = False  # the header lines on their own: the first large read starts at the data
            size -= len(leading)  # and ends where the whole-file chunk ends (byte ranges replay it)
            if leading.startswith(BOM):
                leading = leading[3:]
                self.offset = 3
            self._chunk(leading)
        while True:
            data = stream.read(size)
            size = self.chunk
            chunk = carry + data
            if first:
                first = False
                if at_start and chunk.startswith(BOM):
                    chunk = chunk[3:]
                    self.offset = 3
            if not data:
                if chunk:
                    self._chunk(chunk)
                return
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:  # one line longer than a chunk: the bounded reference reader takes the rest
                if self.pivot is not None:
                    return  # the first pass parsed and stored every line from here
                self._reference(io.BufferedReader(_Chain(chunk, stream)), block=self.block)  # type: ignore[arg-type]
                return
            self._chunk(chunk[:cut])
            carry = chunk[cut:]

    def _chunk(self, chunk: bytes) -> None:
        pos = 0
        for start, end in header_lines(chunk):
            if start > pos:
                self._segment(chunk[pos:start])
            header = chunk[start:end]
            self._settle()
            text = header.rstrip(b"\r\n").decode("utf-8", "replace")
            self.block = apply_header(self.ctx, self.block, text, self.line + 1, self.offset, self.dialect.field_sep)
            if text[1:].partition(":")[0].strip().lower() == "fields":
                self.block_started = False
                self.rescope()
            self.line += 1
            self.offset += len(header)
            pos = end
        if pos < len(chunk):
            self._segment(chunk[pos:])

    def _segment(self, data: bytes) -> None:
        """One segment (lines between headers). Each of its newlines is counted once at most: by
        triage as it numbers the selected lines, by the pivot pass only when a hit needs it."""
        if self.pivot is not None:
            if self._parse_all():  # a log type parsed in full: the first pass stored every line
                self._pass(data, 0, 0)
            else:
                self._pivot(data)
        elif self.selector is not None and not self.mark and not self._parse_all():
            self._triage(data)
        else:
            spans = self._selected(data) if self.mark else None
            table = self._fast(data, None) if self.use_fast else None
            if table is None:
                lines = _lines(data, 0)
                if spans is not None:
                    self._reference_marking(data, spans)
                else:
                    self._reference(io.BytesIO(data), block=self.block)
            else:  # the fast path counted the lines as it split them
                lines = table.num_rows
                self._add(table)
                if spans is not None and self._pieces is not None:
                    self._mark_rows(table, spans, self._pieces)
            self.line += lines
            self.offset += len(data)

    def _selected(self, data: bytes) -> list[tuple[int, int]] | None:
        """--index full: the lines triage would store of this segment (``_triage``'s choice), or
        None where every line is marked (a log type parsed in full)."""
        assert self.selector is not None
        if self._parse_all():
            return [(0, len(data))]
        return _with_ends(self.selector.select(data)[0], data)

    def _mark_rows(self, table: pa.Table, spans: list[tuple[int, int]], pieces: pa.Array) -> None:
        """Store again, in ``selected_events``, the rows of the lines ``spans`` start (a fast segment:
        one row per line; ``pieces``: its lines, the row of a byte position found by bisection)."""
        offsets = memoryview(pieces.buffers()[1]).cast("i")  # string offsets: int32
        base, count = pieces.offset, len(pieces)

        def start(row: int) -> int:  # each line before it lost its newline in the split: one byte a line
            return offsets[base + row] - offsets[base] + row

        rows: list[int] = []
        for begin, end in spans:
            first = bisect.bisect_right(range(count), begin, key=start) - 1
            last = bisect.bisect_left(range(count), end, key=start)
            rows.extend(range(first, last))
        if rows:
            self.ctx.writer.table(SELECTED).add_batch(table.take(pa.array(sorted(set(rows)), pa.int32())))

    def _reference_marking(self, data: bytes, spans: list[tuple[int, int]]) -> None:
        """The reference parser over the segment, its web rows of the lines ``spans`` covers stored
        again in ``selected_events`` as they are written."""
        numbers: set[int] = set()
        before, pos = 0, 0
        for begin, end in spans:
            before += data.count(b"\n", pos, begin)
            inside = data.count(b"\n", begin, end - 1)  # a span of several lines (a log type parsed in full)
            numbers.update(range(self.line + before + 1, self.line + before + inside + 2))
            pos = begin
        writer, event = self.ctx.writer, self.ctx.event

        def marking(row: dict[str, Any]) -> None:
            event(row)
            if row.get("raw_header") is not None and row.get("line") in numbers:
                writer.add(SELECTED, row)

        self.ctx.event = marking  # type: ignore[method-assign]
        try:
            self._reference(io.BytesIO(data), block=self.block)
        finally:
            del self.ctx.event

    def _pass(self, data: bytes, newlines: int, pos: int) -> None:
        """Move past ``data``: ``newlines`` counted before ``pos``, the rest left for ``_settle``."""
        self.line += newlines
        self.offset += len(data)
        self._uncounted.append((data, pos))
        self._uncounted_bytes += len(data) - pos
        if self._uncounted_bytes > 4 * self.chunk:  # never hold many chunks only to count them later
            self._settle()

    def _settle(self) -> None:
        """Count the lines of the segments passed uncounted (``self.line`` is exact after it)."""
        for data, pos in self._uncounted:
            self.line += _lines(data, pos)
        self._uncounted.clear()
        self._uncounted_bytes = 0

    def _parse_all(self) -> bool:
        """Whether this block's log type is parsed in full although triage is on (a rule needs every row)."""
        full = self.triage.full_sources if self.triage is not None else frozenset()
        return bool(full) and ("*" in full or self.dialect.source(self.ctx, self.block) in full)

    def _parse(self, data: bytes, lines: int, numbers: pa.Array | None = None) -> bool:
        """Every line of ``data`` through the fast path; False when it must take the reference parser."""
        if not self.use_fast:
            table = None
        else:
            table = self._fast(data, lines) if numbers is None else self._fast(data, lines, numbers)
        if table is None:
            if numbers is not None:
                return False
            self._reference(io.BytesIO(data), block=self.block)
        else:
            self._add(table)
        return True

    def _add(self, table: pa.Table) -> None:
        self.fast_rows += table.num_rows
        self.ctx.events += table.num_rows
        self.ctx.writer.table("events").add_batch(table)

    def _triage(self, data: bytes) -> None:
        """Only the lines the prefilter selects, plus the first and the last line of the segment
        (so every file's first and last time and every block's header facts stay exact); line
        numbers and offsets stay those of the file."""
        assert self.selector is not None
        # a stretch of NUL (a crash's unwritten space: whole pages) where a full parse warns line by line;
        # every NUL_PROBE-th byte looked at (a strided copy: a memchr over every byte cost +0.1 s of the
        # 2 GB bench scan), its first NUL found only when one is there
        if not self.nul_said and b"\x00" in data[::NUL_PROBE] and (nul := data.find(b"\x00")) >= 0:
            self.nul_said = True
            self.ctx.warn("NUL bytes in the log from here on (binary data, a crash's unwritten space?): the lines "
                          "holding them are not read", self.line + data.count(b"\n", 0, nul) + 1, self.offset + nul)
        store, facts, firsts = self.selector.select_firsts(data)
        if facts or firsts:  # before the stored lines' own facts: the first line of each value is kept
            self._facts(data, facts, {self.fact_values[i]: end for i, end in firsts.items()})
        newlines, pos = self._store(data, _with_ends(store, data))
        self.line += newlines + _lines(data, pos)  # from the last line stored: one line
        self.offset += len(data)

    def _facts(self, data: bytes, spans: list[tuple[int, int]], firsts: dict[str, int]) -> None:
        """Lines selected only for a fact (the OWA build in a resource path): the dialect finds the
        first line of each value the file has not shown yet (``segment_facts``), without parsing
        or storing rows; only those few lines get a line number. ``firsts``: where each value the
        prefilter knew first shows. The values found are learnt for this process's next files."""
        find = getattr(self.dialect, "segment_facts", None)
        if find is None or not self.block.fields:
            return
        _FACT_LINES[0] += len(spans)
        before, pos = 0, 0
        for start, fact, value, confidence in find(self.block, data, spans, self.ctx.facts, firsts):
            before += newlines(data, pos, start)
            pos = start
            self.ctx.fact(fact, value, self.line + before + 1, confidence)
            if len(_LEARNT) < LEARN_AT_MOST:
                _LEARNT.add(value)

    def _pivot(self, data: bytes) -> None:
        """The pivot pass: lines holding an attacker indicator that the first pass did not store.
        The segments are the first pass's (same chunking, byte ranges replay it), so the lines it
        stored are found again exactly: its selection plus the segment's first and last line."""
        assert self.selector is not None and self.pivot is not None
        spans = self.pivot.spans(data)
        new: list[tuple[int, int]] = []
        if spans:
            stored = set(_with_ends(self.selector.spans(data), data))
            if self.searched is not None:  # an earlier round of the pass stored these
                stored.update(self.searched.spans(data))
            new = [s for s in spans if s not in stored]
        if new:
            self._settle()
            self._pass(data, *self._store(data, new))
        else:
            self._pass(data, 0, 0)

    def _store(self, data: bytes, spans: list[tuple[int, int]]) -> tuple[int, int]:
        """Parse and store the lines ``spans`` of ``data`` under their own line numbers and offsets
        (``self.line`` is that of ``data``'s start). Returns the newlines it counted and up to where:
        the caller counts on from there, so no byte is counted twice."""
        if not spans:
            return 0, 0
        runs: list[tuple[int, int, int]] = []  # (first line number, start, end) of consecutive lines
        numbers: list[int] = []
        before, pos = 0, 0  # newlines before ``pos``
        for start, end in spans:
            before += newlines(data, pos, start)
            pos = start
            line = self.line + before + 1
            if runs and runs[-1][2] == start:
                runs[-1] = (runs[-1][0], runs[-1][1], end)
            else:
                runs.append((line, start, end))
            numbers.append(line)
        self.selected_rows += len(numbers)
        if isinstance(self.ctx, PivotContext):
            self.ctx.lines.update(numbers)
        joined = b"".join(data[s:e] for _, s, e in runs)
        if not joined.endswith(b"\n"):
            joined += b"\n"  # the segment's last line had none: the reference adds nothing either
        if not self._parse(joined, len(numbers), pa.array(numbers, pa.int64())):
            for first, start, end in runs:
                self._reference(io.BytesIO(data[start:end]), block=self.block, line0=first - 1,
                                offset0=self.offset + start)
        return before, pos

    def _reference(self, stream: BinaryIO, block: Block | None = None, line0: int | None = None,
                   offset0: int | None = None) -> None:
        current = block
        for number, text, rec_block, record in iter_records(
            self.ctx, stream, self.dialect.split, self.dialect.field_sep, block,
            self.line if line0 is None else line0, self.offset if offset0 is None else offset0,
        ):
            if rec_block is not current or not self.block_started:
                current = rec_block
                self.block_started = True
                self.dialect.on_block(self.ctx, rec_block, number)
            self.slow_rows += 1
            self.dialect.handle(self.ctx, number, text, rec_block, record)

    def _fast(self, data: bytes, lines: int | None, numbers: pa.Array | None = None) -> pa.Table | None:
        """The segment's rows, or None where the reference parser must read it. ``lines``: its count
        of lines, or None (counted here, from the lines split for ``raw``: no pass of its own)."""
        if len(data) < MIN_FAST_BYTES:
            return None  # the kernels cost about a millisecond: below this the reference parser is faster
        block = self.block
        fields = block.fields
        if (not fields or len(set(fields)) != len(fields) or not self.dialect.fast_ready(self.ctx, block)
                or b"\x00" in data):
            return None
        # a last line ending in a bare CR: the reference strips it; blank lines (Arrow reads them as
        # rows of empty values) are found among the split lines (``raw_lines``), not by searching
        if data.startswith((b"\n", b"\r")) or data.endswith(b"\r"):
            return None
        if _has_line_of(data, MAX_LINE):
            return None
        sep, quoted = self.dialect.field_sep, bool(self.dialect.quote_char) and b'"' in data
        derivable = _derivable(fields, data, sep)
        # Where ``fields`` is derived from the lines, only the columns the dialect reads become arrays
        # (the reader still checks every row's count of values): 36% less reader time on HttpProxy's
        # 74 columns. Their values were UTF-8 checked by the reader, the rest of the segment is here.
        needed = getattr(self.dialect, "columns", None)
        include = [f for f in fields if f in needed] if needed and derivable else []
        if include and not data.isascii():
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                return None
        found = raw_lines(data)
        if found is None or (lines is not None and len(found[0]) != lines):
            return None
        split, pieces = found
        self._pieces = pieces if self.mark else None
        raw = self._read(data, fields, include)
        if raw is None or raw.num_rows != len(split):
            return None  # a lone CR ends an Arrow row (one row more), an open quote takes a line end
        checked = False
        if quoted and include:  # the columns not read cannot be compared: the quoted lines are checked
            checked = _quoted_minimally(split, sep)
            if not checked:  # a line quoted otherwise: every column, and those rows keep their JSON
                raw = self._read(data, fields, [])
                if raw is None or raw.num_rows != len(split):
                    return None
        if quoted and not checked and _line_break_in_values(raw):
            return None  # a quote left open took a line end into a value: the reference decides
        if numbers is not None:  # triage: the selected lines' own numbers
            first_line, lines_array = numbers[0].as_py(), numbers
        else:
            first_line = self.line + 1
            ones = pa.repeat(pa.scalar(1, pa.int64()), raw.num_rows)
            lines_array = pc.add(pc.cumulative_sum(ones), first_line - 1)
        stored = stored_fields(raw, fields, data, sep, derivable, quoted and not checked, split)
        seg = raw.append_column("__line", lines_array)
        for name, column in zip(("__fields", "__raw", "__raw_header"), stored, strict=True):
            seg = seg.append_column(name, column)
        result = self.dialect.fast_arrow(self.ctx, block, seg)
        if result is None:  # a value the kernels cannot take as the reference does
            return None
        if not self.block_started:
            self.block_started = True
            self.dialect.on_block(self.ctx, block, first_line)
        self.dialect.fast_facts(self.ctx, seg, block)
        return result

    def _read(self, data: bytes, fields: list[str], include: list[str]) -> pa.Table | None:
        """Arrow's CSV reader over the segment, every value a string (``include``: only those columns
        become arrays; empty: all); None where it refuses the segment."""
        try:
            return pacsv.read_csv(
                io.BytesIO(data),
                read_options=pacsv.ReadOptions(column_names=fields, block_size=max(1 << 20, MAX_LINE * 2),
                                               use_threads=False),  # one core per worker: --jobs says how many
                parse_options=pacsv.ParseOptions(
                    delimiter=self.dialect.field_sep, quote_char=self.dialect.quote_char, double_quote=True,
                    escape_char=False, newlines_in_values=False, ignore_empty_lines=False),
                convert_options=pacsv.ConvertOptions(
                    column_types={f: pa.string() for f in fields}, strings_can_be_null=False,
                    quoted_strings_can_be_null=False, include_columns=include),
            )
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return None


def _leading_headers(stream: BinaryIO, size: int) -> bytes:
    """The ``#`` lines at the start of ``stream`` (a BOM before them included) that its buffer holds
    whole, read, or nothing. Read with the data, the segment after them was sliced off the first
    large read: a copy of most of a log. Only when a line ends after them within the first read of
    ``size`` bytes, so that read is cut at the same newline as the whole chunk would be."""
    peek = getattr(stream, "peek", None)
    if peek is None:
        return b""
    ahead = peek(1)
    start = pos = 3 if ahead.startswith(BOM) else 0
    while ahead.startswith(b"#", pos):
        end = ahead.find(b"\n", pos)
        if end < 0:
            break
        pos = end + 1
    if pos == start or not 0 <= ahead.find(b"\n", pos) < size:
        return b""
    return stream.read(pos)


def _lines(data: bytes, pos: int) -> int:
    """Lines of ``data`` from ``pos`` (a line start) on; a last line without a newline counts."""
    return newlines(data, pos, len(data)) + (0 if data.endswith(b"\n") or pos >= len(data) else 1)




_SELECTORS: dict[tuple[bytes, int | None], LineSelector] = {}


def _selector(blob: bytes | None, fact_from: int | None = None) -> LineSelector | None:
    """The process's selector for this database (loaded once per worker; the pivot pass uses two)."""
    if blob is None:
        return None
    selector = _SELECTORS.get((blob, fact_from))
    if selector is None:
        if len(_SELECTORS) >= 4:
            _SELECTORS.clear()
        selector = _SELECTORS[(blob, fact_from)] = LineSelector(blob, fact_from)
    return selector


# Fact values (OWA builds) this process has read: its later files' prefilter matches their lines
# first-match-only (``W3cEngine._first_pass_selector``). Learning starts at once when that database
# is in the disk cache (an earlier scan compiled it), else once the generic fact pattern has cost
# more calls than its compile does (~0.09 s ~ 75,000 calls); a log that shows many values (crafted
# paths) stops adding them, and lines of values not learnt are read as before.
_LEARNT: set[str] = set()
_FACT_LINES = [0]  # fact lines selected by the generic pattern in this process
LEARN_AFTER = 50_000
LEARN_AT_MOST = 16
_COMPILED: dict[tuple[tuple[str, ...], int | None, int | None], LineSelector | None] = {}


def _compiled_selector(patterns: tuple[str, ...], fact_from: int | None = None,
                       single_from: int | None = None) -> LineSelector | None:
    """A selector of ``patterns`` compiled in this process (from the disk cache after the first
    scan), once per process; None when they do not compile together (the caller falls back)."""
    key = (patterns, fact_from, single_from)
    if key not in _COMPILED:
        if len(_COMPILED) >= 8:
            _COMPILED.clear()
        try:
            blob = linefilter.compile_patterns(patterns, linefilter.cache_dir(), single_from).blob
        except linefilter.PatternError:
            _COMPILED[key] = None
        else:
            _COMPILED[key] = LineSelector(blob, fact_from, single_from)
    return _COMPILED[key]


def pivot_selector() -> LineSelector | None:
    """The pivot pass's selector of this process (None outside that pass)."""
    return _selector(TRIAGE.pivot if TRIAGE is not None and TRIAGE.blob is not None else None)


def _with_ends(spans: list[tuple[int, int]], data: bytes) -> list[tuple[int, int]]:
    """``spans`` plus the first and the last non-empty line of ``data``, in order, each once."""
    size = len(data)
    first_end = data.find(b"\n") + 1 or size
    last_start = data.rfind(b"\n", 0, size - 1) + 1 if size > 1 else 0
    extra = [(0, first_end), (last_start, size)]
    if spans and spans[0][0] == 0:
        extra.pop(0)
    if spans and spans[-1][0] == last_start and extra:
        extra.pop()
    if not extra:
        return spans
    return sorted(set(spans) | set(extra))


def header_lines(chunk: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of every line starting with ``#``, newline included (``next_header``)."""
    size = len(chunk)
    if chunk.startswith(b"#"):
        start = 0
    else:
        start = next_header(chunk, 0)
        if start < 0:
            return
    while True:
        end = chunk.find(b"\n", start) + 1 or size
        yield start, end
        if end >= size:
            return
        if not chunk.startswith(b"#", end):
            start = next_header(chunk, end)
            if start < 0:
                return
        else:
            start = end


def next_header(chunk: bytes, pos: int) -> int:
    """Where the next line starting with ``#`` starts after ``pos``, or -1. ``bytes.find`` of the one
    byte ``#`` runs at memchr speed (measured: 0.45 s of a 216 MB pivot pass went to finding the
    two bytes ``\\n#``, which CPython searches byte by byte); a log whose lines hold many ``#``
    takes the two-byte search after a few misses."""
    for _ in range(64):
        i = chunk.find(b"#", pos)
        if i < 0:
            return -1
        if i > 0 and chunk[i - 1] == 10:  # b"\n"
            return i
        pos = i + 1
    i = chunk.find(b"\n#", max(pos - 1, 0))
    return i + 1 if i >= 0 else -1


def raw_lines(data: bytes) -> tuple[pa.Array, pa.Array] | None:
    """Each line of ``data`` as the reference reads it (line end stripped), split by one Arrow
    kernel, and the lines as split (CRs kept: each line's byte position follows from their
    lengths); None when one is blank (Arrow's CSV reader would take it for a row of empty values).
    (Splitting CRLF logs at CRLF, no trim, measured 1.3 against 1.6 ms per 4 MB: not worth a retry.)"""
    text = pa.Array.from_buffers(pa.string(), 1, [None, pa.array([0, len(data)], pa.int32()).buffers()[1],
                                                  pa.py_buffer(data)])
    pieces = pc.split_pattern(text, "\n").values  # type: ignore[attr-defined]
    if data.endswith(b"\n"):
        pieces = pieces.slice(0, len(pieces) - 1)
    try:
        values = pc.utf8_rtrim(pieces, characters="\r") if b"\r" in data else pieces
    except pa.ArrowInvalid:  # not UTF-8: the reference parser reads the segment (the CSV reader refuses it too)
        return None
    if len(values) and pc.min(pc.binary_length(values)).as_py() == 0:
        return None
    return values, pieces


def _plain_names(fields: list[str], sep: str) -> bool:
    """Names JSON writes as they are (no quote, backslash or control character), the separator not
    among them: the view can then write each key without escaping it."""
    return all(sep not in f and '"' not in f and "\\" not in f and f.isprintable() for f in fields)


def _derivable(fields: list[str], data: bytes, sep: str) -> bool:
    """Whether the view can derive this segment's ``fields`` from its lines (``stored_fields``)."""
    # a CR that ends no line is not looked for: outside quotes it ends one of Arrow's rows (the row
    # count then differs from the lines'), inside them the quoted lines' check or the line-break one
    # refuses it (two counts of the segment's bytes saved)
    return _plain_names(fields, sep) and not _has_control_byte(data)


_CONTROL: list[Any] = []  # this process's (Hyperscan database of one control byte, its stop exception)


def _has_control_byte(data: bytes) -> bool:
    """Whether ``data`` holds a byte JSON escapes other than a line end (a tab included). Hyperscan
    finds one byte class with SIMD: 1.0 against 5.3 ms per 16 MB for ``bytes.translate``, which
    stays the way where the module cannot be loaded."""
    if not _CONTROL:
        _CONTROL.append(_control_database() if linefilter.available() else None)
    if _CONTROL[0] is None:
        return bool(data.translate(None, _NOT_CONTROL))
    database, stopped = _CONTROL[0]
    found: list[int] = []

    def stop(_id: int, start: int, _end: int, _flags: int, _ctx: object) -> bool:
        found.append(start)
        return True  # the first one decides

    with contextlib.suppress(stopped):
        database.scan(data, match_event_handler=stop)
    return bool(found)


def _control_database() -> tuple[Any, type[Exception]]:
    import hyperscan

    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(expressions=[rb"[\x00-\x09\x0b\x0c\x0e-\x1f]"], ids=[0], elements=1,
                     flags=[hyperscan.HS_FLAG_SINGLEMATCH])
    return database, hyperscan.ScanTerminated


def stored_fields(raw: pa.Table, fields: list[str], data: bytes, sep: str, derivable: bool, quoted: bool,
                  lines: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """``fields``, ``raw`` and ``raw_header`` of a segment's rows (``lines``: ``raw_lines``; ``raw``
    holds every column where ``quoted`` or not ``derivable``). The JSON is stored only where the view
    could not derive it byte for byte from the line (``events.store.FIELDS_SQL``: the line split on
    the separator, or as CSV where it holds a quote, values escaped for ``"`` and ``\\`` only): a
    segment with control bytes, or a quoted row that is not quoted the minimal way
    (``_minimally_quoted``; ``quoted`` False where ``_quoted_minimally`` proved every line is).
    Measured on the quick bench corpus: building and writing the JSON of every row was ~40% of a
    full index's worker time; the lines cost one split kernel."""
    rows = raw.num_rows
    names = pa.array([sep + sep.join(fields)])  # one dictionary value: no copy of the header per row
    header = pa.DictionaryArray.from_arrays(pa.repeat(pa.scalar(0, pa.int32()), rows), names)
    if not derivable:
        return fields_json(raw, fields, data), lines, header
    if not quoted:
        return pa.nulls(rows, pa.string()), lines, header
    with_quote = pc.match_substring(lines, '"')
    rank = pc.subtract(pc.cumulative_sum(pc.cast(with_quote, pa.int32())), 1)
    odd = pc.invert(_minimally_quoted(raw.filter(with_quote), pc.filter(lines, with_quote), sep))
    if not pc.any(odd).as_py():
        return pa.nulls(rows, pa.string()), lines, header
    odd = pc.if_else(with_quote, odd.take(pc.if_else(with_quote, rank, pa.scalar(0, pa.int32()))), False)
    json = _one_array(fields_json(raw.filter(odd), fields, data))  # each odd row takes its JSON by its rank
    place = pc.subtract(pc.cumulative_sum(pc.cast(odd, pa.int32())), 1)
    return json.take(pc.if_else(odd, place, pa.scalar(None, pa.int32()))), lines, header


def _quoted_minimally(lines: pa.Array, sep: str) -> bool:
    """Whether every line holding a quote is CSV quoted the minimal way (``_minimally_quoted``'s
    form: a value is quoted exactly when it holds the separator or a quote, quotes doubled, and
    no CR in it), proven by one RE2 match of those lines: the values then are the ones any CSV
    reader and the view's split read, so the reader need not convert the columns the dialect does
    not read in order to compare them (HttpProxy: 17 of 74)."""
    with_quote = pc.filter(lines, pc.match_substring(lines, '"'))
    return bool(pc.all(pc.match_substring_regex(with_quote, _minimal_csv_line(sep))).as_py())


def _minimal_csv_line(sep: str) -> str:
    """RE2 pattern of a line in ``_minimally_quoted``'s form."""
    s = re.escape(sep)
    inner = '(?:[^"\\r]|"")'
    field = f'(?:[^"\\r{s}]*|"{inner}*(?:{s}|""){inner}*")'
    return f"^{field}(?:{s}{field})*$"


def _minimally_quoted(raw: pa.Table, lines: pa.Array, sep: str) -> pa.Array:
    """Per row: whether the line is its values written back as CSV with minimal quoting (a value is
    quoted when it holds the separator or a quote, quotes doubled), the one form the view's CSV split
    is proven to undo. Only the columns that hold such a value are quoted: one join kernel a segment."""
    special = _columns_holding(raw, (sep.encode(), b'"')) if raw.num_rows else set()
    parts: list[Any] = []
    for i in range(raw.num_columns):
        column = _one_array(raw.column(i))
        if i in special:
            needs = pc.or_(pc.match_substring(column, sep), pc.match_substring(column, '"'))
            wrapped = pc.binary_join_element_wise('"', pc.replace_substring(column, '"', '""'), '"', "")
            column = pc.if_else(needs, wrapped, column)
        parts.append(column)
    return pc.equal(pc.binary_join_element_wise(*parts, sep), lines)


def _one_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as one array (kernels and ``take`` then run once, not per chunk)."""
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else pa.concat_arrays(column.chunks)
    return column


# every byte but the control bytes JSON escapes (line ends are gone before values exist; a lone CR
# also ends a CSV row, so such segments never reach fields_json)
_NOT_CONTROL = bytes(b for b in range(256) if b >= 32 or b in (10, 13))


def fields_json(raw: pa.Table, fields: list[str], data: bytes) -> pa.ChunkedArray:
    """Every row's fields as a JSON object string, byte-equal to the reference parser's
    ``orjson.dumps(record)``. Built with one Arrow concatenation kernel: keys are constants, values
    are escaped only in columns that hold a quote or backslash; a segment with control bytes
    (which JSON writes as escapes) takes DuckDB's ``json_object`` instead. Measured on HttpProxy
    logs (74 fields): 38 ms per 10 MB against 100 ms for ``json_object``."""
    # deletes all but control bytes (~3 ms per 10 MB); a CR that ends no line sits inside a quoted value
    if data.translate(None, _NOT_CONTROL) or data.count(b"\r") != data.count(b"\r\n"):
        con = _connection()  # this process's, made on first need
        con.register("raw_seg", raw)
        try:
            pairs = ", ".join(f"{literal(f)}, {identifier(f)}" for f in fields)
            return con.sql(f"SELECT json_object({pairs})::VARCHAR FROM raw_seg").to_arrow_table().column(0)
        finally:
            con.unregister("raw_seg")
    specials = [s for s in ("\\", '"') if s.encode() in data]
    escape = _columns_holding(raw, tuple(s.encode() for s in specials)) if specials else set()
    parts: list[Any] = []
    for i, name in enumerate(fields):
        column = raw.column(i)
        if i in escape:  # only columns that hold one pay for the replace
            for special in specials:
                column = pc.replace_substring(column, special, "\\" + special)
        parts.append(("{" if i == 0 else '",') + orjson.dumps(name).decode() + ':"')
        parts.append(column)
    parts.append('"}')
    return pc.binary_join_element_wise(*parts, "")


def _columns_holding(raw: pa.Table, needles: tuple[bytes, ...]) -> set[int]:
    """Indexes of the columns with a value holding one of ``needles``. The columns are laid end to
    end (one copy of the values) and each column's byte range searched with ``bytes.find``: Arrow's
    substring kernels cost ~35 ns a value (2 ms a segment of HttpProxy's 74 columns), this ~0.1 ms."""
    rows = raw.num_rows
    every = pa.concat_arrays([chunk for column in raw.columns for chunk in column.chunks])
    offsets_buffer, data = every.buffers()[1], every.buffers()[2]
    if rows == 0 or offsets_buffer is None or data is None:
        return set()
    base = every.offset
    offsets = memoryview(offsets_buffer)[: (base + len(every) + 1) * 4].cast("i")  # string: int32 offsets
    text = data.to_pybytes()
    return {i for i in range(raw.num_columns)
            if any(text.find(n, offsets[base + i * rows], offsets[base + (i + 1) * rows]) >= 0 for n in needles)}


def _line_break_in_values(raw: pa.Table) -> bool:
    """Whether a value holds a CR or LF (all columns searched at once)."""
    return bool(_columns_holding(raw, (b"\r", b"\n")))


def _has_line_of(data: bytes, limit: int) -> bool:
    """Whether any line (newline included) is ``limit`` bytes or longer. Jumps to the last newline
    in each window of ``limit`` bytes: about len/limit C-speed searches, no per-line work."""
    pos, size = 0, len(data)
    while size - pos >= limit:
        last = data.rfind(b"\n", pos, pos + limit - 1)
        if last < 0:
            return True
        pos = last + 1
    return False


Runner = Callable[[ParseContext, BinaryIO], None]
