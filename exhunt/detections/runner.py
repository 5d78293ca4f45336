"""Run every registered check over a store connection and group the hits into findings."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exhunt.detections.base import Check
from exhunt.detections.checks import CHECKS
from exhunt.detections.checks.webshells import known_web_files, known_web_paths
from exhunt.detections.orgdomains import fill_org_domains
from exhunt.detections.sigma import sigma_engine
from exhunt.findings.model import Finding

if TYPE_CHECKING:
    import duckdb


def prepare(con: duckdb.DuckDBPyConnection, org_domains: Sequence[str] = ()) -> None:
    """Helper tables that checks join against."""
    con.execute("CREATE OR REPLACE TABLE known_web_files (name VARCHAR)")
    con.executemany("INSERT INTO known_web_files VALUES (?)", [[n] for n in known_web_files()])
    con.execute("CREATE OR REPLACE TABLE known_web_paths (path VARCHAR)")
    con.executemany("INSERT INTO known_web_paths VALUES (?)", [[p] for p in known_web_paths()])
    fill_org_domains(con, org_domains)


def _findings_of(con: duckdb.DuckDBPyConnection, check: Check) -> tuple[list[Finding], list[dict]]:
    """One check on its own cursor (same database, own connection), so checks can run side by side."""
    cursor = con.cursor()
    rows: list[dict] = []
    try:
        return check.findings(cursor, rows), rows
    finally:
        cursor.close()


def run_checks(
    con: duckdb.DuckDBPyConnection, checks: Iterable[Check] | None = None, hit_rows: list[dict] | None = None,
    jobs: int = 1, org_domains: Sequence[str] = (),
) -> list[Finding]:
    """Every check; with ``jobs`` > 1 that many run at once (most are small queries that leave cores
    idle on their own), and their findings and hit rows are gathered in the checks' order, so the
    result is the same."""
    prepare(con, org_domains)
    todo = list(checks) if checks is not None else [c() for c in CHECKS]
    findings: list[Finding] = []
    if jobs <= 1:
        for check in todo:
            findings.extend(check.findings(con, hit_rows))
        return findings
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # DuckDB releases the GIL while a query runs
        for found, rows in pool.map(lambda c: _findings_of(con, c), todo):
            findings.extend(found)
            if hit_rows is not None:
                hit_rows.extend(rows)
    return findings


@dataclass
class DetectContext:
    """What detection engines may use besides the store: user rule packs and lists."""

    store: Path | None = None
    yara: list[Path] = field(default_factory=list)
    sigma: list[Path] = field(default_factory=list)
    iocs: list[Path] = field(default_factory=list)
    baselines: list[Path] = field(default_factory=list)
    jobs: int = 1  # checks run side by side (scan --jobs)
    org_domains: list[str] = field(default_factory=list)  # scan --org-domain: the organisation's own


# An engine runs over the store and returns its findings plus a report of the rules it loaded
# (counts, skipped rules with reasons) that goes into the document's ``rules`` section.
Engine = Callable[["duckdb.DuckDBPyConnection", DetectContext, list[dict]], tuple[list[Finding], dict[str, Any]]]


def native_engine(
    con: duckdb.DuckDBPyConnection, context: DetectContext, hit_rows: list[dict]
) -> tuple[list[Finding], dict[str, Any]]:
    checks = [c() for c in CHECKS]
    found = run_checks(con, checks, hit_rows, context.jobs, context.org_domains)
    return found, {"loaded": len(checks), "ids": [c.id for c in checks]}


def _file_engine(
    con: duckdb.DuckDBPyConnection, context: DetectContext, hit_rows: list[dict]
) -> tuple[list[Finding], dict[str, Any]]:
    from exhunt.detections.filehunt import file_engine  # yara-x is imported only when the engine runs

    return file_engine(con, context, hit_rows)


ENGINES: tuple[tuple[str, Engine], ...] = (
    ("native", native_engine), ("yara", _file_engine), ("sigma", sigma_engine),
)


def _engine_on_cursor(
    con: duckdb.DuckDBPyConnection, engine: Engine, context: DetectContext
) -> tuple[list[Finding], dict[str, Any], list[dict]]:
    """One engine on its own cursor (same database) with its own hit rows, so engines run side by side."""
    cursor = con.cursor()
    rows: list[dict] = []
    try:
        found, report = engine(cursor, context, rows)
    finally:
        cursor.close()
    return found, report, rows


def run_detections(
    con: duckdb.DuckDBPyConnection, context: DetectContext, hit_rows: list[dict]
) -> tuple[list[Finding], dict[str, Any]]:
    """Every engine, then the fleet pivots over their findings. With ``context.jobs`` > 1 the engines
    run side by side, each on its own cursor (DuckDB releases the GIL while a query runs): one after
    another, the scan process kept one core busy after the parse while the other idled. Findings,
    hit rows and reports are gathered in ``ENGINES`` order either way, so the result is the same."""
    findings: list[Finding] = []
    rules: dict[str, Any] = {}
    if context.jobs <= 1:
        for name, engine in ENGINES:
            found, report = engine(con, context, hit_rows)
            findings.extend(found)
            rules[name] = report
    else:
        with ThreadPoolExecutor(max_workers=len(ENGINES), thread_name_prefix="exhunt-engine") as pool:
            futures = [(name, pool.submit(_engine_on_cursor, con, engine, context)) for name, engine in ENGINES]
            for name, future in futures:
                found, report, rows = future.result()
                findings.extend(found)
                hit_rows.extend(rows)
                rules[name] = report
    from exhunt.detections.fleet import pivots  # after every engine: it reads their findings

    fleet = pivots(findings, hit_rows)
    findings.extend(fleet)
    rules["fleet"] = {"loaded": 1, "pivots": len(fleet)}
    return findings, rules
