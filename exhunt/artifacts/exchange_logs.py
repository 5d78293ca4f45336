"""Exchange CSV-style logs with ``#Fields`` headers: HttpProxy (every protocol), ECP Server,
OABGenerator, MessageTracking and any other log that declares itself Exchange's.

Fields are read from each block's own ``#Fields:`` line. Values are split as CSV (quoted fields
may hold commas); ``#`` and ``?`` inside a value are data. HttpProxy blocks (the bulk of the bytes)
take the Arrow/DuckDB fast path; the other, small logs the reference parser.
"""

from __future__ import annotations

import csv
import re
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from exhunt.artifacts.base import ParseContext
from exhunt.artifacts.timeparse import parse_ts
from exhunt.artifacts.w3c import Block
from exhunt.artifacts.w3c_log import (
    SegmentColumns,
    W3cLog,
    arrow_decoded_url,
    arrow_status,
    decoded_url,
    facts_by_first_line,
    http_rows,
    status_code,
)
from exhunt.events.schema import TS

# Normalized column <- candidate source field names (first non-empty wins).
FIELD_MAP: dict[str, tuple[str, ...]] = {
    "ts": ("DateTime", "TimeStamp", "date-time", "Timestamp", "Time"),
    "client_ip": ("ClientIpAddress", "client-ip", "ClientIP", "ClientIp"),
    "server_ip": ("server-ip", "ServerIp"),
    "user": ("AuthenticatedUser", "UserId", "User", "sender-address"),
    "method": ("Method",),
    "uri": ("UrlStem", "Url"),
    "uri_query": ("UrlQuery",),
    "status": ("HttpStatus", "StatusCode"),
    "user_agent": ("UserAgent",),
    "protocol": ("Protocol",),
    "anchor_mailbox": ("AnchorMailbox",),
    "backend_cookie": ("BackEndCookie",),
    "target_server": ("TargetServer",),
    "computer": ("ServerHostName", "ServerName", "server-hostname"),
}

SOURCE_BY_LOG_TYPE = (
    ("httpproxy", "httpproxy"),
    ("ecp server", "ecp_server"),
    ("ecp activity", "ecp_activity"),
    ("oabgenerator", "oab_generator"),
    ("oab generator", "oab_generator"),
    ("message tracking", "message_tracking"),
    ("cmdlet", "rps_cmdlet"),
)

CMD_RE = re.compile(r"S:CMD=(?P<cmd>[A-Za-z]+-[A-Za-z]+)(?P<params>.*?)(?=;S:[A-Z]+=|$)", re.S)
BUILD_RE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{1,4})\.(\d{1,3})$", re.A)
ISO_SQL = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,6})?Z"
ISO_RE = re.compile(ISO_SQL.replace("([.]", r"(\.").replace("[0-9]", r"\d"), re.A)
# the same in RE2 for Arrow, less the year 0000 (Arrow reads it, Python's datetime has no year 0)
ISO_RE2 = "^(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])" + ISO_SQL[len("[0-9]{4}"):] + "$"
VERSION_COLUMNS = ("MajorVersion", "MinorVersion", "BuildVersion", "RevisionVersion")


def split_csv(text: str) -> list[str]:
    if '"' not in text:
        return text.split(",")
    try:
        return next(csv.reader([text]))
    except csv.Error:  # a lone CR inside a quoted line (corrupt or hostile): keep the row, split plainly
        return text.split(",")


def source_for(log_type: str, rel_lower: str) -> str:
    lt = log_type.lower()
    for needle, source in SOURCE_BY_LOG_TYPE:
        if needle in lt:
            return source
    if "/oabgeneratorlog/" in rel_lower:
        return "oab_generator"
    return "exchange_log"


def normalize(record: dict[str, str], source: str) -> dict[str, Any]:
    """Reference normalization of one record (the fast path's SQL must agree with it)."""
    row: dict[str, Any] = {"kind": "http" if source == "httpproxy" else "log"}
    for column, names in FIELD_MAP.items():
        for name in names:
            value = record.get(name)
            if value not in (None, ""):
                row[column] = value
                break
    row["ts"] = parse_ts(row.get("ts"))
    row["status"] = status_code(row.get("status"))
    if source == "httpproxy":
        row["uri_decoded"] = decoded_url(row.get("uri"), row.get("uri_query"))  # UrlQuery keeps its '?'
    return row


