"""IIS W3C extended logs (``u_ex*.log``): space-separated, ``#Fields`` in force per block.

Raw ``+`` and ``%`` encodings are kept in ``uri``/``uri_query``/``fields``; decoded copies go to
``uri_decoded`` and ``user_agent``. Exchange resource paths (``/owa/auth/15.1.2176/...``) give a
build fact (CU level only: an SU does not change the resource folder).
"""

from __future__ import annotations

import re
from typing import Any, BinaryIO
from urllib.parse import unquote, unquote_plus

import duckdb
import orjson

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.encoding import utf8_stream
from exhunt.artifacts.timeparse import parse_ts
from exhunt.artifacts.w3c import Block, header_value
from exhunt.artifacts.w3c_fast import W3cEngine
from exhunt.sqltext import identifier, literal

OWA_BUILD_PATTERN = r"^/(?:owa|ecp)/(?:auth/)?(15\.\d{1,2}\.\d{1,4}(?:\.\d{1,3})?)/"
OWA_BUILD_RE = re.compile(OWA_BUILD_PATTERN, re.I | re.A)
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}", re.A)
TIME_RE = re.compile(r"\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?", re.A)


def _dash(value: str | None) -> str | None:
    return None if value in (None, "", "-") else value


def status_code(text: str | None) -> int | None:
    """HTTP status: plain ASCII digits that fit the column, else nothing (the raw value stays in fields)."""
    return int(text) if text and len(text) <= 9 and text.isascii() and text.isdigit() else None


def iis_time(date: str | None, time: str | None) -> Any:
    if not (date and time and DATE_RE.fullmatch(date) and TIME_RE.fullmatch(time)):
        return None
    return parse_ts(f"{date}T{time}")


def normalize(record: dict[str, str]) -> dict[str, Any]:
    """Reference normalization of one record (the fast path's SQL must agree with it)."""
    date, time = record.get("date"), record.get("time")
    stem = _dash(record.get("cs-uri-stem"))
    query = _dash(record.get("cs-uri-query"))
    agent = _dash(record.get("cs(User-Agent)"))
    decoded = unquote(stem or "")
    if query:
        decoded += "?" + unquote_plus(query)
    return {
        "kind": "http",
        "ts": iis_time(date, time),
        "client_ip": _dash(record.get("c-ip")),
        "server_ip": _dash(record.get("s-ip")),
        "user": _dash(record.get("cs-username")),
        "method": _dash(record.get("cs-method")),
        "uri": stem,
        "uri_query": query,
        "uri_decoded": decoded or None,
        "status": status_code(record.get("sc-status")),
        "user_agent": agent.replace("+", " ") if agent else None,
        "computer": _dash(record.get("s-computername")),
    }


class IisDialect:
    field_sep = " "
    quote_char: str | bool = False

    @staticmethod
    def split(text: str) -> list[str]:
        return text.split(" ")

    def on_block(self, ctx: ParseContext, block: Block, first_line: int) -> None:
        return None

    def source(self, ctx: ParseContext, block: Block) -> str:
        return "iis"

    def handle(self, ctx: ParseContext, number: int, text: str, block: Block, record: dict[str, str]) -> None:
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

    def fast_sql(self, ctx: ParseContext, block: Block) -> str | None:
        present = set(block.fields)

        def col(name: str) -> str:
            return identifier(name) if name in present else "NULL::VARCHAR"

        def dash(name: str) -> str:
            return f"CASE WHEN {col(name)} IN ('', '-') THEN NULL ELSE {col(name)} END"

        stem, query = dash("cs-uri-stem"), dash("cs-uri-query")
        ts = (f"CASE WHEN regexp_full_match({col('date')}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') AND "
              f"regexp_full_match({col('time')}, '[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}([.][0-9]{{1,6}})?') THEN "
              f"try_cast({col('date')} || ' ' || {col('time')} || '+00' AS TIMESTAMPTZ) END"
              if {"date", "time"} <= present else "NULL::TIMESTAMPTZ")
        return f"""
            WITH base AS (
                SELECT *, {stem} AS _stem, {query} AS _query, {col('sc-status')} AS _status, {ts} AS _ts,
                       try(url_decode(coalesce({stem}, ''))) AS _dstem,
                       try(url_decode(replace({query}, '+', ' '))) AS _dquery
                FROM seg
            )
            SELECT {literal(ctx.host)} AS host, 'iis' AS source,
                   {literal(block.directives.get('software'))} AS log_type,
                   {literal(ctx.file.rel)} AS path, __line AS line, _ts AS ts, 'http' AS kind,
                   {dash('c-ip')} AS client_ip, {dash('s-ip')} AS server_ip, {dash('cs-username')} AS "user",
                   {dash('cs-method')} AS method, _stem AS uri, _query AS uri_query,
                   nullif(_dstem || CASE WHEN _query IS NOT NULL THEN '?' || _dquery ELSE '' END, '') AS uri_decoded,
                   CASE WHEN regexp_full_match(_status, '[0-9]{{1,9}}') THEN CAST(_status AS INTEGER) END AS status,
                   replace({dash('cs(User-Agent)')}, '+', ' ') AS user_agent,
                   {dash('s-computername')} AS computer,
                   __fields AS fields,  -- built by the engine (fields_json)
                   (_dstem IS NOT NULL AND (_query IS NULL OR _dquery IS NOT NULL) AND _ts IS NOT NULL) AS __ok
            FROM base
        """

    def fast_facts(self, ctx: ParseContext, con: duckdb.DuckDBPyConnection, block: Block) -> None:
        if "cs-uri-stem" not in block.fields:
            return
        status = identifier("sc-status") if "sc-status" in block.fields else "NULL"
        rows = con.execute(
            f"""SELECT b, min(__line) FROM (
                    SELECT regexp_extract({identifier('cs-uri-stem')}, ?, 1, 'i') AS b, __line FROM seg
                    WHERE coalesce(CASE WHEN regexp_full_match({status}, '[0-9]{{1,9}}')
                                   THEN CAST({status} AS INTEGER) END, 0) < 400)
                WHERE b <> '' GROUP BY b ORDER BY 2""",
            [OWA_BUILD_PATTERN],
        ).fetchall()
        for value, line in rows:
            ctx.fact("owa_build", value, line, "medium")


class IisLog(Artifact):
    name = "iis"
    head_marks = (b"#software:", b"#fields:")
    is_log = True
    range_dialect = IisDialect
    path_globs = ("*u_ex*.log", "u_ex*.log", "*/logfiles/w3svc*/*.log")
    fast = True
    # triage: lines the parser needs beyond the checks' own, for the ``owa_build`` fact
    triage_patterns = (r"/(?:owa|ecp)/(?:auth/)?15\.[0-9]",)

    @classmethod
    def claims(cls, rel_lower: str, head: bytes) -> bool:
        software = (header_value(head, "Software") or "").lower()
        if "internet information services" in software:
            return True
        return header_value(head, "Fields") is not None and super().claims(rel_lower, head)

    @classmethod
    def parse(cls, ctx: ParseContext, stream: BinaryIO) -> None:
        stream = utf8_stream(ctx, stream)  # UTF-16 (Windows PowerShell's Out-File) is transcoded first
        W3cEngine(ctx, IisDialect(), use_fast=cls.fast).run(stream)
