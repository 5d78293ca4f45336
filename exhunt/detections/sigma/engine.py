"""The Sigma detection engine: every loaded rule over the events store, hits -> findings.

Rules that share a logsource predicate are evaluated in one scan of the store: each row gets the
list of rule numbers whose detection it matches (``CASE WHEN`` per rule, so DuckDB evaluates each
detection only on the rows the logsource selects and shares ``lower(column)`` across rules).
A batch that fails at run time is retried rule by rule, and the rule that fails is reported with
its error instead of hiding the others. Correlation rules run one query each.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import duckdb

from exhunt.detections.base import EXCERPT_CHARS, NO_VALUE, Hit
from exhunt.detections.sigma import fields
from exhunt.detections.sigma.loader import load_and_convert
from exhunt.detections.sigma.meta import rule_check
from exhunt.detections.sigma.queries import CompiledQuery, RuleSet, rule_path
from exhunt.detections.sigma.ruleinfo import RuleInfo
from exhunt.events.store import FIELDS_SQL
from exhunt.findings.model import Finding
from exhunt.findings.triage import group_hits

Query = CompiledQuery[RuleInfo]  # a converted rule as the engine runs it (no pySigma object)
BATCH_RULES = 40
# Scanned left to right: a string literal is consumed whole (so nothing inside one is rewritten);
# a raw-field read as fields.json_field writes it (path literal, SQL quotes doubled); lower("col").
SHARED_RE = re.compile(
    r"""json_extract_string\("fields", (?P<path>'\$\."(?:[^'"\\]|''|\\")*"')\)"""
    r"""|lower\("(?P<column>[a-z_]+)"\)"""
    r"""|'(?:[^']|'')*'"""
)
VIRTUAL_BY_TEXT = {text: name for name, text in fields.VIRTUAL.items()}
_VIRTUALS = "|".join(re.escape(t) for t in sorted(VIRTUAL_BY_TEXT, key=len, reverse=True))
# Left to right like SHARED_RE: a virtual field's expression (lower-cased or not) or a literal.
VIRTUAL_RE = re.compile(rf"lower\((?P<lvirtual>{_VIRTUALS})\)|(?P<virtual>{_VIRTUALS})|'(?:[^']|'')*'")
INDICATORS = ("client_ip", "user", "user_agent", "image", "parent_image", "target_filename")
EVIDENCE = (
    '"host", "source", "path", "line", "record_id", "ts", '
    + fields.EXCERPT
    + " AS excerpt, "
    + ", ".join(f'"{c}" AS ioc_{c}' for c in INDICATORS)
)


def _batches(queries: list[Query]) -> Iterator[tuple[str, list[Query]]]:
    by_logsource: dict[str, list[Query]] = defaultdict(list)
    for query in queries:
        by_logsource[query.logsource].append(query)
    for logsource, group in by_logsource.items():
        for start in range(0, len(group), BATCH_RULES):
            yield logsource, group[start : start + BATCH_RULES]


def batch_sql(logsource: str, batch: Sequence[Query], stored: bool = False) -> str:
    """One scan of the rows ``logsource`` selects for every rule of ``batch``; ``stored``: the rows
    hold ``sigma_fields`` (``run_queries``), raw fields are then read from the line where they can."""
    hoisted, virtuals = shared_virtuals([q.predicate for q in batch])
    predicates, paths, lowered = shared_expressions(hoisted)
    hoisted_paths = {name: _paths_read(fields.VIRTUAL[name], paths) for name in virtuals}
    cases = ", ".join(f"CASE WHEN {p} THEN {i} END" for i, p in enumerate(predicates))
    # Expressions many rules of the batch repeat are computed once per row in the inner selects:
    # the JSON text parsed once for every raw field read (one multi-path extraction, not one parse
    # per reference; the hoisted virtual fields read it too), each lower-cased column once, not once
    # per rule, and each virtual field (keyword text, the full URI) that two or more references
    # share, once, lower-cased once.
    extra = [f'{hoisted_paths[name]} AS "sigma_v_{name}"' for name in virtuals]
    extra += [f'lower("sigma_v_{name}") AS "sigma_lv_{name}"' for name, low in virtuals.items() if low]
    extra += [f'lower("{c}") AS "sigma_l_{c}"' for c in lowered]
    raw = ""
    if paths:
        values = fields.raw_values(paths) if stored else f"""json_extract_string("fields", [{", ".join(paths)}])"""
        raw = f", {values} AS sigma_j"
    rows = f"SELECT *{''.join(', ' + e for e in extra)} FROM (SELECT *{raw} FROM {fields.TABLE} WHERE {logsource})"
    return (
        f"SELECT {EVIDENCE}, sigma_m FROM "
        f"(SELECT *, list_filter([{cases}], lambda x: x IS NOT NULL) AS sigma_m "
        f"FROM ({rows})) WHERE len(sigma_m) > 0"
    )


