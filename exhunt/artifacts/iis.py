"""IIS W3C extended logs (``u_ex*.log``): space-separated, ``#Fields`` in force per block.

Raw ``+`` and ``%`` encodings are kept in ``uri``/``uri_query``/``fields``; decoded copies go to
``uri_decoded`` and ``user_agent``. Exchange resource paths (``/owa/auth/15.1.2176/...``) give a
build fact (CU level only: an SU does not change the resource folder).
"""

from __future__ import annotations

import re
from typing import Any, BinaryIO
from urllib.parse import unquote, unquote_plus

import orjson

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.timeparse import parse_ts
from exhunt.artifacts.w3c import header_value, iter_records

OWA_BUILD_RE = re.compile(r"^/(?:owa|ecp)/(?:auth/)?(15\.\d{1,2}\.\d{1,4}(?:\.\d{1,3})?)/", re.I)


def _dash(value: str | None) -> str | None:
    return None if value in (None, "", "-") else value


def normalize(record: dict[str, str]) -> dict[str, Any]:
    date, time = record.get("date"), record.get("time")
    stem = _dash(record.get("cs-uri-stem"))
    query = _dash(record.get("cs-uri-query"))
    agent = _dash(record.get("cs(User-Agent)"))
    status = record.get("sc-status", "")
    decoded = unquote(stem or "")
    if query:
        decoded += "?" + unquote_plus(query)
    return {
        "kind": "http",
        "ts": parse_ts(f"{date}T{time}") if date and time else None,
        "client_ip": _dash(record.get("c-ip")),
        "server_ip": _dash(record.get("s-ip")),
        "user": _dash(record.get("cs-username")),
        "method": _dash(record.get("cs-method")),
        "uri": stem,
        "uri_query": query,
        "uri_decoded": decoded or None,
        "status": int(status) if status.isdigit() else None,
        "user_agent": agent.replace("+", " ") if agent else None,
        "computer": _dash(record.get("s-computername")),
    }


class IisLog(Artifact):
    name = "iis"
    path_globs = ("*u_ex*.log", "u_ex*.log", "*/logfiles/w3svc*/*.log")

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        software = (header_value(head, "Software") or "").lower()
        if "internet information services" in software:
            return True
        return header_value(head, "Fields") is not None and super().claims(rel_lower, head)

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        for number, _text, block, record in iter_records(ctx, stream, str.split, " "):
            row = normalize(record)
            if row["ts"] is None:
                ctx.warn("record without a readable date/time", number)
            row["line"] = number
            row["log_type"] = block.directives.get("software")
            row["fields"] = orjson.dumps(record).decode()
            match = OWA_BUILD_RE.match(row["uri"] or "")
            if match and (row["status"] or 0) < 400:
                ctx.fact("owa_build", match.group(1), number, "medium")
            ctx.event(row)