class ExchangeDialect:
    field_sep = ","
    quote_char: str | bool = '"'
    # the columns ``fast_arrow`` and ``fast_facts`` read (the fast path converts only these when it can)
    columns = frozenset({name for names in FIELD_MAP.values() for name in names} | set(VERSION_COLUMNS))

    split = staticmethod(split_csv)

    @staticmethod
    def source(ctx: ParseContext, block: Block) -> str:
        return source_for(block.directives.get("log-type", ""), ctx.file.rel_lower)

    def on_block(self, ctx: ParseContext, block: Block, first_line: int) -> None:
        version = block.directives.get("version", "")
        if BUILD_RE.match(version) and not version.startswith(("15.0.0.0", "15.00.0000")):
            ctx.fact("build", version, block.lines.get("version") or first_line, "high")

    def handle(self, ctx: ParseContext, number: int, text: str, block: Block, record: dict[str, str]) -> None:
        source = self.source(ctx, block)
        row = normalize(record, source)
        row["source"] = source
        row["log_type"] = block.directives.get("log-type")
        row["line"] = number
        if source == "httpproxy":
            parts = [record.get(k, "") for k in VERSION_COLUMNS]
            if all(p.isascii() and p.isdigit() for p in parts) and parts[0] == "15":
                ctx.fact("build", ".".join(parts), number, "high")
            row["raw"] = text  # as the fast path stores it (other logs keep the line in ``message``)
            row["raw_header"] = self.field_sep + self.field_sep.join(block.fields)
        else:
            row["message"] = text
        if source == "ecp_server":
            match = CMD_RE.search(record.get("EventData", ""))
            if match:
                row["kind"] = "cmdlet"
                row["cmdlet"] = match["cmd"]
                row["parameters"] = match["params"]
        if row.get("ts") is None:
            ctx.warn("record without a readable timestamp", number)
        row["fields"] = orjson.dumps(record).decode()
        ctx.event(row)

    def fast_ready(self, ctx: ParseContext, block: Block) -> bool:
        return self.source(ctx, block) == "httpproxy"  # the other logs' rows keep their message text

    def fast_arrow(self, ctx: ParseContext, block: Block, seg: pa.Table) -> pa.Table | None:
        """``normalize`` of HttpProxy rows with Arrow kernels (no query per segment), or None where
        the reference parser decides: another log type, or a time it does not read (it warns)."""
        rows = seg.num_rows
        if self.source(ctx, block) != "httpproxy" or rows == 0:
            return None
        columns = SegmentColumns(seg)
        empty = pa.scalar(None, pa.string())

        def pick(column: str) -> pa.Array:
            """The first non-empty of the candidate fields, as ``normalize`` takes it."""
            found = [pc.if_else(pc.equal(columns[n], ""), empty, columns[n])
                     for n in FIELD_MAP[column] if n in columns]
            if not found:
                return pa.nulls(rows, pa.string())
            return found[0] if len(found) == 1 else pc.coalesce(*found)

        raw_ts = pick("ts")
        if pc.any(pc.invert(pc.fill_null(pc.match_substring_regex(raw_ts, ISO_RE2), False))).as_py():
            return None
        try:  # a day that does not exist (2021-02-30): the reference's warning
            ts = pc.cast(raw_ts, TS)
        except pa.ArrowInvalid:
            return None
        uri, query = pick("uri"), pick("uri_query")
        decoded = arrow_decoded_url(uri, query)

        return http_rows(
            ctx, rows, "httpproxy", block.directives.get("log-type"), columns, ts,
            client_ip=pick("client_ip"), server_ip=pick("server_ip"), user=pick("user"),
            method=pick("method"), uri=uri, uri_query=query, uri_decoded=decoded,
            status=arrow_status(pick("status")), user_agent=pick("user_agent"),
            protocol=pick("protocol"), anchor_mailbox=pick("anchor_mailbox"),
            backend_cookie=pick("backend_cookie"), target_server=pick("target_server"),
            computer=pick("computer"),
        )

    def fast_facts(self, ctx: ParseContext, seg: pa.Table, block: Block) -> None:
        """``handle``'s build fact over a segment: the four version columns all ASCII digits, the
        first ``15`` (joined with dots, exactly four parts)."""
        if not set(VERSION_COLUMNS) <= set(block.fields):
            return
        joined = pc.binary_join_element_wise(*(seg.column(c) for c in VERSION_COLUMNS), ".")
        good = pc.match_substring_regex(joined, r"^15\.[0-9]+\.[0-9]+\.[0-9]+$")
        if pc.any(good).as_py():
            facts_by_first_line(ctx, pc.filter(joined, good), pc.filter(seg.column("__line"), good), "build", "high")


class ExchangeLog(W3cLog):
    """Any log whose header says ``#Software: Microsoft Exchange Server``."""

    name = "exchange_log"
    software = "microsoft exchange"
    range_dialect = ExchangeDialect
    path_globs = ("*/logging/httpproxy/*/*.log", "*/logging/ecp/server/*.log", "*/logging/oabgeneratorlog/*.log")
    # triage: the build facts come from the #Version header and from the version columns of the
    # first and last line of every segment, which triage always parses; no extra lines needed
    triage_patterns = ()
