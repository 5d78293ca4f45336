from __future__ import annotations

from dataclasses import replace

import pytest

from exhunt.reports.case import Case
from exhunt.reports.terminal import print_summary


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_plain_summary_has_verdicts_findings_and_next_steps(case: Case, capsys: pytest.CaptureFixture,
                                                             ) -> None:
    print_summary(case.document, color=False)
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    assert "compromised" in out and "ProxyLogon SSRF" in out and "Next for EXCH01:" in out


def test_evidence_text_is_not_rich_markup(case: Case, capsys: pytest.CaptureFixture) -> None:
    f = replace(case.document.findings[0], key="[/] [bold]x[/bold]")
    print_summary(replace(case.document, findings=(f,)), color=True)
    assert "[/] [bold]x[/bold]" in capsys.readouterr().out
