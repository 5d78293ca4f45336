"""The detection runner: with --jobs > 1 the engines run side by side, each on its own cursor, and
their findings, hit rows and reports come back in ``ENGINES`` order, as one after another."""

from __future__ import annotations

import threading
from typing import Any

import duckdb
import pytest

from exhunt.detections import runner
from exhunt.detections.runner import DetectContext, run_detections
from exhunt.findings.model import Finding


def _finding(check: str) -> Finding:
    return Finding(id=f"id-{check}", check=check, title=check, severity="low", confidence="low",
                   category="hygiene", host="EXCH01", key=check, description="", first_seen=None,
                   last_seen=None, count=1)


def _engines(barrier: threading.Barrier | None) -> tuple[tuple[str, runner.Engine], ...]:
    """Two engines that each query their cursor, add a hit row and, given a barrier, wait there for
    the other: run one after another, the first would wait alone until the barrier broke."""

    def engine(name: str) -> runner.Engine:
        def run(con: duckdb.DuckDBPyConnection, context: DetectContext,
                hit_rows: list[dict]) -> tuple[list[Finding], dict[str, Any]]:
            (value,) = con.execute("SELECT count(*) FROM t").fetchone() or (0,)
            if barrier is not None:
                barrier.wait()
            hit_rows.append({"finding_id": f"id-{name}", "n": value})
            return [_finding(name)], {"loaded": value}
        return run

    return (("first", engine("first")), ("second", engine("second")))


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE t AS SELECT * FROM range(3)")
    return con


def test_engines_run_side_by_side_in_engines_order(con: duckdb.DuckDBPyConnection,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "ENGINES", _engines(threading.Barrier(2, timeout=10)))
    monkeypatch.setattr("exhunt.detections.fleet.pivots", lambda findings, hit_rows: [])
    hit_rows: list[dict] = []
    findings, rules = run_detections(con, DetectContext(jobs=2), hit_rows)
    assert [f.check for f in findings] == ["first", "second"]
    assert hit_rows == [{"finding_id": "id-first", "n": 3}, {"finding_id": "id-second", "n": 3}]
    assert rules == {"first": {"loaded": 3}, "second": {"loaded": 3}, "fleet": {"loaded": 1, "pivots": 0}}


def test_one_job_runs_engines_one_after_another(con: duckdb.DuckDBPyConnection,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "ENGINES", _engines(None))
    monkeypatch.setattr("exhunt.detections.fleet.pivots", lambda findings, hit_rows: [])
    hit_rows: list[dict] = []
    findings, rules = run_detections(con, DetectContext(jobs=1), hit_rows)
    assert [f.check for f in findings] == ["first", "second"] and len(hit_rows) == 2
    assert rules["second"] == {"loaded": 3}
