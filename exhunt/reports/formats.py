"""The report formats ``exhunt report`` knows: name, default file name, renderer, what it is for.

Every renderer is ``render(case, out)`` writing bytes to a binary stream, so large timelines
stream to a file or to stdout without being held in memory. The list is the one the CLI offers too;
renderer modules are imported only when one renders, so ``exhunt --help`` stays quick.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from exhunt.reports.case import Case


@dataclass(frozen=True)
class Format:
    name: str
    filename: str
    module: str  # exhunt.reports.<module>.render(case, out)
    help: str
    uses_all_events: bool = False

    def render(self, case: Case, out: BinaryIO) -> None:
        import_module(f"exhunt.reports.{self.module}").render(case, out)


FORMATS: tuple[Format, ...] = (
    Format("html", "report.html", "html", "self-contained HTML report with timeline chart"),
    Format("md", "report.md", "markdown", "Markdown summary for tickets and e-mail"),
    Format("json", "findings.json", "json_doc", "the canonical findings document (versioned schema)"),
    Format("csv", "timeline.csv", "csv_timeline", "timeline CSV of cited rows", uses_all_events=True),
    Format("timesketch", "timeline.jsonl", "timesketch", "Timesketch JSONL of cited rows",
           uses_all_events=True),
    Format("stix", "indicators.stix.json", "stix", "STIX 2.1 bundle of indicators and observed data"),
    Format("impact-csv", "impact.csv", "impact_csv", "mailboxes exposed, one row per mailbox (notification list)"),
)


NAMES = tuple(fmt.name for fmt in FORMATS)


def get(name: str) -> Format:
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise KeyError(name)
