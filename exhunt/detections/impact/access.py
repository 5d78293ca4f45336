"""One row of evidence that a mailbox was read, exported, forwarded or opened to someone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from exhunt.detections.base import EXCERPT_CHARS
from exhunt.findings.model import EvidenceRef
from exhunt.findings.triage import iso

CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2}
# The columns every impact query selects first, and the evidence reference built from them
REF_COLUMNS = "host, path, source, line, record_id, ts"


@dataclass
class Access:
    host: str
    mailbox: str  # as logged
    how: str
    confidence: str
    ref: EvidenceRef
    ts: datetime | None
    sources: tuple[str, ...] = ()
    items: int | None = None
    bytes: int | None = None
    remedy: tuple[str, str] | None = None  # (kind, detail) for the remediation step
    client_ip: str | None = None
    frontend: bool = False  # an HttpProxy row: the back-end EWS row of the same request may exist too
    targets: tuple[str, ...] = field(default_factory=tuple)  # forwarding addresses
    actor: str | None = None  # the account that ran the cmdlet


def ref(row: dict[str, Any], excerpt: str) -> EvidenceRef:
    return EvidenceRef(row["path"], row["source"] or "", row.get("line"), row.get("record_id"),
                       iso(row.get("ts")), excerpt[:EXCERPT_CHARS])


def to_int(value: Any) -> int | None:
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() and len(text) <= 15 else None


def rows(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
