from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import replace

from exhunt.findings.model import AssessmentDocument, Coverage, HostAssessment
from exhunt.reports.case import Case
from exhunt.reports.html import attack_url, render_text
from tests.reports.evidence import XSS_UA


def test_evidence_text_is_escaped(case: Case) -> None:
    page = render_text(case)
    assert "<script>window.pwned" not in page and "onerror=\"window" not in page
    assert "&lt;script&gt;window.pwned=1" in page
    assert page.count("<script>") == 1, "only our own script"


def test_self_contained_and_pinned_by_csp(case: Case) -> None:
    page = render_text(case)
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert not re.search(r"<[^>]*\ssrc=", page)
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1))
    assert "default-src 'none'" in csp
    for tag, directive in (("style", "style-src"), ("script", "script-src")):
        body = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp
    assert "@media print" in page


def test_sections_and_content(case: Case) -> None:
    page = render_text(case)
    for section in ('id="verdict"', 'id="actions"', 'id="timeline"', 'id="findings"', 'id="coverage"'):
        assert section in page
    assert page.count('class="finding sev-') == len(case.document.findings)
    assert page.count('<circle class="mark') == 7
    assert "Set-OabVirtualDirectory" in page and "T1505.003" in page
    assert "https://attack.mitre.org/techniques/T1505/003/" in page
    assert "Block and hunt for the attacker client IPs" in page


def test_user_rule_references_are_not_links(case: Case) -> None:
    f = replace(case.document.findings[0], references=("javascript:alert(1)", "https://example.org/x"))
    doc = replace(case.document, findings=(f,) + case.document.findings[1:])
    page = render_text(Case(doc, case.store))
    assert 'href="javascript:' not in page and "javascript:alert(1)" in page
    assert 'href="https://example.org/x"' in page


def test_renders_without_store_and_without_findings() -> None:
    doc = AssessmentDocument("1.0", "0", "2024-01-01T00:00:00Z", (
        HostAssessment("EMPTY", "not assessed", coverage=Coverage()),), ())
    page = render_text(Case(doc))
    assert "not assessed" in page and "No findings." in page and "No dated evidence" in page
    assert "Collect the Exchange and IIS logs" in page


def test_attack_urls() -> None:
    assert attack_url("T1190") == "https://attack.mitre.org/techniques/T1190/"
    assert attack_url("T1003.001") == "https://attack.mitre.org/techniques/T1003/001/"
    assert attack_url("T1190<x>") is None


def test_document_fallback_cites_the_kept_evidence(case: Case) -> None:
    page = render_text(Case(case.document))
    assert page.count('<circle class="mark') == 7 and "&lt;script&gt;" in page and XSS_UA not in page


def test_inconclusive_host_names_what_was_not_seen() -> None:
    coverage = Coverage(files=9, missing=("frontend_logs", "build", "event_logs"), unrecognised=2, warnings=2)
    doc = AssessmentDocument("1.2", "0", "2024-01-01T00:00:00Z", (
        HostAssessment("WEBONLY", "inconclusive", coverage=coverage),), ())
    page = render_text(Case(doc))
    assert 'class="badge v-inconclusive"' in page and ".v-inconclusive" in page
    assert "<b>Inconclusive:</b> nothing was found, but the evidence lacks Exchange front-end logs (HttpProxy " \
           "or IIS)" in page
    assert "<b>Expected and not seen:</b>" in page and "2 files</b> looked like structured data" in page
    assert "Collect Exchange front-end logs" in page


def test_many_findings_of_one_check_are_counted_past_the_first_ones(case: Case) -> None:
    """A web root of thousands of unknown pages: each check shows FINDING_DETAILS findings in full and
    counts the rest, so the rarer findings (YARA hits) are not buried; the document keeps all."""
    from exhunt.reports.html import FINDING_DETAILS

    first = case.document.findings[0]
    many = tuple(replace(first, id=f"{first.check}:{n:04d}", key=f"page{n}.aspx")
                 for n in range(FINDING_DETAILS + 7))
    doc = replace(case.document, findings=many + case.document.findings[1:])
    page = render_text(Case(doc, case.store))
    assert page.count('class="finding sev-') == FINDING_DETAILS + len(case.document.findings) - 1
    assert "7 more findings, by kind" in page
    row = re.search(r'<table class="more-findings">.*?</table>', page, re.S).group(0)
    assert f"<td>{html.escape(first.title, quote=False)}</td>" in row and "<td>7</td>" in row
    assert all(f.title in page for f in case.document.findings)


def test_the_compiled_template_is_cached_and_renders_the_same(case: Case, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The bytecode cache (``$EXHUNT_CACHE/jinja``) changes the report's cost, never its text. The
    template is loaded once per process (``report_template``): each render here is a new process's."""
    from exhunt.reports.html import report_template

    monkeypatch.setenv("EXHUNT_CACHE", str(tmp_path))
    report_template.cache_clear()
    first = render_text(case)
    stored = list((tmp_path / "jinja").glob("*.cache"))
    report_template.cache_clear()
    second = render_text(case)  # a new Environment: the template comes from the cache
    assert stored and second == first
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("EXHUNT_CACHE", str(blocker))  # a cache folder that cannot be made: no cache
    report_template.cache_clear()
    assert render_text(case) == first
    report_template.cache_clear()  # the next test's process loads its own


def test_report_through_the_scans_open_connection(case: Case) -> None:
    """The scan renders its report through the assessment's connection (``Case.con``), whose events
    view it shares; the hits written after that connection opened are read all the same."""
    from exhunt.events.store import connect

    con = connect(case.store, tables=("events",))  # as the assessment's: no hits view yet
    try:
        shared = render_text(replace(case, con=con))
    finally:
        con.close()
    own = render_text(case)
    assert shared == own
    assert "No dated evidence was cited" not in shared and '<circle class="mark' in shared
