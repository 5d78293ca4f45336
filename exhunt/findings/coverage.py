"""What a host's evidence covered, against what a compromise leaves (``EXPECTED_EVIDENCE``).

Why: "clean" from evidence that could not have shown a compromise (a web root without logs, an
event export nobody could read) is the most expensive wrong answer. Front-end and event logs count
as seen only when rows were read from them (triage stores every log's first and last lines and
counts the EVTX records it leaves out, so a clean log read in part still counts): logs collected
but all unreadable (NUL-filled after a crash, every record damaged) are not an all-clear. The web
folders count when files were collected there.

Evidence that was not (fully) read makes the host's coverage incomplete however much else was:
a warning that says lines, records, members or a file were skipped, cut, refused or unreadable
(``LOSS``), and a file nobody could read where evidence is kept (``UNRECOGNISED`` warnings: a log
without its ``#Fields`` header, an archive named without its extension, an image inside the
evidence, a structured export no artifact knows). The attack may be in exactly those lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from exhunt import artifacts
from exhunt.artifacts import evtx
from exhunt.findings.model import EXPECTED_EVIDENCE, Coverage
from exhunt.sqltext import literal

WARNING_SAMPLES = 50  # warnings cited in the document per host; all stay in the store
UNREAD_SAMPLES = 20  # unread files named in the document per host
UNRECOGNISED = "unrecognised"  # the ``warnings.artifact`` of a structured file no artifact claimed
# what a warning says when evidence was not (fully) read; other warnings are notes (a byte replaced,
# a record kept without its time, a checksum mismatch with the records kept, a hard link, a link
# not followed). Matched caselessly anywhere in the message.
LOSS = ("skipped", "not read", "not parsed", "not opened", "not scanned", "not descended", "cannot open",
        "cannot read", "cannot list", "cannot stat", "unreadable", "undecodable", "cut off", "cut short",
        "is lost", "are lost", "stops being readable", "read error", "parser error", "not a readable",
        "only inventoried", "changed while read", "truncated", "refused", "scan error", "needs a password",
        "no event element", "consecutive parse errors", "without a header line",
        "without an event id and a time column", "not a cmdlet export after all")
# ... except these: a FIFO or device in a folder copy holds no evidence
NOT_LOSS = ("not a regular file",)

# Path fragments (lower case, '/' separated) of the Exchange web folders a web shell is dropped in.
WEB_FOLDERS = ("/owa/auth/", "/ecp/auth/", "/aspnet_client/", "/frontend/httpproxy/")
FRONTEND_SOURCES = ("httpproxy", "iis")
EVENT_LOG_ARTIFACTS = artifacts.EVENT_LOG_ARTIFACTS  # each artifact says whether it holds Windows events

_PATH = "lower(replace(path, '\\', '/'))"
_WEB = " OR ".join(f"contains('/' || {_PATH}, '{frag}')" for frag in WEB_FOLDERS)


def _quoted(values: tuple[str, ...]) -> str:
    """A SQL list of our own constant names (never evidence text)."""
    return "(" + ", ".join(literal(v) for v in values) + ")"


# the files that show an expected kind (the web folders; event log files, whose records triage
# counts without storing them), and the event sources whose rows show one (front-end and event logs)
FILE_CONDITIONS = {
    "web_folders": _WEB,
    "event_logs": f"artifact IN {_quoted(EVENT_LOG_ARTIFACTS)}",
}
EVENT_SOURCES = {"frontend_logs": FRONTEND_SOURCES, "event_logs": tuple(EVENT_LOG_ARTIFACTS)}
ROWS_REQUIRED = ("frontend_logs", "event_logs")  # seen only when rows were read from them


def loss_condition(column: str = "message") -> str:
    """SQL: the warning in ``column`` says evidence was not (fully) read (``LOSS``, ``NOT_LOSS``)."""
    def any_of(phrases: tuple[str, ...]) -> str:
        return " OR ".join(f"contains(lower({column}), {literal(p)})" for p in phrases)
    return f"(({any_of(LOSS)}) AND NOT ({any_of(NOT_LOSS)}))"

# per host and source: rows, first and last time. One pass over ``events`` for every host: with
# --index full each per-host query (counts, a source's first row, the time range) scanned all rows
EventStats = dict[str, dict[str | None, tuple[int, datetime | None, datetime | None]]]


def event_stats(con) -> EventStats:  # type: ignore[no-untyped-def]
    stats: EventStats = {}
    for host, source, rows, first, last in con.execute(
            "SELECT host, source, count(*), min(ts), max(ts) FROM events GROUP BY ALL").fetchall():
        stats.setdefault(host, {})[source] = (int(rows), first, last)
    return stats


@dataclass
class StoreCounts:
    """What ``host_coverage`` reads of the files, warnings and host facts, for every host at once
    (a handful of grouped queries, not ten per host: 0.035 of the 0.05 s of a four-host scan's
    serial tail, and a fleet of twenty hosts asked 200)."""

    files_by_artifact: dict[str, dict[str, int]] = field(default_factory=dict)
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # host -> (files, bytes)
    not_stored: dict[str, int] = field(default_factory=dict)  # EVTX records triage counted, not stored
    warnings: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    expected_files: dict[str, set[str]] = field(default_factory=dict)  # host -> FILE_CONDITIONS keys seen
    unrecognised: dict[str, int] = field(default_factory=dict)
    unread: dict[str, int] = field(default_factory=dict)  # host -> files not (fully) read
    unread_samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def store_counts(con, hosts: list[str] | None = None) -> StoreCounts:  # type: ignore[no-untyped-def]
    """``StoreCounts`` of ``hosts`` (None: every host), one query per kind of count."""
    where, params = ("host IN (SELECT unnest(?))", [hosts]) if hosts is not None else ("true", [])
    counts = StoreCounts()
    for host, artifact, n in con.execute(
            f"SELECT host, coalesce(artifact, 'other'), count(*) FROM files WHERE {where} GROUP BY ALL ORDER BY 2",
            params).fetchall():
        counts.files_by_artifact.setdefault(host, {})[artifact] = int(n)
    for host, n, size in con.execute(
            f"SELECT host, count(*), coalesce(sum(size), 0) FROM files WHERE {where} GROUP BY host", params).fetchall():
        counts.files[host] = (int(n), int(size))
    for host, n in con.execute(
            f"SELECT host, sum(CAST(value AS BIGINT)) FROM host_facts WHERE {where} AND fact = ? GROUP BY host",
            [*params, evtx.NOT_STORED]).fetchall():
        counts.not_stored[host] = int(n or 0)
    for host, n, strange in con.execute(
            f"SELECT host, count(*), count(DISTINCT path) FILTER (WHERE artifact = ?) FROM warnings WHERE {where} "
            "GROUP BY host", [UNRECOGNISED, *params]).fetchall():
        counts.warnings[host], counts.unrecognised[host] = int(n), int(strange)
    for host, artifact, path, line, offset, message in con.execute(
            f"SELECT host, artifact, path, line, \"offset\", message FROM warnings WHERE {where} "
            "QUALIFY row_number() OVER (PARTITION BY host ORDER BY path, line NULLS FIRST) <= ? "
            "ORDER BY host, path, line NULLS FIRST", [*params, WARNING_SAMPLES]).fetchall():
        counts.samples.setdefault(host, []).append(
            {"artifact": artifact, "path": path, "line": line, "offset": offset, "message": message})
    unread = f"(artifact = {literal(UNRECOGNISED)} OR {loss_condition()})"
    for host, n in con.execute(
            f"SELECT host, count(DISTINCT path) FROM warnings WHERE {where} AND {unread} GROUP BY host",
            params).fetchall():
        counts.unread[host] = int(n)
    for host, path, artifact, n, message in con.execute(
            f"SELECT host, path, min(artifact), count(*), min(message) FROM warnings WHERE {where} AND {unread} "
            "GROUP BY host, path QUALIFY row_number() OVER (PARTITION BY host ORDER BY path) <= ? "
            "ORDER BY host, path", [*params, UNREAD_SAMPLES]).fetchall():
        counts.unread_samples.setdefault(host, []).append(
            {"path": path, "artifact": artifact, "warnings": int(n), "message": message})
    for key, condition in FILE_CONDITIONS.items():
        for (host,) in con.execute(f"SELECT DISTINCT host FROM files WHERE {where} AND ({condition})",
                                   params).fetchall():
            counts.expected_files.setdefault(host, set()).add(key)
    return counts


def _missing(host: str, build_known: bool, stats: EventStats, counts: StoreCounts) -> tuple[str, ...]:
    """The ``EXPECTED_EVIDENCE`` keys not seen for ``host``, in their declared order."""
    sources = stats.get(host, {})
    seen_files = counts.expected_files.get(host, set())
    missing = []
    for key in EXPECTED_EVIDENCE:
        rows = any(sources.get(s, (0,))[0] for s in EVENT_SOURCES.get(key, ()))
        if key == "build":
            seen = build_known
        elif key in ROWS_REQUIRED:  # collected but nothing read (all unreadable) is not seen
            seen = rows or (key == "event_logs" and key in seen_files and bool(counts.not_stored.get(host)))
        else:
            seen = key in seen_files or rows
        if not seen:
            missing.append(key)
    return tuple(missing)


def host_coverage(con, host: str, build_known: bool = False,  # type: ignore[no-untyped-def]
                  stats: EventStats | None = None, counts: StoreCounts | None = None) -> Coverage:
    """Files, events (with the EVTX records triage counted but did not store), warnings (a sample),
    what was expected and not seen, and structured files nobody could read. ``stats``:
    ``event_stats`` of the store and ``counts`` its ``store_counts``, when the caller assesses
    several hosts."""
    stats = stats if stats is not None else event_stats(con)
    counts = counts if counts is not None else store_counts(con, [host])
    counted = {source: rows for source, (rows, _, _) in stats.get(host, {}).items()}
    if counts.not_stored.get(host):  # the EVTX records triage counted but did not store
        counted["evtx"] = counted.get("evtx", 0) + counts.not_stored[host]
    by_source = {s: n for s, n in sorted(counted.items(), key=lambda kv: (kv[0] is None, kv[0] or "")) if n > 0}
    files, size = counts.files.get(host, (0, 0))
    return Coverage(
        files=files, bytes=size, events=int(sum(by_source.values())),
        files_by_artifact={str(k): v for k, v in counts.files_by_artifact.get(host, {}).items()},
        events_by_source={str(k): int(v) for k, v in by_source.items()},
        warnings=counts.warnings.get(host, 0),
        warning_samples=tuple(counts.samples.get(host, ())),
        missing=_missing(host, build_known, stats, counts),
        unrecognised=counts.unrecognised.get(host, 0),
        unread=counts.unread.get(host, 0),
        unread_samples=tuple(counts.unread_samples.get(host, ())),
    )
