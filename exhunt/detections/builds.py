"""Server build -> product, CU, update and exploited-CVE status (bundled tables in ``data/``)."""

from __future__ import annotations

import duckdb

from exhunt.findings.model import HostBuild

CONFIDENCE_ORDER = {"high": 0, "medium": 1, "low": 2}


def best_build_fact(con: duckdb.DuckDBPyConnection, host: str) -> tuple[str, str, str] | None:
    """The most trustworthy build seen for a host: (build, source, confidence)."""
    rows = con.execute(
        "SELECT value, source, confidence, count(*) AS n FROM host_facts "
        "WHERE host = ? AND fact IN ('build', 'owa_build') GROUP BY ALL",
        [host],
    ).fetchall()
    if not rows:
        return None
    rows.sort(key=lambda r: (CONFIDENCE_ORDER.get(r[2], 3), -r[3]))
    value, source, confidence, _ = rows[0]
    return value, source, confidence


def assess_host(con: duckdb.DuckDBPyConnection, host: str) -> HostBuild | None:
    fact = best_build_fact(con, host)
    if fact is None:
        return None
    return HostBuild(build=fact[0], source=fact[1], confidence=fact[2])
