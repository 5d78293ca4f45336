"""Exchange CSV-style logs with ``#Fields`` headers: HttpProxy (every protocol), ECP Server,
OABGenerator, MessageTracking and any other log that declares itself Exchange's.

Fields are read from each block's own ``#Fields:`` line. Values are split as CSV (quoted fields
may hold commas); ``#`` and ``?`` inside a value are data.
"""

from __future__ import annotations

import csv
import re
from typing import Any, BinaryIO

import orjson

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.timeparse import parse_ts
from exhunt.artifacts.w3c import Block, header_value, iter_records

# Normalized column <- candidate source field names (first present wins).
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
BUILD_RE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{1,4})\.(\d{1,3})$")


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


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def normalize(record: dict[str, str], source: str) -> dict[str, Any]:
    row: dict[str, Any] = {"kind": "http" if source == "httpproxy" else "log"}
    for column, names in FIELD_MAP.items():
        for name in names:
            value = record.get(name)
            if value not in (None, ""):
                row[column] = value
                break
    row["ts"] = parse_ts(row.get("ts"))
    row["status"] = _int(row.get("status"))
    if source == "httpproxy":
        from urllib.parse import unquote_plus

        query = row.get("uri_query") or ""
        row["uri_decoded"] = unquote_plus((row.get("uri") or "") + query)
    return row


class ExchangeLog(Artifact):
    """Any log whose header says ``#Software: Microsoft Exchange Server``."""

    name = "exchange_log"
    path_globs = ("*/logging/httpproxy/*/*.log", "*/logging/ecp/server/*.log", "*/logging/oabgeneratorlog/*.log")

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        software = header_value(head, "Software") or ""
        if "microsoft exchange" in software.lower():
            return True
        return header_value(head, "Fields") is not None and super().claims(rel_lower, head)

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        rel_lower = ctx.file.rel_lower
        current: Block | None = None
        source = "exchange_log"
        for number, text, block, record in iter_records(ctx, stream, split_csv, ","):
            if block is not current:
                current = block
                log_type = block.directives.get("log-type", "")
                source = source_for(log_type, rel_lower)
                version = block.directives.get("version", "")
                if BUILD_RE.match(version) and not version.startswith(("15.0.0.0", "15.00.0000")):
                    ctx.fact("build", version, number, "high")
            row = normalize(record, source)
            row["source"] = source
            row["log_type"] = block.directives.get("log-type")
            row["line"] = number
            if source == "httpproxy":
                _httpproxy_build(ctx, record, number)
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


def _httpproxy_build(ctx: ParseContext, record: dict[str, str], line: int) -> None:
    parts = [record.get(k, "") for k in ("MajorVersion", "MinorVersion", "BuildVersion", "RevisionVersion")]
    if all(p.isdigit() for p in parts) and parts[0] == "15":
        ctx.fact("build", ".".join(parts), line, "high")
