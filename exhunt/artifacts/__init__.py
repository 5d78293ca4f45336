"""Artifact families: one module each, tried in this explicit order (first claim wins)."""

from __future__ import annotations

from typing import Any

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.clixml import CliXml
from exhunt.artifacts.cmdlet_exports import CmdletExport
from exhunt.artifacts.encoding import text_head
from exhunt.artifacts.eventcsv import EventCsv
from exhunt.artifacts.evtx import EvtxLog
from exhunt.artifacts.exchange_logs import ExchangeLog
from exhunt.artifacts.iis import IisLog
from exhunt.artifacts.mailbox_audit import MailboxAuditExport
from exhunt.artifacts.ndjson import NdjsonEvents
from exhunt.artifacts.oabgenerator import OabGeneratorText
from exhunt.artifacts.webroots import WebPage

ARTIFACTS: tuple[type[Artifact], ...] = (
    EvtxLog, ExchangeLog, IisLog, OabGeneratorText, NdjsonEvents, EventCsv, MailboxAuditExport, CmdletExport,
    CliXml, WebPage,
)


# What the rest of the pipeline asks about artifacts, derived from the artifacts themselves.
LOG_ARTIFACTS = frozenset(a.name for a in ARTIFACTS if a.is_log)
EVENT_LOG_ARTIFACTS = tuple(a.name for a in ARTIFACTS if a.is_event_log)
RANGE_ARTIFACTS: dict[str, tuple[Any, Any]] = {  # (artifact class, dialect factory)
    a.name: (a, a.range_dialect) for a in ARTIFACTS if a.range_dialect is not None}


def choose(rel_lower: str, head: bytes) -> type[Artifact] | None:
    """The first artifact that claims the file; a UTF-16 head is also shown as its UTF-8 transcoding."""
    text = text_head(head)
    for artifact in ARTIFACTS:
        if artifact.claims(rel_lower, head) or (text is not head and artifact.claims(rel_lower, text)):
            return artifact
    return None


__all__ = ["ARTIFACTS", "EVENT_LOG_ARTIFACTS", "LOG_ARTIFACTS", "RANGE_ARTIFACTS", "Artifact", "ParseContext", "choose"]
