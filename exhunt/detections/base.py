"""Checks shaped like pySigma validators: class metadata plus ``run(con)`` yielding hits.

Most checks are one SQL query over the store views (``events``, ``files``, ``host_facts``);
``SqlCheck`` turns its rows into hits. Hits are small and frozen; triage groups them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from operator import itemgetter
from typing import TYPE_CHECKING, Any, ClassVar

from exhunt.findings.model import Hit
from exhunt.findings.triage import HitRow, group_rows, hit_row

if TYPE_CHECKING:  # annotations only: the probe's report path imports this without DuckDB
    import duckdb

    from exhunt.findings.model import Finding

__all__ = ["EXCERPT_CHARS", "Check", "Hit", "SqlCheck"]  # Hit lives with the findings it becomes

EXCERPT_CHARS = 400
# what Windows and IIS write for "none": a logon's IpAddress "-" is no attacker address to block
NO_VALUE = (None, "", "-")


class Check:
    """Metadata every check carries into its findings."""

    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[str]
    category: ClassVar[str] = "compromise"  # compromise | exposure | hygiene
    description: ClassVar[str]
    cves: ClassVar[tuple[str, ...]] = ()
    attack: ClassVar[tuple[str, ...]] = ()
    references: ClassVar[tuple[str, ...]] = ()
    remediation: ClassVar[tuple[str, ...]] = ()
    # Triage of text logs (IIS, HttpProxy and the other ``#Fields`` logs) parses only the lines a
    # multi-pattern prefilter selects. A check that reads text-log events lists here regexes
    # (Hyperscan's subset: no backreferences, no lookaround; matched case-insensitively against the
    # raw bytes of one line) of which every line it could ever hit matches at least one.
    # ``None``: the check needs every text-log row it reads, so those logs are parsed in full;
    # ``()``: the check reads no text-log rows (files, Windows events, host facts only).
    prefilter: ClassVar[tuple[str, ...] | None] = None
    # Patterns of ``prefilter`` that serve only the logs a scope of ``artifacts.scopes`` names (by
    # their ``#Fields`` header), each with that scope: together they must still select every line
    # the check could hit in every log (e.g. a space-bounded form for IIS, a line-long one elsewhere).
    prefilter_scopes: ClassVar[Mapping[str, str]] = {}
    # Triage of EVTX files parses only the chunks holding one of the loaded detections' texts
    # (caseless, as the event stores them: values, channel and provider names). A check that reads
    # Windows events lists here texts of which every event it could ever hit holds at least one.
    # ``None``: the check needs every Windows event (every chunk is parsed); ``()``: it reads none.
    event_literals: ClassVar[tuple[str, ...] | None] = None

    def run(self, con: duckdb.DuckDBPyConnection) -> Iterable[Hit]:
        raise NotImplementedError

    def hit_rows(self, con: duckdb.DuckDBPyConnection) -> Iterable[HitRow]:
        """What grouping reads (``triage.group_rows``): the hits of ``run``, as rows."""
        return map(hit_row, self.run(con))

    def findings(self, con: duckdb.DuckDBPyConnection, rows_out: list[dict] | None = None) -> list[Finding]:
        """The check's findings (its hits grouped); every hit also goes to ``rows_out`` for the store."""
        return group_rows(self, self.hit_rows(con), rows_out)

    def refine(self, finding: Finding) -> Finding:
        """Adjust a grouped finding with what only the check knows (e.g. per-host CVEs); default: as is."""
        return finding


class SqlCheck(Check):
    """A check that is one query. Required columns: host, key, path, source, ts, line, record_id,
    excerpt; optional: confidence, and any ``ioc_*`` column becomes an indicator."""

    sql: ClassVar[str]
    # A WHERE over ``events`` that every hit satisfies (usually the query's own): when no row does,
    # the query is not run. DuckDB reads every projected column of a row group even when its filter
    # keeps no row, so a query selecting ``fields`` costs ~1 s per 8 M rows on benign data without it.
    gate: ClassVar[str] = ""

    def run(self, con: duckdb.DuckDBPyConnection) -> Iterator[Hit]:
        if self.shapes_hits:  # a check that overrides ``hit`` shapes its own hits (from the row as a dict)
            for names, batch in self._batches(con):
                yield from map(partial(_by_dict, self.hit, names), batch)
            return
        for row in self._query_rows(con):
            yield _hit_of(self.id, row)

    def hit_rows(self, con: duckdb.DuckDBPyConnection) -> Iterable[HitRow]:
        """The query's rows as grouping reads them, with no ``Hit`` per row (a check over web-root
        pages returns one row per page, thousands); a check that overrides ``run`` or ``hit`` is
        grouped from the hits it makes."""
        if self.shapes_hits or type(self).run is not SqlCheck.run:
            return super().hit_rows(con)
        return self._query_rows(con)

    @property
    def shapes_hits(self) -> bool:
        return type(self).hit is not SqlCheck.hit

    def _query_rows(self, con: duckdb.DuckDBPyConnection) -> Iterator[HitRow]:
        for names, batch in self._batches(con):
            yield from map(self.row_maker(names), batch)

    def _batches(self, con: duckdb.DuckDBPyConnection) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        if self.gate and con.execute(f"SELECT 1 FROM events WHERE {self.gate} LIMIT 1").fetchone() is None:
            return
        cursor = con.execute(self.sql)
        names = [d[0] for d in cursor.description]
        while batch := cursor.fetchmany(10_000):
            yield names, batch

    def row_maker(self, names: list[str]) -> Callable[[tuple[Any, ...]], HitRow]:
        """A query row as a ``HitRow``, its columns read by position (no dict per row); a column the
        query lacks reads as None (the row's extra last value)."""
        at = {name: i for i, name in enumerate(names)}  # a repeated name: its last column, as a dict
        iocs = tuple((name[4:], i) for name, i in at.items() if name.startswith("ioc_"))
        missing = len(names)
        optional = [at.get(n, missing) for n in ("key", "confidence", "source", "ts", "line", "record_id", "excerpt")]
        key, confidence, source, ts, line, record_id, excerpt = optional
        pick = itemgetter(at["host"], key, confidence, at["path"], source, ts, line, record_id, excerpt)

        def make(values: tuple[Any, ...]) -> HitRow:
            host, key, confidence, path, source, ts, line, record_id, excerpt = pick(values + (None,))
            indicators = {}
            for name, i in iocs:
                value = values[i]
                if value not in NO_VALUE:
                    indicators[name] = str(value)
            return (host, str(key or ""), confidence or "high", path, source or "", ts, line, record_id,
                    (excerpt or "")[:EXCERPT_CHARS], indicators)

        return make

    def hit(self, row: dict[str, Any]) -> Hit:
        """One row as a dict (callers outside ``run``); the same fields as ``row_maker`` reads."""
        return _hit_of(self.id, self.row_maker(list(row))(tuple(row.values())))


def _hit_of(check: str, row: HitRow) -> Hit:
    host, key, confidence, path, source, ts, line, record_id, excerpt, indicators = row
    return Hit(check=check, host=host, key=key, path=path, source=source, ts=ts, line=line, record_id=record_id,
               excerpt=excerpt, confidence=confidence, indicators=indicators)


def _by_dict(hit: Callable[[dict[str, Any]], Hit], names: list[str], values: tuple[Any, ...]) -> Hit:
    return hit(dict(zip(names, values, strict=True)))
