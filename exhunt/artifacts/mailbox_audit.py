"""Mailbox audit log exports: ``Search-MailboxAuditLog -ShowDetails | Export-Csv`` and the XML report
that ``New-MailboxAuditLogSearch`` mails (``<SearchResults><Event Owner=… LastAccessed=…>``).

One ``mailbox_audit`` event per entry: ``ts`` from ``LastAccessed``, ``user`` the logon account,
``client_ip`` the client address (brackets and port removed), ``cmdlet`` the operation; every column
or attribute stays in ``fields``, plus ``SourceItemsCount`` (the items an entry names). Export-Csv
writes ``LastAccessed`` in the exporting machine's culture and time zone: ISO and US
(``3/3/2021 3:12:45 AM``) forms are read as UTC, and a file with such times says so once (a warning
naming the assumption: the times may be off by that machine's UTC offset, and a day/month date is
read as month/day); anything else is a warning and the row is kept.
The XML is parsed by expat with document type declarations refused (no entity expansion).
Both are read as a stream, entry by entry, whatever their size: the whole export had been read into
memory and copied three times (a 256 MiB one held well over 1 GB), and anything past 256 MiB was
left unread.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import UTC, datetime
from typing import Any, BinaryIO
from xml.parsers import expat

import orjson

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.timeparse import parse_ts

CSV_MARKERS = ("MailboxOwnerUPN", "LogonType", "LastAccessed")
HEAD = 4096  # enough to tell the encoding and the kind of export
READ = 1 << 20  # the XML's read size
US_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S")
ZONE_RE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2}| UTC)$", re.I)  # an ISO time that says its zone
ZONE_NOTE = ("LastAccessed carries no time zone (Export-Csv writes the exporting machine's local time and "
             "culture): read as UTC, a d/m/y date as en-US m/d/y; shift the times by that machine's UTC offset")


def _encoding(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(head) > 1 and head[1:2] == b"\x00":
        return "utf-16-le"
    return "utf-8-sig"


def _text(data: bytes) -> str:
    return data.decode(_encoding(data), "replace")


def when(text: str | None) -> tuple[datetime | None, bool]:
    """The time of a ``LastAccessed`` value, and whether it had no zone (read as UTC: the caller says
    so once a file, since Export-Csv writes the exporting machine's local time and culture)."""
    if not text:
        return None, False
    value = parse_ts(text)
    if value is not None:
        return value, ZONE_RE.search(text.strip()) is None
    for fmt in US_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC), True
        except ValueError:
            continue
    return None, False


def client(text: str | None) -> str | None:
    value = (text or "").strip()
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value or None


class MailboxAuditExport(Artifact):
    name = "mailbox_audit"
    head_marks = (b"<searchresults",)
    head_start = rb"[^\n]*(?:\n[^\n]*)?mailboxownerupn"  # the CSV's first two lines
    is_log = True

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        text = _text(head[:4096])
        if "<SearchResults" in text and "<Event " in text:
            return True
        first = "\n".join(text.splitlines()[:2])
        return all(m in first for m in CSV_MARKERS)

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        head = _peek(stream)
        if "<SearchResults" in _text(head[:HEAD]):
            _xml(ctx, stream)
        else:
            text = io.TextIOWrapper(stream, encoding=_encoding(head), errors="replace", newline="\n")
            try:
                _csv(ctx, text)
            finally:
                text.detach()  # the stream stays open: the worker drains it for the file's hashes


def _peek(stream: BinaryIO) -> bytes:
    """The head of the stream, left unread (the worker's streams are buffered readers)."""
    peek = getattr(stream, "peek", None)
    return peek(HEAD)[:HEAD] if peek is not None else b""


def _emit(ctx: ParseContext, record: dict[str, Any], line: int | None, number: int, said: set[str]) -> None:
    ts, zoneless = when(record.get("LastAccessed"))
    if zoneless and "zone" not in said:
        said.add("zone")
        ctx.warn(ZONE_NOTE, line)
    if ts is None:
        ctx.warn(f"audit entry without a readable LastAccessed: {record.get('LastAccessed')!r}", line)
    items = record.get("SourceItemsCount") or len([s for s in (record.get("SourceItemIdsList") or "").split(",") if s])
    record["SourceItemsCount"] = str(items or "")
    owner = record.get("MailboxOwnerUPN") or record.get("Owner") or record.get("MailboxResolvedOwnerName")
    record.setdefault("MailboxOwnerUPN", owner)
    ctx.event({"kind": "audit", "line": line, "record_id": number, "ts": ts, "log_type": "Mailbox audit log",
               "user": record.get("LogonUserDisplayName") or record.get("LogonUserSid"),
               "client_ip": client(record.get("ClientIPAddress")), "cmdlet": record.get("Operation"),
               "message": f"{record.get('Operation')} on {owner} by {record.get('LogonUserDisplayName')}",
               "fields": orjson.dumps(record).decode()})


def _csv(ctx: ParseContext, text: io.TextIOWrapper) -> None:
    """Row by row from the text stream (lines end at ``\n`` only, as the csv module wants them)."""
    first = text.readline()
    said: set[str] = set()
    skip = 1 if first.startswith("#TYPE") else 0
    reader = csv.DictReader(text if skip else itertools.chain([first], text))
    number = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            ctx.warn(f"unreadable CSV row: {exc}", reader.line_num + skip)
            continue
        number += 1
        if None in row or any(v is None for v in row.values()):
            ctx.warn("row with a different number of values than the header: kept as far as it goes",
                     reader.line_num + skip)
        record = {k: v for k, v in row.items() if isinstance(k, str) and isinstance(v, str)}
        _emit(ctx, record, reader.line_num + skip, number, said)


def _xml(ctx: ParseContext, stream: BinaryIO) -> None:
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    state: dict[str, Any] = {"event": None, "line": 0, "n": 0, "items": 0, "tag": None}
    said: set[str] = set()

    def refuse(*_: Any) -> None:
        raise ValueError("document type declarations are refused")

    def start(name: str, attrs: dict[str, str]) -> None:
        if name == "Event":
            state.update(event=dict(attrs), line=parser.CurrentLineNumber, items=0)
        elif name == "ItemId" and state["event"] is not None:
            state["items"] += 1

    def end(name: str) -> None:
        if name == "Event" and state["event"] is not None:
            state["n"] += 1
            event = state["event"]
            event.setdefault("SourceItemsCount", str(state["items"] or ""))
            _emit(ctx, event, state["line"], state["n"], said)
            state["event"] = None

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        while piece := stream.read(READ):
            parser.Parse(piece, False)
        parser.Parse(b"", True)
    except (expat.ExpatError, ValueError) as exc:
        ctx.warn(f"audit XML stops being readable here: {exc}", parser.CurrentLineNumber)
