"""The impact in the reports: the notification CSV, the HTML section, the terminal count."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

from exhunt.findings.model import AssessmentDocument, EvidenceRef, MailboxImpact
from exhunt.reports import html, impact_csv
from exhunt.reports.case import Case
from exhunt.reports.terminal import impact_line

HOSTILE = "=HYPERLINK(\"http://x\")<script>alert(1)</script>@evil.example"


def _entry(host: str, box: str, confidence: str, how: str, first: str, source: str) -> MailboxImpact:
    return MailboxImpact(host=host, mailbox=box, how=(how,), first_seen=first, last_seen=first, sources=(source,),
                         requests=1, items=None, bytes=10, confidence=confidence,
                         evidence=(EvidenceRef("Logging/Ews/x.LOG", "exchange_log", 3, None, first, HOSTILE),),
                         actions=(f"Notify the owner of {box}",))


def _doc() -> AssessmentDocument:
    return AssessmentDocument("1.3", "t", "2021-04-06T00:00:00Z", (), (), impact=(
        _entry("EXCH01", "ceo@x.example", "high", "ews:GetItem", "2021-04-06T02:00:00Z", "198.51.100.66"),
        _entry("EXCH02", "ceo@x.example", "medium", "mailbox-forwarding", "2021-04-05T02:00:00Z", "by admin"),
        _entry("EXCH01", HOSTILE, "low", "fullaccess-permission", "2021-04-06T03:00:00Z", "by admin"),
    ))


def test_impact_csv_one_row_per_mailbox_across_hosts() -> None:
    out = io.BytesIO()
    impact_csv.render(Case(_doc()), out)
    rows = list(csv.reader(io.StringIO(out.getvalue().decode())))
    assert rows[0] == ["mailbox", "how", "first_seen", "last_seen", "sources", "confidence"]
    assert rows[1] == ["ceo@x.example", "ews:GetItem;mailbox-forwarding", "2021-04-05T02:00:00Z",
                       "2021-04-06T02:00:00Z", "198.51.100.66;by admin", "high"]
    assert rows[2][0].startswith("'="), "a formula from the evidence is not run by a spreadsheet"
    assert len(rows) == 3


def test_html_section_lists_mailboxes_and_escapes_them() -> None:
    page = html.render_text(Case(_doc()))
    assert "Mailboxes exposed" in page and "ceo@x.example" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page


def test_html_without_impact_says_so() -> None:
    page = html.render_text(Case(replace(_doc(), impact=())))
    assert "No mailbox access by an attacker source" in page


def test_terminal_counts_mailboxes_once() -> None:
    line = impact_line(_doc())
    assert line.startswith("Mailboxes exposed: 2 (1 high, 1 low)") and len(line) <= 80


def test_markdown_lists_mailboxes_escaped() -> None:
    from exhunt.reports import markdown

    page = markdown.render_text(_doc())
    assert "## Mailboxes exposed" in page and "`ceo@x.example`" in page
    assert f"`{HOSTILE}`" in page, "evidence text reaches Markdown only inside a code span"
    assert "## Mailboxes exposed" not in markdown.render_text(replace(_doc(), impact=()))
