"""Timeline CSV: one row per cited evidence row (or every event with ``--all-events``), UTC times.

Spreadsheet-friendly and importable by Timesketch's CSV importer (``message``, ``datetime``,
``timestamp_desc`` come first). Cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``,
``@`` at the start: attackers control log text) are prefixed with a single quote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any, BinaryIO

from exhunt.findings.model import Finding, severity_rank
from exhunt.reports.case import IMPACT_ID, Case, iso_utc, timeline_rows, timestamp_desc

COLUMNS = ("message", "datetime", "timestamp_desc", "host", "source", "path", "line", "record_id", "severity",
           "findings", "finding_ids", "cves", "attack", "kind", "client_ip", "user", "method", "uri",
           "uri_query", "status", "user_agent", "cmdlet", "event_id", "channel", "image", "command_line")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def finding_fields(ids: list[str], findings: dict[str, Finding]) -> dict[str, Any]:
    """Names, severity, CVEs and ATT&CK ids of the findings citing a row (empty when none)."""
    cited = [findings[i] for i in ids if i in findings]
    if not cited:  # a row only the mailbox impact cites
        boxes = [i.removeprefix(IMPACT_ID) for i in ids if i.startswith(IMPACT_ID)]
        return {"severity": "", "findings": "Mailbox exposed: " + ", ".join(boxes) if boxes else "",
                "finding_ids": " ".join(ids), "cves": "", "attack": ""}
    worst = max(cited, key=lambda f: severity_rank(f.severity))
    boxes = [i.removeprefix(IMPACT_ID) for i in ids if i.startswith(IMPACT_ID)]
    return {
        "severity": worst.severity,
        "findings": " | ".join([*dict.fromkeys(f.title for f in cited), *(["Mailbox exposed: " + ", ".join(boxes)]
                                                                        if boxes else [])]),
        "finding_ids": " ".join([*(f.id for f in cited), *(IMPACT_ID + b for b in boxes)]),
        "cves": " ".join(dict.fromkeys(c for f in cited for c in f.cves)),
        "attack": " ".join(dict.fromkeys(a for f in cited for a in f.attack)),
    }


def records(case: Case) -> Iterator[dict[str, Any]]:
    """Uniform timeline records shared by the CSV and Timesketch renderers."""
    findings = case.findings_by_id
    for row in timeline_rows(case):
        record = {k: row.get(k) for k in COLUMNS if k in row}
        record.update(finding_fields(list(row["finding_ids"]), findings))
        record["datetime"] = iso_utc(row["ts"])
        record["timestamp_desc"] = timestamp_desc(row["source"], row.get("kind"))
        record["message"] = row["message"] or ""
        record["_ts"] = row["ts"]
        yield record


def spreadsheet_cell(value: Any) -> Any:
    """A value a spreadsheet shows as text: a leading = + - @ (or tab, CR) would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def render(case: Case, out: BinaryIO) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    try:
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        for record in records(case):
            writer.writerow([spreadsheet_cell(record.get(c)) for c in COLUMNS])
        text.flush()
    finally:
        text.detach()
