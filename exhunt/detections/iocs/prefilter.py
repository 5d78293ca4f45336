"""IOC values that log rows are matched on (client IPs, user agents, domains) as triage prefilter
patterns: a line holding one of them is parsed and stored, so the IOC findings stay exact."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from exhunt.detections.iocs import load_iocs
from exhunt.detections.iocs.model import ip_texts, url_body
from exhunt.detections.patterns import literal, url_text

if TYPE_CHECKING:
    from exhunt.detections.prefilter import Prefilter


def user_agent_pattern(value: str) -> str:
    """A user agent as IIS (``+`` for spaces) and HttpProxy (CSV, quotes doubled) log it."""
    parts = [re.escape(c) if c not in ' "' else ("[ +]" if c == " " else '"{1,2}') for c in value]
    return "".join(parts)


def from_iocs(prefilter: Prefilter, paths: Sequence[Path]) -> None:
    iocs = load_iocs(paths)
    origin = "iocs " + ", ".join(p.name for p in paths)
    prefilter.add(origin, [literal(text) for i in iocs.of("ip") for text in ip_texts(i.value)])
    prefilter.add(origin, [user_agent_pattern(i.value.replace("+", " ").strip()) for i in iocs.of("user_agent")
                           if i.value.strip()])
    prefilter.add(origin, [url_text(i.value) for i in iocs.of("domain")])
    prefilter.add(origin, [url_text(text) for i in iocs.of("url") if (text := url_body(i.value))])
