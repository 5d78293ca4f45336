"""Content heuristics (obfuscation, hidden files, pages newer than the install) -> low findings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from exhunt.artifacts.pages import SERVER_PAGES
from exhunt.detections.base import Hit
from exhunt.detections.baselines import install_relative
from exhunt.detections.filehunt.context import FileHuntContext, file_hit, make_check

if TYPE_CHECKING:
    import duckdb

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


# Per host with at least 20 files under an Exchange install (``v15/``): its median modification
# time (the ``n // 2``-th of the sorted times, 0-based) and the files written NEWER_DAYS whole days or
# more after it. The comparison runs here, not per file in Python: a web root of 20,000 pages gave
# every row back as a datetime only to find none newer (50 ms of the scan's serial work).
NEWER_SQL = f"""
WITH f AS (
    SELECT host, path, mtime, sha256 FROM files WHERE mtime IS NOT NULL AND
    regexp_matches(lower(path), '(^|/)v15/') AND position('!' IN path) = 0
), ranked AS (
    SELECT host, mtime, row_number() OVER (PARTITION BY host ORDER BY mtime) - 1 AS i,
           count(*) OVER (PARTITION BY host) AS n FROM f
), medians AS (
    SELECT host, min(mtime) AS median FROM ranked WHERE n >= 20 AND i = n // 2 GROUP BY host
)
SELECT f.host, f.path, f.mtime, f.sha256, m.median FROM f JOIN medians m USING (host)
WHERE epoch_us(f.mtime) - epoch_us(m.median) >= {NEWER_DAYS + 1} * 86400000000
ORDER BY f.host, f.path
"""


def _newer_pages(con: duckdb.DuckDBPyConnection) -> Iterator[Hit]:
    """Script pages in an Exchange web folder written more than NEWER_DAYS days (whole days, as a
    ``timedelta``'s ``days``) after the median time of their host's install files."""
    for host, path, mtime, sha, median in con.execute(NEWER_SQL).fetchall():
        sub = install_relative(path) or ""
        if sub.endswith(SERVER_PAGES) and sub.startswith(("frontend/", "clientaccess/")):
            yield file_hit(NEWER_CHECK, host, path, sha, mtime,
                           f"{path} mtime {mtime:%Y-%m-%d}, install median {median:%Y-%m-%d}", "files", "medium")
