"""Checks shaped like pySigma validators: class metadata plus ``run(con)`` yielding hits.

Most checks are one SQL query over the store views (``events``, ``files``, ``host_facts``);
``SqlCheck`` turns its rows into hits. Hits are small and frozen; triage groups them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from exhunt.findings.model import Hit

if TYPE_CHECKING:  # annotations only: the probe's report path imports this without DuckDB
    import duckdb

    from exhunt.findings.model import Finding

__all__ = ["EXCERPT_CHARS", "Check", "Hit", "SqlCheck"]  # Hit lives with the findings it becomes

EXCERPT_CHARS = 400


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
        if self.gate and con.execute(f"SELECT 1 FROM events WHERE {self.gate} LIMIT 1").fetchone() is None:
            return
        cursor = con.execute(self.sql)
        names = [d[0] for d in cursor.description]
        make = self.hit_maker(names)
        if type(self).hit is not SqlCheck.hit:  # a check that shapes its own hits keeps doing so
            make = partial(_by_dict, self.hit, names)
        while batch := cursor.fetchmany(10_000):
            for values in batch:
                yield make(values)

    def hit_maker(self, names: list[str]) -> Callable[[tuple[Any, ...]], Hit]:
        """``hit`` for the rows of one query, reading columns by position: no dict per row (a check
        over web-root pages returns one row per page, thousands)."""
        at = {name: i for i, name in enumerate(names)}  # a repeated name: its last column, as a dict
        iocs = tuple((name[4:], i) for name, i in at.items() if name.startswith("ioc_"))
        host, path = at["host"], at["path"]
        optional = [at.get(n) for n in ("key", "source", "ts", "line", "record_id", "excerpt", "confidence")]
        key, source, ts, line, record_id, excerpt, confidence = optional

        def get(values: tuple[Any, ...], i: int | None) -> Any:
            return None if i is None else values[i]

        def make(values: tuple[Any, ...]) -> Hit:
            indicators = {}
            for name, i in iocs:
                value = values[i]
                if value not in (None, ""):
                    indicators[name] = str(value)
            return Hit(
                check=self.id,
                host=values[host],
                key=str(get(values, key) or ""),
                path=values[path],
                source=get(values, source) or "",
                ts=get(values, ts),
                line=get(values, line),
                record_id=get(values, record_id),
                excerpt=(get(values, excerpt) or "")[:EXCERPT_CHARS],
                confidence=get(values, confidence) or "high",
                indicators=indicators,
            )

        return make

    def hit(self, row: dict[str, Any]) -> Hit:
        """One row as a dict (callers outside ``run``); the same fields as ``hit_maker`` reads."""
        return self.hit_maker(list(row))(tuple(row.values()))


def _by_dict(hit: Callable[[dict[str, Any]], Hit], names: list[str], values: tuple[Any, ...]) -> Hit:
    return hit(dict(zip(names, values, strict=True)))
