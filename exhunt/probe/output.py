"""Probe results as JSON lines (one per target, written the moment it is complete), resume from
them, and turn them into the canonical findings document the reports render.

A result line is self-contained (target, fingerprint, mapped build, every check's verdict and
reason, request/response evidence), so an interrupted sweep loses at most the targets in flight:
``--resume`` keeps every complete line, cuts a torn last line, and skips those targets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from exhunt import __version__
from exhunt.errors import UsageError
from exhunt.findings.model import (
    DOCUMENT_SCHEMA_VERSION,
    AssessmentDocument,
    CveStatus,
    EvidenceRef,
    Finding,
    HostAssessment,
    HostBuild,
    Verdict,
)
from exhunt.findings.triage import finding_id, sort_findings
from exhunt.probe.checks import CHECKS
from exhunt.probe.wire import VULNERABLE
from exhunt.utctime import iso_utc

BUILD_CHECK = "probe.build_exposure"
REPORT_CVE_LIMIT = 40


def load_results(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Complete result lines of an earlier run, and the byte offset just after the last good one."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    except OSError as exc:
        raise UsageError(f"cannot read {path} to resume: {exc}") from exc
    results: list[dict[str, Any]] = []
    good_end = 0
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            break  # torn last line: the run was interrupted mid-write
        line = data[pos:end].strip()
        pos = end + 1
        if not line:
            good_end = pos
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            break
        if not isinstance(record, dict) or "target" not in record:
            break
        results.append(record)
        good_end = pos
    return results, good_end


class JsonlWriter:
    """Append one JSON object per line and flush it, so other tools can ``tail -f`` the sweep."""

    def __init__(self, path: Path, resume_from: int | None = None) -> None:
        self.path = path
        self._fh: IO[bytes] | None = None
        self._resume_from = resume_from

    def __enter__(self) -> JsonlWriter:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._resume_from is None:
                self._fh = self.path.open("wb")
            else:
                self._fh = self.path.open("r+b" if self.path.exists() else "wb")
                self._fh.truncate(self._resume_from)
                self._fh.seek(self._resume_from)
        except OSError as exc:
            raise UsageError(f"cannot write results to {self.path}: {exc}") from exc
        return self

    def write(self, record: dict[str, Any]) -> None:
        assert self._fh is not None
        self._fh.write(orjson.dumps(record) + b"\n")
        self._fh.flush()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fh is not None:
            self._fh.close()


def document(results: Iterable[dict[str, Any]], generated_at: str | None = None) -> AssessmentDocument:
    """Hosts = targets with their mapped build; findings = each vulnerable check (and build exposure)."""
    meta = {c.id: c for c in CHECKS}
    hosts: list[HostAssessment] = []
    findings: list[Finding] = []
    rows: list[dict[str, str]] = []
    tally: dict[str, Counter[str]] = {}
    reachable = exchange = 0
    builds: dict[int, HostBuild | None] = {}  # by id: a live run's results share one dict per build
    for r in sorted(results, key=lambda x: x["target"]):
        target = r["target"]
        data = r.get("build")
        if id(data) not in builds:
            builds[id(data)] = _host_build(data)
        build = builds[id(data)]
        reachable += bool(r.get("reachable"))
        exchange += bool(r.get("exchange"))
        hosts.append(HostAssessment(host=target, verdict=Verdict.NOT_ASSESSED.value,
                                    evidence=(f"probe {target}",), build=build,
                                    first_seen=r.get("started"), last_seen=r.get("started")))
        for c in r.get("checks", []):
            tally.setdefault(c["check"], Counter())[c["verdict"]] += 1
            rows.append({"target": target, "check": c["check"], "verdict": c["verdict"],
                         "reason": c["reason"]})
            check = meta.get(c["check"])
            if c["verdict"] == VULNERABLE and check is not None:
                findings.append(_finding(check.id, check.title, check.severity, "high", target, r,
                                         c["reason"], check.description, check.cves, check.references,
                                         check.remediation, c.get("replies", [])))
        if build is not None and any(s.status == "vulnerable" for s in build.cves):
            findings.append(_build_finding(target, r, build))
    probe_summary = {
        "checks": [{"id": c.id, "title": c.title, "cves": list(c.cves)} for c in CHECKS],
        "targets": len(hosts), "reachable": reachable, "exchange": exchange,
        "verdicts": {k: dict(sorted(v.items())) for k, v in sorted(tally.items())},
        "results": rows,
    }
    return AssessmentDocument(
        schema_version=DOCUMENT_SCHEMA_VERSION, tool_version=__version__,
        generated_at=generated_at or iso_utc(datetime.now(UTC)),
        hosts=tuple(hosts), findings=tuple(sort_findings(findings)), rules={"probe": probe_summary},
    )


def _host_build(data: dict[str, Any] | None) -> HostBuild | None:
    if not data:
        return None
    fields = {k: v for k, v in data.items() if k in HostBuild.__dataclass_fields__ and k != "cves"}
    return HostBuild(**fields, cves=tuple(CveStatus(**c) for c in data.get("cves") or ()))


def _finding(check: str, title: str, severity: str, confidence: str, target: str, r: dict[str, Any],
             reason: str, description: str, cves: Iterable[str], references: Iterable[str],
             remediation: Iterable[str], replies: Iterable[dict[str, Any]]) -> Finding:
    started = r.get("started")
    evidence = tuple(EvidenceRef(path=target, source="probe", ts=started, excerpt=rep["evidence"])
                     for rep in replies)
    return Finding(
        id=finding_id(check, target, check, confidence), check=check, title=title, severity=severity,
        confidence=confidence, category="exposure", host=target, key=check, description=description,
        first_seen=started, last_seen=started, count=1, cves=tuple(cves), references=tuple(references),
        remediation=tuple(remediation), evidence=evidence, indicators={"reason": [reason]},
    )


def _build_finding(target: str, r: dict[str, Any], build: HostBuild) -> Finding:
    vulnerable = [s for s in build.cves if s.status == "vulnerable"]
    names = sorted({s.name for s in vulnerable if s.name})
    label = " ".join(x for x in (build.product, build.cu, build.update) if x) or build.build or "?"
    reason = (f"{label} ({build.build}, {build.confidence} confidence, from {build.source}) lacks fixes for "
              + ", ".join(s.cve for s in vulnerable[:REPORT_CVE_LIMIT]))
    severity = "critical" if {"ProxyLogon", "ProxyShell"} & set(names) else "high"
    return _finding(
        BUILD_CHECK,
        "Exchange build lacks fixes for exploited CVEs" + (f" ({', '.join(names)})" if names else ""),
        severity, build.confidence or "medium", target, r, reason,
        "The build the server discloses to anonymous clients is below the first fixed build of its CU line "
        "for CVEs exploited in the wild (bundled build table).",
        [s.cve for s in vulnerable], (), ("Install the latest CU and SU for this Exchange version.",),
        r.get("fingerprint", {}).get("replies", []),
    )
