"""Artifact families: one module each, tried in this explicit order (first claim wins)."""

from __future__ import annotations

import functools
import re
from typing import Any

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.clixml import CliXml
from exhunt.artifacts.cmdlet_exports import CmdletExport
from exhunt.artifacts.encoding import BOMS, text_head
from exhunt.artifacts.eventcsv import EventCsv
from exhunt.artifacts.evtx import EvtxLog
from exhunt.artifacts.exchange_logs import ExchangeLog
from exhunt.artifacts.headmarks import Matcher, compile_marks
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


# One look at the head before the artifacts' own sniffs (web roots are tens of thousands of pages that
# no log or export sniff can claim): the marks and start patterns the content-sniffing artifacts state.
# An artifact that states neither is asked about every file, so a missing mark costs time, never a file.
ALWAYS_ASKED = tuple(a for a in ARTIFACTS if not a.head_marks and not a.head_start)
HEAD_MARKS = tuple(dict.fromkeys(m for a in ARTIFACTS for m in a.head_marks))
UTF16_BOMS = tuple(bom for bom, _ in BOMS)
HEAD_START = re.compile(b"|".join(b"(?:%s)" % a.head_start for a in ARTIFACTS if a.head_start))


def may_be_content_claimed(head: bytes) -> bool:
    """False only when no artifact can claim this head by its content (see ``Artifact.head_marks``)."""
    # binary or UTF-16 (without a NUL byte, only a BOM makes the head UTF-16): every sniff decides
    if b"\x00" in head or head.startswith(UTF16_BOMS):
        return True
    matcher = _compiled_marks()
    return matcher(head) if matcher is not None else marked_in_python(head)


@functools.cache
def _compiled_marks() -> Matcher | None:
    """Built on first use (in a worker, not in every process that imports this module)."""
    return compile_marks(HEAD_MARKS, HEAD_START.pattern)


def marked_in_python(head: bytes) -> bool:
    """What the head marks say, in Python (the reference ``headmarks`` must agree with)."""
    low = head.lower()
    return any(mark in low for mark in HEAD_MARKS) or HEAD_START.match(low) is not None


def choose(rel_lower: str, head: bytes) -> type[Artifact] | None:
    """The first artifact that claims the file; a UTF-16 head is also shown as its UTF-8 transcoding."""
    if not may_be_content_claimed(head):
        return next((a for a in ALWAYS_ASKED if a.claims(rel_lower, head)), None)
    return choose_by_sniffing(rel_lower, head)


def choose_by_sniffing(rel_lower: str, head: bytes) -> type[Artifact] | None:
    """``choose`` asking every artifact in turn: the reference the head marks must agree with."""
    text = text_head(head)
    for artifact in ARTIFACTS:
        if artifact.claims(rel_lower, head) or (text is not head and artifact.claims(rel_lower, text)):
            return artifact
    return None


__all__ = ["ARTIFACTS", "EVENT_LOG_ARTIFACTS", "LOG_ARTIFACTS", "RANGE_ARTIFACTS", "Artifact", "ParseContext", "choose"]
