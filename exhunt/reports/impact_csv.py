"""``impact-csv``: the notification list, one row per mailbox over every host of the case.

``mailbox,how,first_seen,last_seen,sources,confidence``; lists are ``;``-joined, the confidence is the
strongest of the mailbox's entries, and cells a spreadsheet would run as a formula are quoted as
in the timeline CSV (mailbox names and sources come from the evidence).
"""

from __future__ import annotations

import csv
import io
from typing import BinaryIO

from exhunt import utctime
from exhunt.findings.model import MailboxImpact
from exhunt.reports.case import Case
from exhunt.reports.csv_timeline import spreadsheet_cell

COLUMNS = ("mailbox", "how", "first_seen", "last_seen", "sources", "confidence")
RANK = {"low": 0, "medium": 1, "high": 2}


def merged(entries: tuple[MailboxImpact, ...]) -> list[dict[str, str]]:
    """One row per mailbox, in the document's order of first appearance (confidence, then volume)."""
    groups: dict[str, list[MailboxImpact]] = {}
    for e in entries:
        groups.setdefault(e.mailbox, []).append(e)
    out = []
    for box, group in groups.items():
        firsts = [e.first_seen for e in group if e.first_seen]
        lasts = [e.last_seen for e in group if e.last_seen]
        out.append({"mailbox": box, "how": ";".join(sorted({h for e in group for h in e.how})),
                    "first_seen": min(firsts, default="", key=utctime.order),
                    "last_seen": max(lasts, default="", key=utctime.order),
                    "sources": ";".join(sorted({s for e in group for s in e.sources})),
                    "confidence": max((e.confidence for e in group), key=RANK.__getitem__)})
    out.sort(key=lambda r: -RANK[r["confidence"]])  # stable: volume order kept within a confidence
    return out


def render(case: Case, out: BinaryIO) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    try:
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        for row in merged(case.document.impact):
            writer.writerow([spreadsheet_cell(row[c]) for c in COLUMNS])
        text.flush()
    finally:
        text.detach()
