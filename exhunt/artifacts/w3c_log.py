"""What the two ``#Fields`` log families share: IIS (``iis.py``) and Exchange's own logs
(``exchange_logs.py``).

Both are claimed by their ``#Software`` header (or by a path glob when a ``#Fields`` header is
there), transcoded first when Windows PowerShell re-saved them as UTF-16, parsed by the W3C engine
(``w3c_fast``, reference parser ``w3c``) with their dialect, and split in byte ranges when big. Each
subclass states only what differs: its name, the ``#Software`` text, its globs, its dialect and
the lines triage must parse for its facts. The status-code and URL-decoding rules both dialects
apply, in Python and in Arrow, and the Arrow helpers of their fast paths are here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO, ClassVar
from urllib.parse import unquote, unquote_plus

import pyarrow as pa
import pyarrow.compute as pc

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.encoding import utf8_stream
from exhunt.artifacts.w3c import header_value
from exhunt.artifacts.w3c_fast import W3cEngine


def status_code(text: str | None) -> int | None:
    """HTTP status: plain ASCII digits that fit the column, else nothing (the raw value stays in fields)."""
    return int(text) if text and len(text) <= 9 and text.isascii() and text.isdigit() else None


def arrow_status(column: pa.Array) -> pa.Array:
    """``status_code`` with Arrow kernels, for the fast path."""
    digits = pc.match_substring_regex(column, "^[0-9]{1,9}$")
    return pc.cast(pc.if_else(digits, column, pa.scalar(None, pa.string())), pa.int32())


def one_chunk(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else pa.concat_arrays(column.chunks)


class SegmentColumns:
    """A segment's columns, each made one array when first read: the dialects read a dozen of
    HttpProxy's 74 columns, and joining the chunks of all of them cost ~0.5 s per 200 MB."""

    def __init__(self, seg: pa.Table) -> None:
        self._seg = seg
        self._names = frozenset(seg.column_names)
        self._done: dict[str, pa.Array] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __getitem__(self, name: str) -> pa.Array:
        column = self._done.get(name)
        if column is None:
            column = self._done[name] = one_chunk(self._seg.column(name))
        return column

    def get(self, name: str) -> pa.Array | None:
        return self[name] if name in self._names else None


def holds(column: pa.Array, text: str) -> bool:
    return bool(pc.any(pc.match_substring(column, text)).as_py())


_PLUS_TO_SPACE = bytes.maketrans(b"+", b" ")


def plus_to_space(column: pa.Array) -> pa.Array:
    """Every ``+`` of a string column made a space: one byte for one, so the values' bytes are
    translated at once and the offsets kept (Arrow's ``replace_substring`` searched value by value:
    2.2 against 0.6 ms for 22k IIS user agents)."""
    if isinstance(column, pa.ChunkedArray):
        column = one_chunk(column)
    validity, offsets, values = column.buffers()
    if values is None or not values.size:
        return column
    translated = pa.py_buffer(values.to_pybytes().translate(_PLUS_TO_SPACE))
    return pa.Array.from_buffers(column.type, len(column), [validity, offsets, translated], column.null_count,
                                 column.offset)


def each_distinct(column: pa.Array, decode: Callable[[str], str]) -> pa.Array:
    """``decode`` of every value, called once per distinct value (logs repeat theirs): how the fast
    paths percent-decode (no Arrow kernel does) with the reference's own ``unquote``."""
    codes = pc.dictionary_encode(column)
    values = pa.array([decode(v) for v in codes.dictionary.to_pylist()], pa.string())
    return values.take(codes.indices)


def decoded_url(path: str | None, query: str | None) -> str:
    """A request's path and query percent-decoded as the client meant them: ``+`` is a space only in
    the query (form encoding); in a path it is a plus (``/owa/auth/a+b.aspx`` names that file, and
    a pivot on it must find it). ``query`` as the URL holds it, from its ``?`` on: HttpProxy logs it
    so; an IIS caller adds the ``?`` its log leaves out."""
    return unquote(path or "") + unquote_plus(query or "")


def arrow_decoded_url(path: pa.Array, query: pa.Array) -> pa.Array:
    """``decoded_url`` of every row, for the fast paths: each distinct value percent-decoded once
    by the reference's own functions, a query without any ``%`` only its ``+`` made spaces."""
    if holds(path, "%"):
        path = each_distinct(path, unquote)
    query = each_distinct(query, unquote_plus) if holds(query, "%") else plus_to_space(query)
    return pc.binary_join_element_wise(pc.coalesce(path, ""), pc.coalesce(query, ""), "")


def http_rows(ctx: ParseContext, rows: int, source: str, log_type: str | None, columns: SegmentColumns,
              ts: pa.Array, **request: pa.Array) -> pa.Table:
    """A segment's store rows of HTTP requests: the columns every row of the segment shares (host,
    source, log type, path, kind), its line numbers, times, raw lines and fields (``columns``:
    ``__line``, ``__raw``, ``__raw_header``, ``__fields``) and the dialect's own request columns."""

    def constant(value: str | None) -> pa.Array:
        return pa.repeat(pa.scalar(value, pa.string()), rows)

    return pa.table({
        "host": constant(ctx.host), "source": constant(source), "log_type": constant(log_type),
        "path": constant(ctx.file.rel), "line": columns["__line"], "ts": ts, "kind": constant("http"),
        **request, "fields": columns["__fields"], "raw": columns["__raw"], "raw_header": columns["__raw_header"],
    })


def facts_by_first_line(ctx: ParseContext, values: pa.Array, lines: pa.Array, fact: str, confidence: str) -> None:
    """One fact per distinct value of ``values`` (no nulls) at the first of its ``lines``, in the
    order the file shows them: a few Arrow calls per value, no query (a segment's DuckDB query for
    this cost more than its parse)."""
    first = []
    for value in pc.unique(values).to_pylist():
        first.append((pc.min(pc.filter(lines, pc.equal(values, value))).as_py(), value))
    for line, value in sorted(first):
        ctx.fact(fact, value, line, confidence)


class W3cLog(Artifact):
    """Base of the ``#Fields`` log artifacts; not registered itself."""

    is_log = True
    head_marks = (b"#software:", b"#fields:")  # ``claims`` needs one of the two headers
    fast = True  # tests turn the fast path off to compare it with the reference parser
    software: ClassVar[str] = ""  # lower-case text of the ``#Software`` header that claims a file
    # triage: lines the parser needs beyond the checks' own (for its facts)
    triage_patterns: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        if cls.software and cls.software in (header_value(head, "Software") or "").lower():
            return True
        return header_value(head, "Fields") is not None and super().claims(rel_lower, head)

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        stream = utf8_stream(ctx, stream)  # UTF-16 (Windows PowerShell's Out-File) is transcoded first
        W3cEngine(ctx, cls.range_dialect(), use_fast=cls.fast).run(stream)