def _paths_read(expression: str, paths: list[str]) -> str:
    """``expression`` with each raw-field read (``json_extract_string("fields", '<path>')``) made
    ``sigma_j[n]``, the path added to ``paths`` when new (string literals left alone)."""

    def rewrite(match: re.Match[str]) -> str:
        literal = match.group("path")
        if not literal:
            return match.group(0)
        if literal not in paths:
            paths.append(literal)
        return f"sigma_j[{paths.index(literal) + 1}]"

    return SHARED_RE.sub(rewrite, expression)


def shared_virtuals(predicates: Sequence[str]) -> tuple[list[str], dict[str, bool]]:
    """Rewrite each virtual field's expression (``fields.VIRTUAL``) that the predicates repeat into
    ``"sigma_v_<name>"`` (``lower(<it>)`` into ``"sigma_lv_<name>"``), outside SQL string literals
    only. Returns the predicates and the hoisted names (True where a lower-cased copy is read).
    A rule pack's keyword rules repeat the keyword text dozens of times in one batch: the query
    then takes longer to plan than to run, and each copy parses the row's JSON again."""
    counts: dict[str, int] = {}
    for text in predicates:
        for match in VIRTUAL_RE.finditer(text):
            name = VIRTUAL_BY_TEXT.get(match.group("virtual") or match.group("lvirtual") or "")
            if name:
                counts[name] = counts.get(name, 0) + 1
    shared = {name for name, n in counts.items() if n >= 2}
    hoisted: dict[str, bool] = {}

    def rewrite(match: re.Match[str]) -> str:
        lowered = match.group("lvirtual")
        name = VIRTUAL_BY_TEXT.get(lowered or match.group("virtual") or "")
        if name not in shared:
            return match.group(0)
        hoisted[name] = hoisted.get(name, False) or lowered is not None
        return f'"sigma_lv_{name}"' if lowered is not None else f'"sigma_v_{name}"'

    return [VIRTUAL_RE.sub(rewrite, p) for p in predicates], {n: hoisted[n] for n in sorted(hoisted)}


