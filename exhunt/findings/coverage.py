"""What a host's evidence covered, against what a compromise leaves (``EXPECTED_EVIDENCE``).

Why: "clean" from evidence that could not have shown a compromise (a web root without logs, an
event export nobody could read) is the most expensive wrong answer. Each expected kind is looked
for in the ``files`` inventory as well as in ``events``: a log parsed only in part (triage reads
candidate lines only) still counts as seen, and so does an empty one — it was collected.
"""

from __future__ import annotations

from datetime import datetime

from exhunt import artifacts
from exhunt.artifacts import evtx
from exhunt.findings.model import EXPECTED_EVIDENCE, Coverage
from exhunt.sqltext import literal

WARNING_SAMPLES = 50  # warnings cited in the document per host; all stay in the store
UNRECOGNISED = "unrecognised"  # the ``warnings.artifact`` of a structured file no artifact claimed

# Path fragments (lower case, '/' separated) of the Exchange web folders a web shell is dropped in.
WEB_FOLDERS = ("/owa/auth/", "/ecp/auth/", "/aspnet_client/", "/frontend/httpproxy/")
FRONTEND_SOURCES = ("httpproxy", "iis")
EVENT_LOG_ARTIFACTS = artifacts.EVENT_LOG_ARTIFACTS  # each artifact says whether it holds Windows events

_PATH = "lower(replace(path, '\\', '/'))"
_WEB = " OR ".join(f"contains('/' || {_PATH}, '{frag}')" for frag in WEB_FOLDERS)


def _quoted(values: tuple[str, ...]) -> str:
    """A SQL list of our own constant names (never evidence text)."""
    return "(" + ", ".join(literal(v) for v in values) + ")"


# each expected kind: files that show it, and the event sources whose rows show it (by their rows
# when the file lies elsewhere): an IIS log, an HttpProxy log (by folder); the web folders; event logs
FILE_QUERIES = {
    "frontend_logs": (f"SELECT count(*) FROM files WHERE host = $host AND (artifact = 'iis' OR "
                      f"(artifact = 'exchange_log' AND contains({_PATH}, '/httpproxy/')))"),
    "web_folders": f"SELECT count(*) FROM files WHERE host = $host AND ({_WEB})",
    "event_logs": f"SELECT count(*) FROM files WHERE host = $host AND artifact IN {_quoted(EVENT_LOG_ARTIFACTS)}",
}
EVENT_SOURCES = {"frontend_logs": FRONTEND_SOURCES, "event_logs": tuple(EVENT_LOG_ARTIFACTS)}

# per host and source: rows, first and last time. One pass over ``events`` for every host: with
# --index full each per-host query (counts, a source's first row, the time range) scanned all rows
EventStats = dict[str, dict[str | None, tuple[int, datetime | None, datetime | None]]]


def event_stats(con) -> EventStats:  # type: ignore[no-untyped-def]
    stats: EventStats = {}
    for host, source, rows, first, last in con.execute(
            "SELECT host, source, count(*), min(ts), max(ts) FROM events GROUP BY ALL").fetchall():
        stats.setdefault(host, {})[source] = (int(rows), first, last)
    return stats


def missing_evidence(con, host: str, build_known: bool,  # type: ignore[no-untyped-def]
                     stats: EventStats | None = None) -> tuple[str, ...]:
    """The ``EXPECTED_EVIDENCE`` keys not seen for ``host``, in their declared order."""
    sources = (stats if stats is not None else event_stats(con)).get(host, {})
    missing = []
    for key in EXPECTED_EVIDENCE:
        if key == "build":
            seen = build_known
        else:
            row = con.execute(FILE_QUERIES[key], {"host": host}).fetchone()
            seen = bool(row and row[0]) or any(sources.get(s, (0,))[0] for s in EVENT_SOURCES.get(key, ()))
        if not seen:
            missing.append(key)
    return tuple(missing)


def unrecognised_files(con, host: str) -> int:  # type: ignore[no-untyped-def]
    """Files that looked like structured data (an export?) that no artifact reads: named in warnings."""
    row = con.execute("SELECT count(DISTINCT path) FROM warnings WHERE host = ? AND artifact = ?",
                      [host, UNRECOGNISED]).fetchone()
    return int(row[0]) if row else 0


def host_coverage(con, host: str, build_known: bool = False,  # type: ignore[no-untyped-def]
                  stats: EventStats | None = None) -> Coverage:
    """Files, events (with the EVTX records triage counted but did not store), warnings (a sample),
    what was expected and not seen, and structured files nobody could read. ``stats``:
    ``event_stats`` of the store, when the caller assesses several hosts."""
    stats = stats if stats is not None else event_stats(con)
    by_artifact = dict(con.execute(
        "SELECT coalesce(artifact, 'other'), count(*) FROM files WHERE host = ? GROUP BY ALL ORDER BY 1",
        [host]).fetchall())
    counted = {source: rows for source, (rows, _, _) in stats.get(host, {}).items()}
    not_stored = con.execute("SELECT sum(CAST(value AS BIGINT)) FROM host_facts WHERE host = ? AND fact = ?",
                             [host, evtx.NOT_STORED]).fetchone()
    if not_stored and not_stored[0]:  # the EVTX records triage counted but did not store
        counted["evtx"] = counted.get("evtx", 0) + int(not_stored[0])
    by_source = {s: n for s, n in sorted(counted.items(), key=lambda kv: (kv[0] is None, kv[0] or "")) if n > 0}
    files, size = con.execute("SELECT count(*), coalesce(sum(size), 0) FROM files WHERE host = ?",
                              [host]).fetchone() or (0, 0)
    n_warn = (con.execute("SELECT count(*) FROM warnings WHERE host = ?", [host]).fetchone() or (0,))[0]
    samples = con.execute(
        "SELECT artifact, path, line, \"offset\", message FROM warnings WHERE host = ? "
        "ORDER BY path, line NULLS FIRST LIMIT ?", [host, WARNING_SAMPLES]).fetchall()
    return Coverage(
        files=int(files), bytes=int(size), events=int(sum(by_source.values())),
        files_by_artifact={str(k): int(v) for k, v in by_artifact.items()},
        events_by_source={str(k): int(v) for k, v in by_source.items()},
        warnings=int(n_warn),
        warning_samples=tuple({"artifact": a, "path": p, "line": ln, "offset": o, "message": m}
                              for a, p, ln, o, m in samples),
        missing=missing_evidence(con, host, build_known, stats),
        unrecognised=unrecognised_files(con, host),
    )
