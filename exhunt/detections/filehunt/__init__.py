"""The file-hunting engine: YARA matches, IOC lists, known-good baselines and content heuristics.

Runs over a finished store (``matches`` written by the workers, ``files``, ``events``,
``host_facts``), so it re-runs without re-parsing. Registered in ``runner.ENGINES``; its rules
report (YARA packs loaded/skipped, IOC lists loaded/skipped, baselines) lands in
``document.rules['yara']``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exhunt.detections.filehunt.baseline_hits import baseline_findings
from exhunt.detections.filehunt.context import FileHuntContext
from exhunt.detections.filehunt.heuristic_hits import heuristic_findings
from exhunt.detections.filehunt.ioc_hits import event_ioc_findings, file_ioc_findings
from exhunt.detections.filehunt.yara_hits import yara_findings
from exhunt.detections.iocs import IocSet, load_iocs
from exhunt.detections.yara import CompiledRules, RuleSource, load_rules
from exhunt.findings.model import Finding

if TYPE_CHECKING:
    import duckdb


def scan_rules(
    yara_paths: Sequence[Path], ioc_paths: Sequence[Path] = (), iocs: IocSet | None = None
) -> CompiledRules:
    """The rules every worker runs: exhunt's pack, user packs and YARA rules found in IOC lists."""
    if iocs is None:
        iocs = load_iocs(ioc_paths) if ioc_paths else IocSet()
    extra = [
        RuleSource(origin, f"iocs_{n}", text.encode()) for n, (origin, text) in enumerate(iocs.yara_rules)
    ]
    return load_rules(yara_paths, extra=extra)


def file_engine(
    con: duckdb.DuckDBPyConnection, context: Any, hit_rows: list[dict]
) -> tuple[list[Finding], dict]:
    ctx = FileHuntContext(con, hit_rows)
    iocs = load_iocs(context.iocs) if context.iocs else IocSet()
    report: dict[str, Any] = {"rules": scan_rules(context.yara, iocs=iocs).report, "iocs": iocs.report()}
    yara_findings(ctx)
    file_ioc_findings(ctx, iocs)
    event_ioc_findings(ctx, iocs)
    report["baselines"] = baseline_findings(ctx, context.baselines)
    heuristic_findings(ctx)
    report["not_yara_scanned"] = _one(
        con,
        "SELECT count(*) FROM warnings WHERE artifact = 'yara' "
        "AND message LIKE 'larger than the YARA size limit%'",
    )
    report["yara_errors"] = _one(
        con, "SELECT count(*) FROM warnings WHERE artifact = 'yara' AND message LIKE 'YARA scan failed%'"
    )
    return ctx.findings, report


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


__all__ = ["FileHuntContext", "file_engine", "heuristic_findings", "scan_rules"]
