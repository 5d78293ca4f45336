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
        for fact, value in ((evtx.NOT_STORED, "2"), (evtx.FIRST_NOT_STORED, "2021-03-02T23:30:00+00:00"),
                            (evtx.LAST_NOT_STORED, "2021-03-03T07:15:00+00:00")):  # a second file's: the range of both
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


def _reference_counts(con, host: str) -> dict:  # type: ignore[no-untyped-def]
    """The per-host queries ``store_counts`` replaced (ten per host), as they were."""
    files, size = con.execute("SELECT count(*), coalesce(sum(size), 0) FROM files WHERE host = ?", [host]).fetchone()
    return {
        "files_by_artifact": dict(con.execute("SELECT coalesce(artifact, 'other'), count(*) FROM files "
                                              "WHERE host = ? GROUP BY ALL ORDER BY 1", [host]).fetchall()),
        "files": (files, size),
        "warnings": con.execute("SELECT count(*) FROM warnings WHERE host = ?", [host]).fetchone()[0],
        "samples": con.execute("SELECT artifact, path, line, \"offset\", message FROM warnings WHERE host = ? "
                               "ORDER BY path, line NULLS FIRST LIMIT ?", [host, coverage.WARNING_SAMPLES]).fetchall(),
        "unrecognised": con.execute("SELECT count(DISTINCT path) FROM warnings WHERE host = ? AND artifact = ?",
                                    [host, coverage.UNRECOGNISED]).fetchone()[0],
        "seen": {key for key, condition in coverage.FILE_CONDITIONS.items() if con.execute(
            f"SELECT count(*) FROM files WHERE host = ? AND ({condition})", [host]).fetchone()[0]},
    }


def test_every_host_counted_at_once_reads_as_per_host(tmp_path: Path) -> None:
    """``store_counts`` (a few grouped queries for every host) against the per-host queries: files
    by artifact, sizes, warnings and their first ``WARNING_SAMPLES`` (more than that on one host),
    unreadable structured files, the expected kinds of files seen."""
    _store(tmp_path)
    with StoreWriter(tmp_path, "EXCH02", part="c") as writer:
        writer.add("files", {"host": "EXCH02", "path": "C/inetpub/wwwroot/aspnet_client/x.aspx", "artifact": None,
                             "size": 10})
        writer.add("files", {"host": "EXCH02", "path": "Logs/System.evtx", "artifact": "evtx", "size": 5})
        for n in range(coverage.WARNING_SAMPLES + 7):
            writer.add("warnings", {"host": "EXCH02", "artifact": coverage.UNRECOGNISED if n % 3 else "iis",
                                    "path": f"w{n % 11:02d}.json", "line": None if n % 5 == 0 else n,
                                    "message": f"m{n}"})
    with StoreWriter(tmp_path, "EXCH01", part="d") as writer:
        writer.add("warnings", {"host": "EXCH01", "artifact": "iis", "path": "u.log", "line": 3, "message": "bad"})
    con = connect(tmp_path)
    counts = coverage.store_counts(con)
    for host in ("EXCH01", "EXCH02", "NOBODY"):
        ref = _reference_counts(con, host)
        assert counts.files_by_artifact.get(host, {}) == ref["files_by_artifact"]
        assert list(counts.files_by_artifact.get(host, {})) == list(ref["files_by_artifact"])
        assert counts.files.get(host, (0, 0)) == ref["files"]
        assert counts.warnings.get(host, 0) == ref["warnings"]
        assert [tuple(s.values()) for s in counts.samples.get(host, [])] == ref["samples"]
        assert counts.unrecognised.get(host, 0) == ref["unrecognised"]
        assert counts.expected_files.get(host, set()) == ref["seen"]
        stats = coverage.event_stats(con)
        assert coverage.host_coverage(con, host, stats=stats, counts=counts) == coverage.host_coverage(con, host)
