"""What every renderer reads: the assessment document and, when present, the case store.

Renderers are pure functions of a ``Case``. The store gives the full list of cited rows (the
``hits`` table keeps every evidence row, the document only the first few per finding) and, for
``--all-events`` outputs, the events themselves. Without a store, renderers fall back to the
evidence rows in the document, so ``exhunt report findings.json`` still works.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exhunt import utctime
from exhunt.detections.fleet import FleetPivots
from exhunt.events.store import connect, refresh_views
from exhunt.findings.model import AssessmentDocument, Finding, severity_rank
from exhunt.sqltext import literal

if TYPE_CHECKING:
    import duckdb

FETCH_ROWS = 5_000
SORT_MEMORY = "256MB"  # DuckDB memory for --all-events sorts; beyond it DuckDB spills to a temp dir

# Normalized event columns carried into timelines next to each cited row.
EVENT_COLUMNS = ("kind", "client_ip", "user", "method", "uri", "uri_query", "status", "user_agent",
                 "cmdlet", "event_id", "channel", "image", "command_line")


@dataclass(frozen=True)
class Case:
    document: AssessmentDocument
    store: Path | None = None
    all_events: bool = False
    con: Any = field(default=None, compare=False, repr=False)  # an open connection to read through

    @property
    def findings_by_id(self) -> dict[str, Finding]:
        return {f.id: f for f in self.document.findings}

    @property
    def has_events(self) -> bool:
        """Whether the case's store holds events (else the document's evidence lists are the rows)."""
        return self.store is not None and (self.store / "events").exists()

    def connect(self) -> duckdb.DuckDBPyConnection | None:
        """A DuckDB connection over the store, or None when there is no usable store."""
        if self.store is None or not self.has_events:  # (``store`` tested here too for the type checker)
            return None
        if self.con is not None:  # the scan's own connection: its events view is this store's
            cursor = self.con.cursor()
            refresh_views(cursor, self.store, ("hits",))  # written after that connection opened
            return cursor
        # what the timeline reads; a few columns of the cited rows: read from the parts, not copied first
        return connect(self.store, extra_tables=("hits",), tables=("events",), copy_small=False)


@dataclass(frozen=True)
class CitedEvent:
    """One evidence row cited by one or more findings, with its normalized event fields."""

    ts: datetime | None
    host: str
    source: str
    path: str
    line: int | None
    record_id: int | None
    excerpt: str
    finding_ids: tuple[str, ...]
    fields: dict[str, Any] = field(default_factory=dict)


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()
    return bool(rows)


def iso_utc(ts: datetime | None) -> str:
    """ISO 8601 in UTC with a ``Z``; empty when unknown."""
    return utctime.iso_utc(ts) or ""


HITS_SQL = """
    SELECT host, path, source, line, record_id, min(ts) AS ts, any_value(excerpt) AS excerpt,
           list(DISTINCT finding_id ORDER BY finding_id) AS finding_ids
    FROM hits GROUP BY host, path, source, line, record_id
"""
SAME_ROW = """e.host = h.host AND e.path = h.path AND e.source = h.source
     AND e.line IS NOT DISTINCT FROM h.line AND e.record_id IS NOT DISTINCT FROM h.record_id"""
# the last keys only break ties (a file's inventory, YARA and web-root rows share its path): the
# same case always gives the same timeline
ORDER = "ORDER BY ts NULLS LAST, host, path, line NULLS FIRST, record_id NULLS FIRST, source, message"
CITED_SQL = f"""
    WITH h AS ({HITS_SQL}), e AS (
        SELECT host, path, source, line, record_id, ts, {", ".join(EVENT_COLUMNS)},
               row_number() OVER (PARTITION BY host, path, source, line, record_id ORDER BY ts) AS n
        FROM events WHERE {{near}} (host, path, source) IN (SELECT host, path, source FROM h)
    )
    SELECT coalesce(h.ts, e.ts) AS ts, h.host, h.source, h.path, h.line, h.record_id, h.excerpt AS message,
           h.finding_ids, {", ".join("e." + c for c in EVENT_COLUMNS)}
    FROM h LEFT JOIN e ON e.n = 1 AND {SAME_ROW}
    {ORDER}
