"""Hits -> findings (grouped, evidence capped but every row kept in the store) -> host verdicts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from exhunt import utctime
from exhunt.findings.model import SEVERITY_RANK, EvidenceRef, Finding, Hit, Severity, Verdict, severity_rank
from exhunt.utctime import iso_utc as iso  # the name every caller of findings uses

MAX_EVIDENCE = 25
MAX_INDICATOR_VALUES = 50
CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2}


class CheckInfo(Protocol):
    """What grouping needs of a check (``exhunt.detections.base.Check`` has it): findings stay a leaf
    that detections use, not the other way round."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def cves(self) -> tuple[str, ...]: ...
    @property
    def attack(self) -> tuple[str, ...]: ...
    @property
    def references(self) -> tuple[str, ...]: ...
    @property
    def remediation(self) -> tuple[str, ...]: ...


    def refine(self, finding: Finding) -> Finding: ...


def finding_id(check: str, host: str, key: str, confidence: str) -> str:
    digest = hashlib.sha256(f"{check}\x00{host}\x00{key}\x00{confidence}".encode()).hexdigest()
    return f"{check}:{digest[:12]}"


def evidence_order(e: EvidenceRef) -> tuple[str, str, int, int, str, str]:
    return (utctime.order(e.ts), e.path, e.line or 0, e.record_id or 0, e.source or "", e.excerpt or "")


class _Group:
    """Per finding: counts, and the first MAX_EVIDENCE rows (in evidence order) and the smallest
    MAX_INDICATOR_VALUES values per indicator, whatever order the query returned its rows in
    (DuckDB's parallel joins do not keep one), so a finding is the same on every run. Slots, no
    dataclass: one per finding, thousands for a web root's pages."""

    __slots__ = ("id", "hits", "first", "last", "first_iso", "last_iso", "evidence", "indicators")

    def __init__(self, finding_id: str) -> None:
        self.id = finding_id
        self.hits = 0
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.first_iso: str | None = None  # ``iso`` of first and last, kept from their hits' own (once per hit)
        self.last_iso: str | None = None
        self.evidence: list[EvidenceRef] = []
        self.indicators: dict[str, set[str]] = {}

    def add_evidence(self, ref: EvidenceRef) -> None:
        self.evidence.append(ref)
        if len(self.evidence) >= 4 * MAX_EVIDENCE:  # keep memory bounded: the smallest are exact
            self.evidence = sorted(self.evidence, key=evidence_order)[:MAX_EVIDENCE]


# A hit as grouping reads it: host, key, confidence, path, source, ts, line, record_id, excerpt,
# indicators. ``SqlCheck`` makes these straight from its query's rows (no ``Hit`` per row).
HitRow = tuple[str, str, str, str, str, "datetime | None", "int | None", "int | None", str, dict[str, str]]


def hit_row(hit: Hit) -> HitRow:
    return (hit.host, hit.key, hit.confidence, hit.path, hit.source, hit.ts, hit.line, hit.record_id, hit.excerpt,
            hit.indicators)


def group_hits(check: CheckInfo, hits: Iterable[Hit], rows_out: list[dict] | None = None) -> list[Finding]:
    """One finding per (host, key, confidence); every hit also goes to ``rows_out`` for the store."""
    return group_rows(check, map(hit_row, hits), rows_out)


def group_rows(check: CheckInfo, rows: Iterable[HitRow], rows_out: list[dict] | None = None) -> list[Finding]:
    """``group_hits`` over hits as ``HitRow`` tuples. Names are bound once and the findings and
    their references made without a keyword ``__init__`` each: a web root's checks group one hit
    per page, thousands (29 -> ~12 us a page of the placement check, its query's fetch included).
    When no two rows share a finding (a check with one row per page), each row is its finding,
    made directly."""
    rows = rows if isinstance(rows, list) else list(rows)
    if len({(r[0], r[1], r[2]) for r in rows}) == len(rows):
        return _one_row_findings(check, rows, rows_out)
    groups: dict[tuple[str, str, str], _Group] = {}
    get, show, check_id = groups.get, iso, check.id
    keep_row = rows_out.append if rows_out is not None else None
    for host, key, confidence, path, source, ts, line, record_id, excerpt, indicators in rows:
        gkey = (host, key, confidence)
        group = get(gkey)
        if group is None:
            group = groups[gkey] = _Group(finding_id(check_id, host, key, confidence))
        group.hits += 1
        shown = show(ts)
        if ts is not None:
            if group.first is None or ts < group.first:
                group.first, group.first_iso = ts, shown
            if group.last is None or ts > group.last:
                group.last, group.last_iso = ts, shown
        group.add_evidence(evidence_ref(path, source, line, record_id, shown, excerpt))
        if indicators:
            held = group.indicators
            for name, value in indicators.items():
                values = held.get(name)
                if values is None:
                    held[name] = {value}
                    continue
                values.add(value)
                if len(values) >= 4 * MAX_INDICATOR_VALUES:  # memory bounded: the smallest are exact
                    held[name] = set(sorted(values)[:MAX_INDICATOR_VALUES])
        if keep_row is not None:
            keep_row({"finding_id": group.id, "host": host, "path": path, "source": source,
                      "line": line, "record_id": record_id, "ts": ts, "excerpt": excerpt})
    make = _FindingMaker(check)
    findings = []
    for (host, key, confidence), group in groups.items():
        evidence = group.evidence if len(group.evidence) == 1 else sorted(group.evidence, key=evidence_order)
        held = group.indicators
        findings.append(make(group.id, host, key, confidence, group.first_iso, group.last_iso, group.hits,
                             tuple(evidence[:MAX_EVIDENCE]),
                             {k: sorted(held[k])[:MAX_INDICATOR_VALUES] for k in sorted(held)}))
    return findings


