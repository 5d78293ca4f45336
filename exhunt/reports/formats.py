"""The report formats ``exhunt report`` knows: name, default file name, renderer, what it is for.

Every renderer is ``render(case, out)`` writing bytes to a binary stream, so large timelines
stream to a file or to stdout without being held in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from exhunt.reports import csv_timeline, html, impact_csv, json_doc, markdown, stix, timesketch
from exhunt.reports.case import Case


@dataclass(frozen=True)
class Format:
    name: str
    filename: str
    render: Callable[[Case, BinaryIO], None]
    help: str
    uses_all_events: bool = False


FORMATS: tuple[Format, ...] = (
    Format("html", "report.html", html.render, "self-contained HTML report with timeline chart"),
    Format("md", "report.md", markdown.render, "Markdown summary for tickets and e-mail"),
    Format("json", "findings.json", json_doc.render, "the canonical findings document (versioned schema)"),
    Format("csv", "timeline.csv", csv_timeline.render, "timeline CSV of cited rows", uses_all_events=True),
    Format("timesketch", "timeline.jsonl", timesketch.render, "Timesketch JSONL of cited rows",
           uses_all_events=True),
    Format("stix", "indicators.stix.json", stix.render, "STIX 2.1 bundle of indicators and observed data"),
    Format("impact-csv", "impact.csv", impact_csv.render, "mailboxes exposed, one row per mailbox (notification list)"),
)


def get(name: str) -> Format:
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise KeyError(name)
