"""Windows events exported as CSV: a header row naming an event id and a time column.

Event Viewer's "Save as CSV", EvtxECmd, Splunk and Sentinel/Log Analytics CSV exports all have one
row per event and a header; each row goes through the flat mapping of ``eventshapes`` (empty cells
are absent values), so its columns equal the EVTX reader's. EvtxECmd writes ``TimeCreated`` in UTC
without an offset (its documented convention, recognised by its ``PayloadData1``/``MapDescription``
columns) and the EventData as JSON in ``Payload``; any other naive time column is local and is
reported, never guessed. Quoted cells may span lines (Event Viewer's descriptions do); a row whose
cell count differs from the header's is a warning with its line and the rest is read.
"""

from __future__ import annotations

import csv
import io
from typing import Any, BinaryIO

from exhunt.artifacts import eventshapes
from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.encoding import utf8_stream
from exhunt.artifacts.ndjson import TimeProblems

ID_COLUMNS = frozenset(k.lower() for k in eventshapes.ID_KEYS)
TIME_COLUMNS = frozenset(k.lower() for k, _ in eventshapes.TIME_KEYS) | {"date", "date and time"}
DELIMITERS = (",", "\t", ";")
SOURCE_COLUMNS = frozenset(k.lower() for k in (*eventshapes.CHANNEL_KEYS, *eventshapes.PROVIDER_KEYS,
                                                *eventshapes.SENTINEL_PROVIDER_KEYS))
EVTXECMD_MARKERS = frozenset({"payloaddata1", "mapdescription"})
MAX_FIELD = 1 << 20


def _text(head: bytes) -> str:
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.decode("utf-8", "replace")


def header_of(head: bytes) -> tuple[list[str], str] | None:
    """The header's column names and delimiter when the first line names an event id and a time,
    and the first row (when the head holds it) has a number there: Get-MessageTrackingLog's CSV
    has ``EventId`` and ``Timestamp`` columns too, with RECEIVE/DELIVER in them."""
    lines = _text(head).split("\n", 2)
    first_line = lines[0].rstrip("\r")
    if not first_line or first_line.startswith(("{", "[", "<", "#")) or "\x00" in first_line or "\r" in first_line:
        return None
    for delimiter in DELIMITERS:
        if delimiter not in first_line:
            continue
        try:
            names = next(csv.reader([first_line], delimiter=delimiter))
        except csv.Error:
            return None
        lowered = [n.strip().lower() for n in names]
        ids = [i for i, n in enumerate(lowered) if n in ID_COLUMNS]
        if not ids or not TIME_COLUMNS.intersection(lowered):
            continue
        if all(lowered[i] == "id" for i in ids) and not SOURCE_COLUMNS.intersection(lowered):
            continue  # a bare "Id" is any table's key: an event export names its log or provider too
        if len(lines) > 2 and "\r" not in lines[1].rstrip("\r"):  # a complete first row: check its id
            try:
                row = next(csv.reader([lines[1].rstrip("\r")], delimiter=delimiter), [])
            except csv.Error:
                return None
            if len(row) > ids[0] and not row[ids[0]].strip().isdigit():
                return None
        return [n.strip() for n in names], delimiter
    return None


class EventCsv(Artifact):
    """CSV exports of Windows events (Event Viewer, EvtxECmd, Splunk, Sentinel)."""

    name = "eventcsv"
    head_start = rb"(?:\xef\xbb\xbf)?[^{\[<#\n][^\n]*[,\t;]"  # a first line with a delimiter
    is_log = True
    is_event_log = True

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        return header_of(head) is not None

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        stream = utf8_stream(ctx, stream)  # a CSV saved by Windows PowerShell 5.1 is UTF-16
        head = stream.peek(4096)[:4096] if hasattr(stream, "peek") else b""
        found = header_of(head)
        if found is None:
            ctx.warn("CSV header without an event id and a time column", line=1, offset=0)
            return
        names, delimiter = found
        lowered = {n.lower() for n in names}
        utc_columns = ("TimeCreated",) if lowered & EVTXECMD_MARKERS else ()
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="\n")  # type: ignore[arg-type]
        try:
            _rows(ctx, csv.reader(text, delimiter=delimiter), names, utc_columns)
        finally:
            text.detach()  # the worker goes on reading the stream for the hashes


def _rows(ctx: ParseContext, reader: Any, names: list[str], utc_columns: tuple[str, ...]) -> None:
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD))
    times = TimeProblems(ctx)
    header_read = False
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            ctx.warn(f"unreadable CSV row: {exc}", line)
            continue
        if not header_read:
            header_read = True
            continue
        if not cells or all(not c for c in cells):
            continue
        extra = None
        if len(cells) == len(names) + 1:  # Event Viewer: the description follows the named columns
            extra = cells.pop()
        if len(cells) != len(names):
            ctx.warn(f"CSV row with {len(cells)} cells, the header has {len(names)}: skipped", line)
            continue
        doc = {name: cell for name, cell in zip(names, cells, strict=True) if name}
        if extra and "Message" not in doc:
            doc["Message"] = extra
        try:
            row, problem = eventshapes.record(doc, "csv", utc_columns)
        except (TypeError, ValueError, AttributeError) as exc:
            ctx.warn(f"unreadable event structure ({exc})", line)
            continue
        if row.get("event_id") is None:
            ctx.warn("CSV row without an event id: skipped", line)
            continue
        row["line"] = line
        if row["ts"] is None:
            times.missing(problem, line, None)
        ctx.event(row)
    times.finish()