class _FindingMaker:
    """A check's findings made without a keyword ``__init__`` each, its own fields read once per
    check (both grouping paths make thousands for a web root's pages)."""

    def __init__(self, check: CheckInfo) -> None:
        self.check, self.refine = check, check.refine
        self.cves, self.attack = tuple(check.cves), tuple(check.attack)
        self.references, self.remediation = tuple(check.references), tuple(check.remediation)
        self.severities = {c: _severity_for(check.severity, c) for c in CONFIDENCE_RANK}

    def __call__(self, fid: str, host: str, key: str, confidence: str, first: str | None, last: str | None,
                 count: int, evidence: tuple[EvidenceRef, ...], indicators: dict[str, list[str]]) -> Finding:
        check = self.check
        finding = object.__new__(Finding)
        finding.__dict__.update(  # every field of ``Finding`` in its order, as its ``__init__`` sets them
            id=fid, check=check.id, title=check.title, severity=self.severities.get(confidence, check.severity),
            confidence=confidence, category=check.category, host=host, key=key, description=check.description,
            first_seen=first, last_seen=last, count=count, cves=self.cves, attack=self.attack,
            references=self.references, remediation=self.remediation, evidence=evidence, indicators=indicators)
        return self.refine(finding)


def _one_row_findings(check: CheckInfo, rows: list[HitRow], rows_out: list[dict] | None) -> list[Finding]:
    """``group_rows`` where every row is its own finding: what the general loop makes of a group of
    one (its time first and last seen, its row the evidence, its indicators one value each), with no
    group object per row (the placement check's 7,176 one-page findings: 0.10 -> 0.08 s, its query
    and fetch included)."""
    make, check_id = _FindingMaker(check), check.id
    findings = []
    keep_row, show = (rows_out.append if rows_out is not None else None), iso
    for host, key, confidence, path, source, ts, line, record_id, excerpt, indicators in rows:
        shown = show(ts)
        fid = finding_id(check_id, host, key, confidence)
        findings.append(make(fid, host, key, confidence, shown, shown, 1,
                             (evidence_ref(path, source, line, record_id, shown, excerpt),),
                             {k: [indicators[k]] for k in sorted(indicators)} if indicators else {}))
        if keep_row is not None:
            keep_row({"finding_id": fid, "host": host, "path": path, "source": source,
                      "line": line, "record_id": record_id, "ts": ts, "excerpt": excerpt})
    return findings


def evidence_ref(path: str, source: str, line: int | None, record_id: int | None, ts: str | None,
                 excerpt: str) -> EvidenceRef:
    """``EvidenceRef(path, source, line, record_id, ts, excerpt)`` without its keyword ``__init__``."""
    ref = object.__new__(EvidenceRef)
    ref.__dict__.update(path=path, source=source, line=line, record_id=record_id, ts=ts, excerpt=excerpt,
                        input=None)
    return ref


def _severity_for(severity: str, confidence: str) -> str:
    """Low-confidence hits are reported one severity step lower, never hidden."""
    if confidence != "low":
        return severity
    order = [s.value for s in Severity]
    return order[min(order.index(severity) + 1, len(order) - 1)]


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-severity_rank(f.severity), -CONFIDENCE_RANK.get(f.confidence, 0),
                                           f.host, utctime.order(f.first_seen), f.check, f.key))


def verdict(findings: Iterable[Finding], assessed: bool, complete: bool = True) -> Verdict:
    """Compromised: a high/critical compromise finding of high confidence. Exposure alone is not.
    Clean only when the evidence was ``complete`` (it could have shown a compromise: front-end
    logs, web folders, a build); with nothing found in less than that, inconclusive."""
    if not assessed:
        return Verdict.NOT_ASSESSED
    suspicious = False
    for f in findings:
        if f.category != "compromise":
            continue
        rank = severity_rank(f.severity)
        if rank >= SEVERITY_RANK["high"] and f.confidence == "high":
            return Verdict.COMPROMISED
        if rank >= SEVERITY_RANK["low"]:
            suspicious = True
    if suspicious:
        return Verdict.SUSPICIOUS
    return Verdict.CLEAN if complete else Verdict.INCONCLUSIVE
