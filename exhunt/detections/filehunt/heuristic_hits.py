"""Content heuristics (obfuscation, hidden files, pages newer than the install) -> low findings."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import duckdb

from exhunt.artifacts.pages import SERVER_PAGES
from exhunt.detections.base import Hit
from exhunt.detections.baselines import install_relative
from exhunt.detections.filehunt.context import FileHuntContext, file_hit, make_check

NEWER_DAYS = 30


OBFUSCATED_CHECK = make_check(
    "heuristic.obfuscated_page",
    "Obfuscated or high-entropy script page",
    "low",
    "A server-side script page has high entropy, long base64 runs or dense escapes/"
    "concatenations: common in packed web shells, rare in hand-written pages.",
    ("T1027",),
)
HIDDEN_CHECK = make_check(
    "heuristic.hidden_file",
    "Hidden or system attribute on a file in the evidence",
    "low",
    "The file carries the hidden/system attribute (kept by this evidence).",
    ("T1564.001",),
)
NEWER_CHECK = make_check(
    "heuristic.newer_page",
    "Script page much newer than the Exchange install around it",
    "low",
    f"A script page in an Exchange web folder was written more than {NEWER_DAYS} days after "
    "most files of the install (median modification time): dropped later, not installed.",
    ("T1505.003",),
)


def heuristic_findings(ctx: FileHuntContext) -> None:
    rows = ctx.con.execute(
        "SELECT m.host, m.path, m.rule, m.meta, m.sha256, f.mtime FROM matches m "
        "LEFT JOIN files f ON f.host = m.host AND f.path = m.path WHERE m.engine = 'heuristic'"
    ).fetchall()
    for rule, check in (
        ("obfuscated_script_page", OBFUSCATED_CHECK),
        ("hidden_or_system_file", HIDDEN_CHECK),
    ):
        ctx.emit(
            check,
            (
                file_hit(check, h, p, sha, mt, f"{rule} {meta}", "heuristic", "medium")
                for h, p, r, meta, sha, mt in rows
                if r == rule
            ),
        )
    ctx.emit(NEWER_CHECK, _newer_pages(ctx.con))


def _newer_pages(con: duckdb.DuckDBPyConnection) -> Iterator[Hit]:
    rows = con.execute(
        "SELECT host, path, mtime, sha256 FROM files WHERE mtime IS NOT NULL AND "
        "regexp_matches(lower(path), '(^|/)v15/') AND position('!' IN path) = 0"
    ).fetchall()
    by_host: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        by_host[row[0]].append(row)
    for host, items in by_host.items():
        if len(items) < 20:
            continue
        times = sorted(r[2] for r in items)
        median = times[len(times) // 2]
        for _h, path, mtime, sha in items:
            sub = install_relative(path) or ""
            if (
                sub.endswith(SERVER_PAGES)
                and sub.startswith(("frontend/", "clientaccess/"))
                and (mtime - median).days > NEWER_DAYS
            ):
                yield file_hit(NEWER_CHECK, host, path, sha, mtime,
                               f"{path} mtime {mtime:%Y-%m-%d}, install median {median:%Y-%m-%d}", "files", "medium")
