"""Known-good baseline deviations -> low-severity findings, raised when YARA or an IOC agrees."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exhunt.detections.baselines import deviations, load_baselines
from exhunt.detections.builds import best_build_fact
from exhunt.detections.filehunt.context import FileHuntContext, file_hit, make_check

MODIFIED_CHECK = make_check(
    "baseline.modified",
    "Exchange web file differs from the known-good baseline",
    "low",
    "A file in an Exchange web folder has a path known to the CSS-Exchange baseline of this "
    "build but another hash: an edited legitimate page (or an unlisted update).",
    ("T1505.003",),
)
UNKNOWN_CHECK = make_check(
    "baseline.unknown",
    "Script page absent from the known-good baseline",
    "low",
    "A script page in an Exchange web folder is not in the CSS-Exchange baseline of this build.",
    ("T1505.003",),
)


def baseline_findings(ctx: FileHuntContext, paths: Sequence[Path]) -> dict[str, Any]:
    if not paths:
        return {"files": []}
    baselines = load_baselines(paths)
    report = baselines.report()
    report["hosts"] = {}
    for (host,) in ctx.con.execute("SELECT DISTINCT host FROM files ORDER BY 1").fetchall():
        fact = best_build_fact(ctx.con, host)
        build = fact[0] if fact else None
        baseline = baselines.for_build(build)
        if baseline is None:
            report["hosts"][host] = f"no baseline for build {build or 'unknown'}: not compared"
            continue
        rows = ctx.con.execute("SELECT path, sha256, mtime FROM files WHERE host = ?", [host]).fetchall()
        mtimes = {p: m for p, _s, m in rows}
        sha = {p: s for p, s, _m in rows}
        found = deviations([(p, s) for p, s, _m in rows], baseline)
        report["hosts"][host] = f"build {build}: {len(found)} deviations"
        for kind, check in (("modified", MODIFIED_CHECK), ("unknown", UNKNOWN_CHECK)):
            ctx.emit(
                check,
                (
                    file_hit(check, host, path, sha[path], mtimes[path],
                             f"{sub} sha256={sha[path]} build={build}"
                             f"{' + YARA/IOC hit on the same file' if (host, path) in ctx.flagged else ''}",
                             "baseline", "high" if (host, path) in ctx.flagged else "medium")
                    for path, k, sub in found
                    if k == kind
                ),
            )
    _raise_corroborated(ctx)
    return report


def _raise_corroborated(ctx: FileHuntContext) -> None:
    """Low severity unless other signals agree: a baseline deviation with a YARA/IOC hit becomes high."""
    from dataclasses import replace

    for n, f in enumerate(ctx.findings):
        if f.check.startswith("baseline.") and f.confidence == "high":
            ctx.findings[n] = replace(f, severity="high")
