"""Run every registered check over a store connection and group the hits into findings."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources

import duckdb

from exhunt.detections.base import Check
from exhunt.detections.checks import CHECKS
from exhunt.findings.model import Finding
from exhunt.findings.triage import group_hits


def known_web_files() -> list[str]:
    text = resources.files("exhunt").joinpath("data", "known_web_files.txt").read_text(encoding="utf-8")
    return [n.strip().lower() for n in text.splitlines() if n.strip() and not n.startswith("#")]


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Helper tables that checks join against."""
    con.execute("CREATE OR REPLACE TABLE known_web_files (name VARCHAR)")
    con.executemany("INSERT INTO known_web_files VALUES (?)", [[n] for n in known_web_files()])


def run_checks(
    con: duckdb.DuckDBPyConnection, checks: Iterable[Check] | None = None, hit_rows: list[dict] | None = None
) -> list[Finding]:
    prepare(con)
    findings: list[Finding] = []
    for check in checks if checks is not None else (c() for c in CHECKS):
        findings.extend(group_hits(check, check.run(con), hit_rows))
    return findings
