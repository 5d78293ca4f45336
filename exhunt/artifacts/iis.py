"""IIS W3C extended logs (``u_ex*.log``): space-separated, ``#Fields`` in force per block.

Raw ``+`` and ``%`` encodings are kept in ``uri``/``uri_query``/``fields``; decoded copies go to
``uri_decoded`` and ``user_agent``. Exchange resource paths (``/owa/auth/15.1.2176/...``) give a
build fact (CU level only: an SU does not change the resource folder).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
    plus_to_space,
    status_code,
)
from exhunt.events.schema import TS

OWA_BUILD_PATTERN = r"^/(?:owa|ecp)/(?:auth/)?(15\.\d{1,2}\.\d{1,4}(?:\.\d{1,3})?)/"
OWA_BUILD_RE = re.compile(OWA_BUILD_PATTERN, re.I | re.A)
OWA_BUILD_BYTES = re.compile(OWA_BUILD_PATTERN.encode(), re.I)  # bytes: ASCII classes
# a build in an OWA path anywhere in a line (no anchor): the values a segment's fact lines show
OWA_BUILD_ANYWHERE = re.compile(OWA_BUILD_PATTERN[1:].encode(), re.I)
# the prefilter's fact patterns once values are known (``owa_build_patterns``): the path of a build
OWA_BUILD_PATH = r"/(?:owa|ecp)/(?:auth/)?15\."
VALUE_CHARS = "0123456789."


def served(status: int | None) -> bool:
    """Whether a request's status shows the server has the build path (its content served, or not
    modified since the client's copy): a build in a path answered otherwise is only what the client
    asked for (an unauthenticated OWA or ECP request for any path is redirected to the logon page,
    a made-up version folder is 404), and one request could have set the host's build. A log
    without a status column keeps every path."""
    return status is None or 200 <= status < 300 or status == 304
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}", re.A)
TIME_RE = re.compile(r"\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?", re.A)
# the same in RE2 for Arrow, less the year 0000 (Arrow reads it, Python's datetime has no year 0)
DATE_RE2 = r"^(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-[0-9]{2}-[0-9]{2}$"
TIME_RE2 = r"^[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?$"
DASHES = pa.array(["", "-"])  # values IIS writes for "nothing"


def _dash(value: str | None) -> str | None:
    return None if value in (None, "", "-") else value


# a custom IIS field carrying the request's X-Forwarded-For header (IIS 8.5+ custom logging names it
# as the header, the older Advanced Logging as cs(...)): behind a load balancer or reverse proxy, c-ip
# is the balancer's address for every client
FORWARDED_FOR = ("X-Forwarded-For", "cs(X-Forwarded-For)")
# the last address of the header: the one the nearest proxy saw connect (a client can write the
# earlier ones itself); IIS writes the list's spaces as '+'
LAST_FORWARDED = re.compile(r"([^,+\s]+)[+\s]*$")
LAST_FORWARDED_RE2 = r"(?P<address>[^,+\s]+)[+\s]*$"
# ... without the port a proxy may add (IIS ARR writes the client's port by default): "[v6]:443" and
# "v4:52311" give the address alone, as c-ip would (the same client had been a new address per connection)
PORTED = ((r"^\[([^\]]+)\](?::[0-9]+)?$", r"\1"), (r"^([0-9]{1,3}(?:\.[0-9]{1,3}){3}):[0-9]+$", r"\1"))
PORTED_RE = tuple((re.compile(pattern), group) for pattern, group in PORTED)


def _unported(address: str) -> str:
    for pattern, group in PORTED_RE:
        address = pattern.sub(group, address)
    return address


def client_address(record: dict[str, str]) -> str | None:
    """The client a request came from: X-Forwarded-For's last address when the log holds one, else c-ip."""
    for name in FORWARDED_FOR:
        forwarded = _dash(record.get(name))
        if forwarded and (last := LAST_FORWARDED.search(forwarded)) and last.group(1) != "-":
            return _unported(last.group(1))
    return _dash(record.get("c-ip"))


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
    decoded = decoded_url(stem, "?" + query if query else None)
    return {
        "kind": "http",
        "ts": iis_time(date, time),
        "client_ip": client_address(record),
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


def owa_build_patterns(known: Sequence[str]) -> tuple[str, list[str], list[str]]:
    """The triage fact patterns of a worker that has seen the builds ``known``: one that matches a
    build path whose value is none of them (every line that can give a new value, the lines the
    dialect reads), and one per known value, compiled first-match-only: where each first shows is
    all ``segment_facts`` needs, so the thousands of lines that repeat a known build cost no call.
    Returns them with the values in the order of their patterns.
    A value is followed by ``/`` (``OWA_BUILD_PATTERN``); any other text after ``15.`` that could
    still be one is matched by the first pattern."""
    tails = sorted({value[3:] for value in known if value.startswith("15.")})
    other = OWA_BUILD_PATH + (_none_of(tails) or "[0-9.]*/")
    return other, [OWA_BUILD_PATH + re.escape(tail) + "/" for tail in tails], [f"15.{tail}" for tail in tails]


def _none_of(tails: Sequence[str]) -> str | None:
    """A regex of ``[0-9.]*`` followed by ``/`` where that text is none of ``tails`` (a trie: at each
    step, another character, or the end where no value ends); None when nothing is left."""
    children: dict[str, list[str]] = {}
    for tail in tails:
        if tail:
            children.setdefault(tail[0], []).append(tail[1:])
    alternatives = []
    for char in sorted(children):
        rest = _none_of(children[char])
        if rest is not None:
            alternatives.append(re.escape(char) + rest)
    others = "".join(c for c in VALUE_CHARS if c not in children)
    if others:
        alternatives.append("[" + re.escape(others) + "][0-9.]*/")
    if "" not in tails:
        alternatives.append("/")
    return "(?:" + "|".join(alternatives) + ")" if alternatives else None


class IisDialect:
    field_sep = " "
    quote_char: str | bool = False
    # the columns ``fast_arrow`` and ``fast_facts`` read (the fast path converts only these when it can)
    columns = frozenset({"date", "time", "cs-uri-stem", "cs-uri-query", "sc-status", "c-ip", "s-ip", "cs-username",
                         "cs-method", "cs(User-Agent)", "s-computername", *FORWARDED_FOR})

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
        row["raw"] = text
        row["raw_header"] = self.field_sep + self.field_sep.join(block.fields)
        match = OWA_BUILD_RE.match(row["uri"] or "")
        if match and served(row["status"]):
            ctx.fact("owa_build", match.group(1), number, "medium")
        ctx.event(row)

    def fast_ready(self, ctx: ParseContext, block: Block) -> bool:
        return {"date", "time"} <= set(block.fields)  # else every row is the reference's warning

    def fast_arrow(self, ctx: ParseContext, block: Block, seg: pa.Table) -> pa.Table | None:
        """``normalize`` over a segment's raw columns with Arrow kernels (about twenty calls, well under
        a millisecond; DuckDB's query cost 5 ms a segment), or None where the reference parser
        decides (a date or time it would not read: it warns per row). Percent-decoding has no
        Arrow kernel: the reference's own ``unquote`` decodes each distinct stem or query once."""
        present, rows = set(block.fields), seg.num_rows
        if not {"date", "time"} <= present or rows == 0:
            return None
        columns = SegmentColumns(seg)
        date, time = columns["date"], columns["time"]
        readable = pc.and_(pc.match_substring_regex(date, DATE_RE2), pc.match_substring_regex(time, TIME_RE2))
        if not pc.all(readable).as_py():
            return None
        try:  # a date that does not exist (2021-02-30): the reference's warning
            ts = pc.cast(pc.binary_join_element_wise(date, time, " "), pa.timestamp("us")).cast(TS)
        except pa.ArrowInvalid:
            return None

        def dash(name: str) -> pa.Array:
            column = columns.get(name)
            if column is None:
                return pa.nulls(rows, pa.string())
            return pc.if_else(pc.is_in(column, value_set=DASHES), pa.scalar(None, pa.string()), column)

        stem, query = dash("cs-uri-stem"), dash("cs-uri-query")
        decoded = arrow_decoded_url(stem, pc.binary_join_element_wise("?", query, ""))
        decoded = pc.if_else(pc.equal(decoded, ""), pa.scalar(None, pa.string()), decoded)
        status = arrow_status(columns["sc-status"]) if "sc-status" in present else pa.nulls(rows, pa.int32())

        return http_rows(
            ctx, rows, "iis", block.directives.get("software"), columns, ts,
            client_ip=self._client(dash, present), server_ip=dash("s-ip"), user=dash("cs-username"),
            method=dash("cs-method"), uri=stem, uri_query=query, uri_decoded=decoded,
            status=status, user_agent=plus_to_space(dash("cs(User-Agent)")),
            computer=dash("s-computername"),
        )

    @staticmethod
    def _client(dash: Any, present: set[str]) -> pa.Array:
        """``client_address`` over a segment: X-Forwarded-For's last address where the log has one."""
        client = dash("c-ip")
        for name in reversed(FORWARDED_FOR):  # the first of them wins, as in ``client_address``
            if name in present:
                last = pc.struct_field(pc.extract_regex(dash(name), LAST_FORWARDED_RE2), [0])
                last = pc.if_else(pc.equal(last, "-"), pa.scalar(None, pa.string()), last)
                for pattern, group in PORTED:
                    last = pc.replace_substring_regex(last, pattern, group)
                client = pc.coalesce(last, client)
        return client

    def fast_facts(self, ctx: ParseContext, seg: pa.Table, block: Block) -> None:
        """``handle``'s ``owa_build`` fact over a segment: Arrow finds the rows whose stem may hold
        a build (a literal search), Python's ``handle`` test decides on those rows only."""
        if "cs-uri-stem" not in block.fields:
            return
        stem = seg.column("cs-uri-stem")
        hit = pc.match_substring(stem, "/15.")  # every build path holds it; digits and dots have no case
        if not pc.any(hit).as_py():
            return
        status = seg.column("sc-status") if "sc-status" in block.fields else pa.nulls(len(seg), pa.string())
        values, lines = [], []
        for text, code, line in zip(pc.filter(stem, hit).to_pylist(), pc.filter(status, hit).to_pylist(),
                                    pc.filter(seg.column("__line"), hit).to_pylist(), strict=True):
            match = OWA_BUILD_RE.match(text)
            if match and served(status_code(code)):
                values.append(match.group(1))
                lines.append(line)
        if values:
            facts_by_first_line(ctx, pa.array(values, pa.string()), pa.array(lines, pa.int64()), "owa_build", "medium")

    def line_fact(self, block: Block, line: bytes) -> tuple[str, str, str] | None:
        """The ``owa_build`` fact (fact, value, confidence) of a raw line triage does not store
        (``W3cEngine._facts``): stem and status split as the reference parser splits them, the
        test of ``handle``."""
        fields = block.fields
        if "cs-uri-stem" not in fields:
            return None
        values = line.rstrip(b"\r\n").split(b" ")
        stem_at = fields.index("cs-uri-stem")
        match = OWA_BUILD_BYTES.match(values[stem_at]) if stem_at < len(values) else None
        if match is None:
            return None
        status_at = fields.index("sc-status") if "sc-status" in fields else len(values)
        code = status_code(values[status_at].decode("ascii", "replace")) if status_at < len(values) else None
        if not served(code):
            return None
        return "owa_build", match.group(1).decode("ascii"), "medium"

    fact_patterns = staticmethod(owa_build_patterns)

    def segment_facts(self, block: Block, data: bytes, spans: list[tuple[int, int]],
                      seen: list[tuple[str, str]],
                      firsts: dict[str, int] | None = None) -> list[tuple[int, str, str, str]]:
        """(line start, fact, value, confidence) of the first line of ``data`` that gives each
        ``owa_build`` value not ``seen`` yet, in file order; ``spans`` are the lines the triage
        prefilter's fact pattern selected (every line a build fact can come from). The values are
        read from the joined fact lines at once; then each new value's lines are found with
        ``bytes.find`` and checked with ``line_fact`` (the reference's test) until one gives it,
        so there is no Python per fact line: a file shows a handful of builds on thousands of lines.
        ``firsts``: values the prefilter knew, each with the end of its first build path in ``data``
        (``owa_build_patterns``); their lines are not in ``spans``."""
        if "cs-uri-stem" not in block.fields or not (spans or firsts):
            return []
        starts: dict[str, int] = {}
        if spans:
            joined = b"".join([data[start:end] for start, end in spans])
            starts = dict.fromkeys({v.decode("ascii") for v in OWA_BUILD_ANYWHERE.findall(joined)}, spans[0][0])
        for value, end in (firsts or {}).items():  # a line before it cannot hold the value's path
            starts[value] = min(starts.get(value, end), data.rfind(b"\n", 0, end) + 1)
        for value in {v for f, v in seen if f == "owa_build"}:
            starts.pop(value, None)
        found = []
        for value, pos in starts.items():
            needle = f"/{value}/".encode()
            while (at := data.find(needle, pos)) >= 0:  # a line that gives another value is skipped:
                start = data.rfind(b"\n", 0, at) + 1  # its own value is in ``values`` too
                end = data.find(b"\n", at) + 1 or len(data)
                fact = self.line_fact(block, data[start:end])
                if fact is not None and fact[1] == value:
                    found.append((start, *fact))
                    break
                pos = end
        return sorted(found)


class IisLog(W3cLog):
    name = "iis"
    software = "internet information services"
    range_dialect = IisDialect
    path_globs = ("*u_ex*.log", "u_ex*.log", "*/logfiles/w3svc*/*.log")
    # triage: lines the parser reads the ``owa_build`` fact from (``IisDialect.segment_facts``), not stored
    triage_patterns = (r"/(?:owa|ecp)/(?:auth/)?15\.[0-9]",)