"""
# Every event (one message per row built in SQL so Python only formats), plus cited rows that are
# not events (file inventory hits), each tagged with the findings citing it. Rows stream in
# batches and DuckDB sorts out of core, so memory stays bounded whatever the store size.
EVENT_MESSAGE = """coalesce(
    CASE WHEN kind = 'http' THEN concat_ws(' ', method, uri || coalesce('?' || uri_query, ''),
         'AnchorMailbox=' || anchor_mailbox, 'status=' || status, 'client=' || client_ip,
         'user=' || "user", 'UA=' || user_agent) END,
    CASE WHEN cmdlet IS NOT NULL THEN cmdlet || ' ' || coalesce(parameters, '') END,
    CASE WHEN command_line IS NOT NULL THEN concat_ws(' ', image, command_line) END,
    message, uri, '')"""
ALL_EVENTS_SQL = f"""
    WITH h AS ({HITS_SQL}), e AS (
        SELECT host, path, source, line, record_id, ts, {EVENT_MESSAGE} AS message, {", ".join(EVENT_COLUMNS)}
        FROM events
    )
    SELECT coalesce(e.ts, h.ts) AS ts, coalesce(e.host, h.host) AS host,
           coalesce(e.source, h.source) AS source, coalesce(e.path, h.path) AS path,
           coalesce(e.line, h.line) AS line, coalesce(e.record_id, h.record_id) AS record_id,
           coalesce(nullif(e.message, ''), h.excerpt) AS message,
           coalesce(h.finding_ids, []) AS finding_ids, {", ".join("e." + c for c in EVENT_COLUMNS)}
    FROM e FULL OUTER JOIN h ON {SAME_ROW}
    {ORDER}
"""
# What the report's timeline and chart show of each cited row (``CITED_SQL`` without the event columns,
# which they never read): an event row is joined only to give a time its hit lacks. The EVTX bench
# case's 7,442 cited rows: 0.30 -> 0.19-0.22 s read from the parts, each row a tuple, not a dict.
CITED_ROWS_SQL = f"""
    WITH h AS ({HITS_SQL}), e AS (
        SELECT host, path, source, line, record_id, min(ts) AS ts
        FROM events WHERE {{near}} (host, path, source) IN (SELECT host, path, source FROM h WHERE ts IS NULL)
        GROUP BY host, path, source, line, record_id
    )
    SELECT coalesce(h.ts, e.ts) AS ts, h.host, h.source, h.path, h.line, h.record_id, h.excerpt AS message,
           h.finding_ids
    FROM h LEFT JOIN e ON h.ts IS NULL AND {SAME_ROW}
    {ORDER}
"""
ROW_COLUMNS = ("ts", "host", "source", "path", "line", "record_id", "message", "finding_ids") + EVENT_COLUMNS
HITS_DDL = ("CREATE TABLE hits (finding_id VARCHAR, host VARCHAR, path VARCHAR, source VARCHAR, line BIGINT, "
            "record_id BIGINT, ts TIMESTAMPTZ, excerpt VARCHAR)")
HITS_COLUMNS = "finding_id, host, path, source, line, record_id, ts, excerpt"
IMPACT_ID = "impact:"  # the timelines' id of the rows the mailbox impact cites: impact:<mailbox>


def impact_hits(doc: AssessmentDocument) -> list[tuple[Any, ...]]:
    """The rows the mailbox impact cites, as hits (``HITS_COLUMNS``) of ``impact:<mailbox>``: the
    timelines hold them as they hold the findings' rows (the dates a notification rests on)."""
    return [(IMPACT_ID + i.mailbox, i.host, e.path, e.source, e.line, e.record_id, e.ts, e.excerpt)
            for i in doc.impact for e in i.evidence]


