"""The texts of which every Windows event some loaded detection could use holds at least one.

Gathered from the native checks' ``event_literals``, the cmdlets the mailbox impact reads, the
necessary literals of every Sigma rule that may select Windows events (values; for a rule whose
values are binary, such as an EventID and a SID, the names of the raw fields it compares; for a
rule with neither, the channel and provider names its logsource selects on) and the IP indicators (matched against
events' client IPs). The EVTX artifact parses only the chunks holding one of them
(``exhunt.artifacts.evtx_chunks``). Anything that needs every event (a check with
``event_literals = None``, a rule with neither literals nor a channel name) makes the plan
``None``: every chunk parsed, and the report says why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exhunt.detections.base import Check
from exhunt.detections.patterns import dedupe
from exhunt.detections.prefilter import INDEX_MODES  # one --index for text-log lines and EVTX chunks

__all__ = ["INDEX_MODES", "EventFilter", "build"]
# a logsource predicate selecting only rows of a kind Windows events never have (web server rows)
OTHER_KIND = re.compile(r"""\(?"kind" = '(?!process'|event')[a-z_]+'\)?""")


@dataclass
class EventFilter:
    """The literals (None: parse every chunk) and, for the document, what forced a full parse."""

    literals: tuple[str, ...] | None
    full_because: list[dict[str, str]] = field(default_factory=list)

    def report(self, index: str) -> dict[str, Any]:
        return {"index": index, "mode": "triage" if self.literals is not None else "full",
                "literals": len(self.literals or ()), "full_because": self.full_because[:50]}


def build(index: str, checks: Sequence[type[Check]], sigma_paths: Sequence[Path],
          ioc_paths: Sequence[Path] = ()) -> EventFilter:
    """The EVTX chunk filter of a scan; ``index="full"``: every chunk."""
    if index == "full":
        return EventFilter(None, [{"what": "--index full", "why": "every chunk parsed"}])
    texts: list[str] = []
    full: list[dict[str, str]] = []
    for check in checks:
        if check.event_literals is None:
            full.append({"what": f"check {check.id}", "why": "reads every Windows event"})
        else:
            texts.extend(check.event_literals)
    _sigma(sigma_paths, texts, full)
    from exhunt.detections.impact.admin import CMDLETS  # the mailbox impact reads these cmdlet events too

    texts.extend(CMDLETS)
    if ioc_paths:
        from exhunt.detections.iocs import load_iocs
        from exhunt.detections.iocs.model import ip_texts

        texts.extend(text for i in load_iocs(ioc_paths).of("ip") for text in ip_texts(i.value))
    if full:
        return EventFilter(None, full)
    return EventFilter(dedupe(texts))


def _sigma(paths: Sequence[Path], texts: list[str], full: list[dict[str, str]]) -> None:
    from exhunt.detections.sigma.summary import summary

    for rule in summary(paths).windows:
        texts.extend(rule.texts)
        if rule.full_because is not None:
            full.append(rule.full_because)
