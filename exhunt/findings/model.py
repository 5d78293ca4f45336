"""Findings model: small frozen dataclasses, one canonical JSON document (versioned).

Everything is JSON-native (times are ISO-8601 UTC strings) so ``load(dump(doc)) == doc``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

DOCUMENT_SCHEMA_VERSION = "1.4"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.value]


SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def severity_rank(severity: str) -> int:
    """``Severity(severity).rank`` without an enum per call (sort keys over thousands of findings)."""
    return SEVERITY_RANK[severity]


class Verdict(StrEnum):
    COMPROMISED = "compromised"
    SUSPICIOUS = "suspicious"
    CLEAN = "clean"
    INCONCLUSIVE = "inconclusive"  # nothing found, but the evidence could not have shown a compromise
    NOT_ASSESSED = "not assessed"


# What a compromise leaves and a host's evidence is expected to hold (``Coverage.missing`` names
# the keys not seen). Only ``REQUIRED_FOR_CLEAN`` decides between clean and inconclusive: event logs
# are listed when absent, but many collections lack them and the web and log evidence still decides.
EXPECTED_EVIDENCE = {
    "frontend_logs": "Exchange front-end logs (HttpProxy or IIS)",
    "web_folders": "the Exchange web folders (owa\\auth, ecp\\auth, aspnet_client or FrontEnd\\HttpProxy)",
    "build": "a build source (ExSetup CLIXML, Exchange log headers or OWA paths)",
    "event_logs": "Windows event logs (EVTX or event exports)",
}
REQUIRED_FOR_CLEAN = ("frontend_logs", "web_folders", "build")


@dataclass(frozen=True)
class Hit:
    """One row a check matched, before grouping (detections make them, triage groups them)."""

    check: str
    host: str
    key: str  # grouping key: hits with the same (check, host, key, confidence) make one finding
    path: str
    source: str
    ts: datetime | None = None
    line: int | None = None
    record_id: int | None = None
    excerpt: str = ""
    confidence: str = "high"
    indicators: dict[str, str] = field(default_factory=dict)  # e.g. client_ip, user_agent, sha256


@dataclass(frozen=True)
class EvidenceRef:
    """One cited row: where it is, when, and a short excerpt (raw text: renderers escape it)."""

    path: str
    source: str
    line: int | None = None
    record_id: int | None = None
    ts: str | None = None
    excerpt: str = ""
    input: str | None = None  # manifest id(s) of the evidence input, comma-separated (manifest.json)


@dataclass(frozen=True)
class Finding:
    id: str
    check: str
    title: str
    severity: str
    confidence: str
    category: str  # compromise | exposure | hygiene
    host: str
    key: str
    description: str
    first_seen: str | None
    last_seen: str | None
    count: int
    cves: tuple[str, ...] = ()
    attack: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    remediation: tuple[str, ...] = ()
    evidence: tuple[EvidenceRef, ...] = ()
    indicators: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class CveStatus:
    cve: str
    name: str
    status: str  # vulnerable | fixed | unknown
    fixed_in: str | None = None
    update: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class HostBuild:
    build: str | None
    product: str | None = None
    cu: str | None = None
    update: str | None = None
    source: str | None = None
    confidence: str | None = None
    cves: tuple[CveStatus, ...] = ()
    install: str | None = None


@dataclass(frozen=True)
class Coverage:
    files: int = 0
    bytes: int = 0
    events: int = 0
    files_by_artifact: dict[str, int] = field(default_factory=dict)
    events_by_source: dict[str, int] = field(default_factory=dict)
    warnings: int = 0
    warning_samples: tuple[dict[str, Any], ...] = ()
    missing: tuple[str, ...] = ()  # EXPECTED_EVIDENCE keys not seen for this host
    unrecognised: int = 0  # files that look like structured data (JSON, CSV, XML) but no artifact read
    # evidence files not (fully) read: lines or records skipped, archives or members not opened, logs
    # no artifact reads, images inside the evidence; a sample of them (path, artifact, warnings, why)
    unread: int = 0
    unread_samples: tuple[dict[str, Any], ...] = ()

    @property
    def complete(self) -> bool:
        """Whether the evidence could have shown a compromise: what ``clean`` needs was seen, and
        every file of it was read (a log whose lines were skipped may have held the attack)."""
        return not self.unread and not any(key in self.missing for key in REQUIRED_FOR_CLEAN)


@dataclass(frozen=True)
class HostAssessment:
    host: str
    verdict: str
    evidence: tuple[str, ...] = ()
    build: HostBuild | None = None
    coverage: Coverage = field(default_factory=Coverage)
    first_seen: str | None = None
    last_seen: str | None = None


@dataclass(frozen=True)
class MailboxImpact:
    """One mailbox on one host that the intrusion read, exported, forwarded or opened to others."""

    host: str
    mailbox: str  # normalised: lower-case address, domain\\user, SID or as logged
    how: tuple[str, ...]
    first_seen: str | None
    last_seen: str | None
    sources: tuple[str, ...]  # attacker IPs, user agents, accounts, or what links the access to them
    requests: int
    items: int | None  # messages/items where the logs count them, else None
    bytes: int | None
    confidence: str  # high | medium | low
    evidence: tuple[EvidenceRef, ...] = ()
    as_logged: tuple[str, ...] = ()  # the forms the logs used for this mailbox
    actions: tuple[str, ...] = ()  # what to do, with the commands


@dataclass(frozen=True)
class AssessmentDocument:
    schema_version: str
    tool_version: str
    generated_at: str
    hosts: tuple[HostAssessment, ...]
    findings: tuple[Finding, ...]
    rules: dict[str, Any] = field(default_factory=dict)  # loaded / skipped rule packs with reasons
    inputs: tuple[dict[str, Any], ...] = ()  # evidence roots from the manifest: id, path, sha256, size
    impact: tuple[MailboxImpact, ...] = ()  # mailboxes exposed, by confidence then volume

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    @property
    def has_findings(self) -> bool:
        return any(f.category != "hygiene" for f in self.findings)


def plain(value: Any) -> Any:
    """``dataclasses.asdict`` without its deep copy of every value (the document is frozen)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {name: plain(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, list | tuple):
        return type(value)(map(plain, value)) if type(value) in (list, tuple) else [plain(v) for v in value]
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    return value


def shallow_dict(value: Any) -> dict[str, Any]:
    """A dataclass's fields, values as they are: orjson's ``default``, so the recursion runs in C
    (findings.json of 7,300 findings: 0.56 s through ``asdict``, 0.08 s). The model's dataclasses
    hold their fields in their own ``__dict__`` (frozen, no slots, no cached property): handed over
    as it is, no dict built per object (0.4 against 2.3 us a finding)."""
    own = getattr(value, "__dict__", None)
    if own is not None and len(own) == len(_field_names(type(value))):
        return own  # type: ignore[no-any-return]
    return {name: getattr(value, name) for name in _field_names(type(value))}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _build(cls: type, data: Any) -> Any:
    """Rebuild nested frozen dataclasses from their ``asdict`` form (lists become tuples)."""
    if data is None:
        return None
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        nested = {
            "evidence": EvidenceRef if cls in (Finding, MailboxImpact) else None,
            "cves": CveStatus if cls is HostBuild else None,
            "build": HostBuild if cls is HostAssessment else None,
            "coverage": Coverage if cls is HostAssessment else None,
            "hosts": HostAssessment if cls is AssessmentDocument else None,
            "findings": Finding if cls is AssessmentDocument else None,
            "impact": MailboxImpact if cls is AssessmentDocument else None,
        }.get(f.name)
        if nested is not None:
            value = tuple(_build(nested, v) for v in value) if isinstance(value, list) else _build(nested, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def document_from_dict(data: dict[str, Any]) -> AssessmentDocument:
    doc: AssessmentDocument = _build(AssessmentDocument, data)
    return doc