def _with_impact_hits(con: duckdb.DuckDBPyConnection, sql: str, doc: AssessmentDocument) -> str:
    """``sql`` reading the hits and the impact's cited rows (a temporary table of this connection)."""
    rows = impact_hits(doc)
    if not rows:
        return sql
    con.execute(f"CREATE OR REPLACE TEMP TABLE impact_hits ({HITS_DDL.split('(', 1)[1]}")
    con.executemany(f"INSERT INTO impact_hits ({HITS_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    marker = "FROM hits GROUP BY"
    assert marker in sql
    return sql.replace(marker, f"FROM (SELECT {HITS_COLUMNS} FROM hits UNION ALL SELECT {HITS_COLUMNS} "
                               "FROM impact_hits) GROUP BY")


def timeline_rows(case: Case, all_events: bool | None = None) -> Iterator[dict[str, Any]]:
    """Cited rows (or, with ``all_events``, every event) as dicts of ``ROW_COLUMNS``, in time order.

    Without a store, the cited rows come from the document's (capped) evidence lists.
    """
    every = case.all_events if all_events is None else all_events
    con = case.connect()
    if con is None:
        for c in _cited_from_document(case.document, with_impact=True):
            yield {"ts": c.ts, "host": c.host, "source": c.source, "path": c.path, "line": c.line,
                   "record_id": c.record_id, "message": c.excerpt, "finding_ids": list(c.finding_ids)}
        return
    with tempfile.TemporaryDirectory(prefix="exhunt-sort-") as spill:
        try:
            if not has_table(con, "hits"):
                con.execute(HITS_DDL)
            if every:  # the time sort of a whole store spills to disk instead of growing without bound
                con.execute(f"SET memory_limit = '{SORT_MEMORY}'")
                con.execute("SET temp_directory = ?", [spill])
            con.execute("SET preserve_insertion_order = false")
            sql = ALL_EVENTS_SQL if every else CITED_SQL.format(near=near_hits(con))
            cursor = con.execute(_with_impact_hits(con, sql, case.document))
            while batch := cursor.fetchmany(FETCH_ROWS):
                for row in batch:
                    yield dict(zip(ROW_COLUMNS, row, strict=True))
        finally:
            con.close()


# above this many distinct values, a constant list is left out of ``near_hits`` (its SQL text grows)
NEAR_VALUES = 5_000


def near_hits(con: duckdb.DuckDBPyConnection) -> str:
    """Constant filters (each followed by AND) that only the cited rows' paths and line or record
    numbers pass: DuckDB tests them in the Parquet scan, where the join with ``hits`` reads every
    row of the cited files. Only the paths of hits whose source is an event source: a build fact's
    hit names every HttpProxy log, but as ``exchange_log``, which no event row is. A full index of the
    2 GB bench corpus (8 M rows; ~1,200 cited rows, 1,980 of them facts of 264 logs): the report's
    query took 0.58 s under load, 0.15 s with them."""
    sources = [s for (s,) in con.execute("SELECT DISTINCT source FROM events").fetchall()]
    paths = [p for (p,) in con.execute("SELECT DISTINCT path FROM hits WHERE path IS NOT NULL "
                                       "AND list_contains(?::VARCHAR[], source)", [sources]).fetchall()]
    if not paths:
        return "false AND "  # no hit can be an event row
    lines = [int(n) for (n,) in con.execute("SELECT DISTINCT line FROM hits WHERE line IS NOT NULL").fetchall()]
    records = [int(n) for (n,) in
               con.execute("SELECT DISTINCT record_id FROM hits WHERE record_id IS NOT NULL").fetchall()]
    out = f"path IN ({', '.join(literal(p) for p in sorted(paths))}) AND " if len(paths) <= NEAR_VALUES else ""
    if len(lines) <= NEAR_VALUES and len(records) <= NEAR_VALUES:
        numbered = f"line IN ({', '.join(map(str, sorted(lines)))})" if lines else "false"
        recorded = f"record_id IN ({', '.join(map(str, sorted(records)))})" if records else "false"
        out += f"({numbered} OR (line IS NULL AND ({recorded} OR record_id IS NULL))) AND "
    return out


def cited_events(case: Case) -> Iterator[CitedEvent]:
    """Every cited row once, in time order (rows without a time last), as the HTML report shows them:
    without their event columns (``fields`` empty; the CSV and Timesketch exports read
    ``timeline_rows``, which has them)."""
    known = case.findings_by_id
    con = case.connect()  # None without events in the store
    if con is None:  # the document's own rows as they are (their ids are its findings'; no fields)
        for cited in _cited_from_document(case.document):
            yield cited if cited.excerpt is not None else replace(cited, excerpt="")
        return
    try:
        if not has_table(con, "hits"):
            return
        con.execute("SET preserve_insertion_order = false")
        rows = con.execute(CITED_ROWS_SQL.format(near=near_hits(con))).fetchall()
    finally:
        con.close()
    for ts, host, source, path, line, record_id, message, finding_ids in rows:
        ids = tuple(i for i in finding_ids if i in known)
        if ids:
            yield _cited(ts, host, source, path, line, record_id, message or "", ids)


def _cited_from_document(doc: AssessmentDocument, with_impact: bool = False) -> Iterator[CitedEvent]:
    """The document's cited rows, each once with the ids of every finding citing it (``with_impact``:
    and of the mailbox impact's, ``impact:<mailbox>``). A row's ``CitedEvent`` is made once all are
    known, without a keyword ``__init__`` (a web root's one-page findings cite thousands of rows) and
    with its time parsed once per distinct text."""
    rows: dict[tuple[Any, ...], tuple[Any, str, tuple[str, ...]]] = {}
    get = rows.get
    citing = [(f.host, f.id, f.evidence, f.check == FleetPivots.id) for f in doc.findings]
    if with_impact:
        citing += [(i.host, IMPACT_ID + i.mailbox, i.evidence, False) for i in doc.impact]
    for host, fid, evidence, fleet in citing:
        hosts = host.split(",") if fleet else ()
        for e in evidence:
            # a fleet pivot's row is its own host's (the excerpt says which), as the store's hits hold it
            row_host = prefix if fleet and (prefix := e.excerpt.split(":", 1)[0]) in hosts else host
            key = (row_host, e.path, e.source, e.line, e.record_id, e.ts)
            old = get(key)
            ids = old[2] if old else ()
            rows[key] = (e, row_host, ids if fid in ids else ids + (fid,))
    times: dict[str | None, datetime | None] = {}
    cited = []
    for e, host, ids in rows.values():
        if e.ts in times:
            ts = times[e.ts]
        else:
            ts = times[e.ts] = utctime.parse_iso(e.ts)
        cited.append(_cited(ts, host, e.source, e.path, e.line, e.record_id, e.excerpt, ids))
    far = datetime.max.replace(tzinfo=UTC)
    yield from sorted(cited, key=lambda c: (c.ts or far, c.host, c.path, c.line or 0))


def _cited(ts: datetime | None, host: str, source: str, path: str, line: int | None, record_id: int | None,
           excerpt: str, ids: tuple[str, ...]) -> CitedEvent:
    """A ``CitedEvent`` without its event fields, made without a keyword ``__init__`` (thousands per
    report: a web root's one-page findings, an EVTX case's cited records)."""
    event = object.__new__(CitedEvent)
    event.__dict__.update(ts=ts, host=host, source=source, path=path, line=line, record_id=record_id,
                          excerpt=excerpt, finding_ids=ids, fields={})
    return event


def worst_finding(event: CitedEvent, findings: dict[str, Finding]) -> Finding:
    """The most severe finding citing a row: it names and colours the row in timelines."""
    cited = [findings[i] for i in event.finding_ids]
    return max(cited, key=lambda f: severity_rank(f.severity))


def timestamp_desc(source: str, kind: str | None = None) -> str:
    """What the time of a row means, as Timesketch's ``timestamp_desc`` expects."""
    if source == "files":
        return "File Modified (mtime)"
    if kind == "http" or source in ("iis", "httpproxy"):
        return "Request Time"
    if source == "webroot":
        return "File Content"
    return "Event Logged"
