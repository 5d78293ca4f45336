"""Mailbox audit log exports: ``Search-MailboxAuditLog -ShowDetails | Export-Csv`` and the XML report
that ``New-MailboxAuditLogSearch`` mails (``<SearchResults><Event Owner=… LastAccessed=…>``).

One ``mailbox_audit`` event per entry: ``ts`` from ``LastAccessed``, ``user`` the logon account,
``client_ip`` the client address (brackets and port removed), ``cmdlet`` the operation; every column
or attribute stays in ``fields``, plus ``SourceItemsCount`` (the items an entry names). Export-Csv
writes ``LastAccessed`` in the exporting machine's culture and time zone: ISO and US
(``3/3/2021 3:12:45 AM``) forms are read as UTC, anything else is a warning and the row is kept.
The XML is parsed by expat with document type declarations refused (no entity expansion).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any, BinaryIO
from xml.parsers import expat

import orjson

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.timeparse import parse_ts

CSV_MARKERS = ("MailboxOwnerUPN", "LogonType", "LastAccessed")
MAX_BYTES = 256 << 20
US_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S")


def _text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    if len(data) > 1 and data[1:2] == b"\x00":
        return data.decode("utf-16-le", "replace")
    return data.decode("utf-8-sig", "replace")


def when(text: str | None) -> datetime | None:
    value = parse_ts(text)
    if value is not None or not text:
        return value
    for fmt in US_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


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
        data = stream.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            ctx.warn(f"mailbox audit export larger than {MAX_BYTES >> 20} MiB: only the first part is read")
            data = data[:MAX_BYTES]
        text = _text(data)
        if "<SearchResults" in text[:4096]:
            _xml(ctx, data)
        else:
            _csv(ctx, text)


def _emit(ctx: ParseContext, record: dict[str, Any], line: int | None, number: int) -> None:
    ts = when(record.get("LastAccessed"))
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


def _csv(ctx: ParseContext, text: str) -> None:
    lines = text.splitlines(keepends=True)
    skip = 1 if lines and lines[0].startswith("#TYPE") else 0
    reader = csv.DictReader(io.StringIO("".join(lines[skip:])))
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
        _emit(ctx, record, reader.line_num + skip, number)


def _xml(ctx: ParseContext, data: bytes) -> None:
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    state: dict[str, Any] = {"event": None, "line": 0, "n": 0, "items": 0, "tag": None}

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
            _emit(ctx, event, state["line"], state["n"])
            state["event"] = None

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except (expat.ExpatError, ValueError) as exc:
        ctx.warn(f"audit XML stops being readable here: {exc}", parser.CurrentLineNumber)
