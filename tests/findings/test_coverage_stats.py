"""Host coverage and time range from one pass over ``events`` for every host (``event_stats``) read
the same as the per-host queries they replaced (kept here as the reference)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from exhunt import api
from exhunt.artifacts import evtx
from exhunt.events.store import StoreWriter, connect
from exhunt.findings import coverage

T0 = datetime(2021, 3, 3, 1, 0, tzinfo=UTC)


def _store(root: Path) -> None:
    with StoreWriter(root, "EXCH01", part="a") as writer:
        for n, source in enumerate(["iis", "iis", "httpproxy", None, "evtx"]):
            writer.add("events", {"host": "EXCH01", "path": f"{n}.log", "source": source, "event_id": n,
                                  "ts": T0.replace(hour=n + 1) if n != 2 else None})
        writer.add("files", {"host": "EXCH01", "path": "C/inetpub/logs/LogFiles/W3SVC1/u_ex1.log", "artifact": "iis"})
        for fact, value in ((evtx.NOT_STORED, "7"), (evtx.FIRST_NOT_STORED, "2021-03-02T23:00:00+00:00"),
                            (evtx.LAST_NOT_STORED, "2021-03-03T04:30:00+00:00")):
            writer.add("host_facts", {"host": "EXCH01", "fact": fact, "value": value})
    with StoreWriter(root, "EXCH02", part="b") as writer:  # events of a source only, no files
        writer.add("events", {"host": "EXCH02", "path": "s.evtx", "source": "evtx", "event_id": 9, "ts": T0})


def _reference(con, host: str) -> tuple[dict, tuple, tuple]:  # type: ignore[no-untyped-def]
    by_source = dict(con.execute(
        "SELECT source, sum(n) FROM (SELECT source, count(*) AS n FROM events WHERE host = ? GROUP BY ALL "
        "UNION ALL SELECT 'evtx', sum(CAST(value AS BIGINT)) FROM host_facts WHERE host = ? AND fact = ?) "
        "WHERE n > 0 GROUP BY ALL ORDER BY 1", [host, host, evtx.NOT_STORED]).fetchall())
    span = con.execute(
        "SELECT min(t), max(t) FROM (SELECT ts AS t FROM events WHERE host = ? UNION ALL "
        "SELECT CAST(value AS TIMESTAMPTZ) FROM host_facts WHERE host = ? AND fact IN (?, ?))",
        [host, host, evtx.FIRST_NOT_STORED, evtx.LAST_NOT_STORED]).fetchone()
    frontend = con.execute("SELECT count(*) FROM (SELECT 1 FROM events WHERE host = ? AND source IN "
                           "('httpproxy', 'iis') LIMIT 1)", [host]).fetchone()[0]
    return {str(k): int(v) for k, v in by_source.items()}, span, (frontend,)


def test_one_pass_reads_as_the_per_host_queries(tmp_path: Path) -> None:
    _store(tmp_path)
    con = connect(tmp_path)
    stats = coverage.event_stats(con)
    for host in ("EXCH01", "EXCH02", "NOBODY"):
        by_source, (first, last), _ = _reference(con, host)
        cov = coverage.host_coverage(con, host, stats=stats)
        assert cov.events_by_source == by_source and list(cov.events_by_source) == list(by_source)
        assert cov.events == sum(by_source.values())
        assessed = api.host_assessment(con, host, ("root",), [], stats)
        assert (assessed.first_seen, assessed.last_seen) == (api.iso(first), api.iso(last))
        assert assessed == api.host_assessment(con, host, ("root",), [])  # stats read here: the same
    assert "frontend_logs" not in coverage.host_coverage(con, "EXCH01", stats=stats).missing
    assert "frontend_logs" in coverage.host_coverage(con, "EXCH02", stats=stats).missing
    assert "event_logs" not in coverage.host_coverage(con, "EXCH02", stats=stats).missing  # by its rows