def shared_expressions(predicates: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """Rewrite ``json_extract_string("fields", '<path>')`` into ``sigma_j[n]`` and ``lower("col")``
    into ``"sigma_l_col"``, outside SQL string literals only (a rule value is never touched).
    Returns the predicates, the JSON path literals in ``n`` order and the lower-cased columns."""
    paths: dict[str, int] = {}
    lowered: dict[str, None] = {}

    def rewrite(match: re.Match[str]) -> str:
        if match.group("path"):
            literal = match.group("path")
            if literal not in paths:
                paths[literal] = len(paths) + 1
            return f"sigma_j[{paths[literal]}]"
        column = match.group("column")
        if column and column in fields.COLUMNS:
            lowered[column] = None
            return f'"sigma_l_{column}"'
        return match.group(0)  # a string literal, or a column we do not hoist: unchanged

    rewritten = [SHARED_RE.sub(rewrite, p) for p in predicates]
    return rewritten, list(paths), list(lowered)


def correlation_sql(query: Query) -> str:
    return f"SELECT {EVIDENCE}, sigma_key FROM ({query.sql})"


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _hit(check_id: str, row: dict[str, Any], confidence: str) -> Hit:
    return Hit(
        check=check_id,
        host=row["host"] or "",
        key="",
        path=row["path"] or "",
        source=row["source"] or "",
        ts=row["ts"],
        line=row["line"],
        record_id=row["record_id"],
        excerpt=(row["excerpt"] or "")[:EXCERPT_CHARS],
        confidence=confidence,
        indicators={k[4:]: str(v) for k, v in row.items() if k.startswith("ioc_") and v not in NO_VALUE},
    )


def run_queries(
    con: duckdb.DuckDBPyConnection, ruleset: RuleSet, jobs: int = 1
) -> dict[int, tuple[Query, list[dict[str, Any]]]]:
    """Matched rows per rule (keyed by ``id(rule)``); rules that fail at run time go to ``failed``.
    With ``jobs`` > 1 that many queries run at once, each on its own cursor: a copy of a few row
    groups gives DuckDB nothing to split, so one query alone keeps one core busy."""
    matches: dict[int, tuple[Query, list[dict[str, Any]]]] = {}
    logsources = sorted({ls for q in ruleset.queries for ls in (q.logsource, *q.needs) if ls}) or ["false"]
    # One read of the store: every later query scans this in-memory table, not thousands of parts.
    # When no row is selected the copy is made empty without that read: DuckDB reads every column
    # (the wide ``fields`` JSON too) of a row group even when the filter keeps none of its rows,
    # and a store of web logs alone holds none of the Windows rows most rules select.
    where = " OR ".join(f"({ls})" for ls in logsources)
    if con.execute(f"SELECT 1 FROM {fields.SOURCE_TABLE} WHERE {where} LIMIT 1").fetchone() is None:
        where = "false"
    # a temporary table is seen by its own connection only; cursors need one of the (in-memory) database
    # The rows as stored: a raw field is then read from the line (``fields.raw_values``) and the
    # whole JSON derived only where an expression still reads ``fields`` (the keyword text, an excerpt
    # without a request); copying the derived JSON of every web row cost 5x the copy of the parts.
    temp = "TEMP " if jobs <= 1 else ""
    source = fields.STORED_TABLE if _exists(con, fields.STORED_TABLE) else fields.SOURCE_TABLE
    rows = f"{source} WHERE {where}"
    if not _in_memory(con, source):  # else the store's own copy is read in place: copying it again cost
        # ~0.1 s for 32,000 EVTX rows (their ``fields`` JSON, 54 MB), with every row selected
        con.execute(f"CREATE OR REPLACE {temp}TABLE {fields.ROWS} AS SELECT * FROM {rows}")
        rows = fields.ROWS
    names = {row[0] for row in con.execute(f"DESCRIBE {source}").fetchall()}
    stored = {"raw", "raw_header"} <= names
    # (``rowid`` too: correlations number the events by it, and a view has none of its own)
    view = (f'SELECT * REPLACE ({FIELDS_SQL} AS fields), "fields" AS {fields.STORED}, rowid FROM {rows}'
            if stored else f"SELECT *, rowid FROM {rows}")
    con.execute(f"CREATE OR REPLACE {temp}VIEW {fields.TABLE} AS {view}")
    try:
        _run(con, ruleset, matches, jobs, stored)
    finally:
        con.execute(f"DROP VIEW IF EXISTS {fields.TABLE}")
        con.execute(f"DROP TABLE IF EXISTS {fields.ROWS}")
    return matches


def _in_memory(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether ``name`` is a table of the (in-memory) database, not a view over the store's parts."""
    found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchone()
    return bool(found and found[0])


def _exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    found = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()
    return bool(found and found[0])


def _present(con: duckdb.DuckDBPyConnection, logsources: list[str]) -> dict[str, bool]:
    """Which logsource predicates select any row: one scan for all (empty when that scan fails,
    and then every batch simply runs)."""
    if not logsources:
        return {}
    counts = ", ".join(f"count(*) FILTER (WHERE {ls})" for ls in logsources)
    try:
        row = con.execute(f"SELECT {counts} FROM {fields.TABLE}").fetchone()
    except duckdb.Error:
        return {}
    return {ls: bool(n) for ls, n in zip(logsources, row or (), strict=False)}


# What one query of the engine gives back: its rows (``sigma_m`` indexing ``queries``), the queries
# those indexes name, and the rules that failed with their error.
Outcome = tuple[list[dict[str, Any]], list[Query], list[tuple[Query, str]]]


def _batch(con: duckdb.DuckDBPyConnection, where: str, batch: list[Query],
           stored: bool = False) -> Outcome:
    try:
        return _rows(con, batch_sql(where, batch, stored)), batch, []
    except duckdb.Error:
        rows: list[dict[str, Any]] = []
        kept: list[Query] = []
        failed: list[tuple[Query, str]] = []
        for query in batch:  # find the rule that breaks the batch, keep the others
            try:
                single = _rows(con, batch_sql(where, [query], stored))
            except duckdb.Error as exc:
                failed.append((query, f"query failed: {str(exc).splitlines()[0]}"))
                continue
            kept.append(query)
            for row in single:
                row["sigma_m"] = [len(kept) - 1]
            rows.extend(single)
        return rows, kept, failed


def _correlation(con: duckdb.DuckDBPyConnection, query: Query) -> Outcome:
    try:
        rows = _rows(con, correlation_sql(query))
    except duckdb.Error as exc:
        return [], [], [(query, f"query failed: {str(exc).splitlines()[0]}")]
    for row in rows:
        row["sigma_m"] = [0]
    return rows, [query], []


def _on_cursor(con: duckdb.DuckDBPyConnection, task: Callable[[duckdb.DuckDBPyConnection], Outcome]) -> Outcome:
    cursor = con.cursor()
    try:
        return task(cursor)
    finally:
        cursor.close()


def _run(
    con: duckdb.DuckDBPyConnection,
    ruleset: RuleSet,
    matches: dict[int, tuple[Query, list[dict[str, Any]]]],
    jobs: int = 1,
    stored: bool = False,
) -> None:
    detections = [q for q in ruleset.queries if q.logsource]
    correlations = [q for q in ruleset.queries if not q.logsource]
    present = _present(con, sorted({q.logsource for q in detections}))
    tasks: list[Callable[[duckdb.DuckDBPyConnection], Outcome]] = []
    for logsource, batch in _batches(detections):
        # A logsource with no rows still has its batch bound (``WHERE false``), so a rule whose SQL
        # does not bind is reported as before; only the (far costlier) execution is skipped.
        where = logsource if present.get(logsource, True) else "false"
        tasks.append(partial(_batch, where=where, batch=list(batch), stored=stored))
    tasks.extend(partial(_correlation, query=query) for query in correlations)
    if jobs <= 1:
        outcomes: Iterable[Outcome] = (task(con) for task in tasks)
    else:  # DuckDB releases the GIL while a query runs; outcomes are taken in the tasks' order
        pool = ThreadPoolExecutor(max_workers=jobs)
        outcomes = pool.map(partial(_on_cursor, con), tasks)
    try:
        for rows, queries, failed in outcomes:  # the same matches and failures in the same order
            for query, reason in failed:
                ruleset.fail(query.rule, rule_path(query.rule), reason)
            for row in rows:
                for index in row.pop("sigma_m"):
                    query = queries[index]
                    matches.setdefault(id(query.rule), (query, []))[1].append(row)
    finally:
        if jobs > 1:
            pool.shutdown()


def findings_for(
    matches: dict[int, tuple[Query, list[dict[str, Any]]]], hit_rows: list[dict] | None
) -> list[Finding]:
    """One finding per (rule, host)."""
    findings: list[Finding] = []
    for query, rows in matches.values():
        check = rule_check(query.rule)
        confidence = str(getattr(check, "confidence", "medium"))
        rows.sort(
            key=lambda r: (
                r["host"] or "",
                r["ts"] is None,
                r["ts"] or 0,
                r["path"] or "",
                r["line"] or 0,
                r["record_id"] or 0,
            )
        )
        findings.extend(group_hits(check, (_hit(check.id, r, confidence) for r in rows), hit_rows))
    return findings


def run(
    con: duckdb.DuckDBPyConnection,
    paths: Sequence[Path] = (),
    include_builtin: bool = True,
    hit_rows: list[dict] | None = None,
    jobs: int = 1,
) -> tuple[list[Finding], dict[str, Any]]:
    ruleset = load_and_convert(paths, include_builtin)
    matches = run_queries(con, ruleset, jobs)
    return findings_for(matches, hit_rows), ruleset.report()
