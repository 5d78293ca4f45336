from __future__ import annotations

import re
from dataclasses import replace

from exhunt.reports.case import Case
from exhunt.reports.markdown import code, render_text, text


def test_summary_sections(case: Case) -> None:
    md = render_text(case.document)
    for heading in ("# Exchange compromise assessment", "## Verdict", "## What to do now", "## Findings",
                    "## Coverage"):
        assert heading in md
    assert "| EXCH01 | **compromised** |" in md
    assert "<https://www.microsoft.com/security/blog/" in md


def test_evidence_cannot_become_markup(case: Case) -> None:
    first = case.document.findings[0]
    f = replace(first, key="[x](javascript:alert(1)) | <b>",
                evidence=(replace(first.evidence[0], excerpt="a ``b`` | <img src=x>\nc"),))
    md = render_text(replace(case.document, findings=(f,)))
    assert "Key: `[x](javascript:alert(1)) | <b>`" in md
    assert "```a ``b`` \\| <img src=x> c```" in md
    outside_code = re.sub(r"(`+).*?\1", "", md)
    for markup in ("](javascript", "<b>", "<img"):
        assert markup not in outside_code


def test_escaping_helpers() -> None:
    assert text("<a>|*x*") == "\\<a\\>\\|\\*x\\*"
    assert code("a`b") == "``a`b``" and code("`x") == "`` `x ``"
