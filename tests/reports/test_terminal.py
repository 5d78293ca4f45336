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


def test_rules_that_did_not_load_are_named(case: Case, capsys: pytest.CaptureFixture) -> None:
    failed = [{"path": f"/rules/r{n}.yml", "id": "", "title": "", "reason": "condition must be text"}
              for n in range(5)]
    rules = {**case.document.rules, "sigma": {"loaded": 5, "converted": 0, "failed": failed},
             "yara": {"rules": {"skipped": [{"origin": "bad.yar", "rule": "*", "reason": "syntax error [x]"}]}}}
    print_summary(replace(case.document, rules=rules), color=True)
    out = capsys.readouterr().out
    assert "Sigma: 5 rule(s) not loaded" in out and "/rules/r0.yml: condition must be text" in out
    assert "... and 2 more" in out and "/rules/r4.yml" not in out
    assert "YARA: 1 rule(s) not loaded" in out and "bad.yar: *: syntax error [x]" in out  # no markup eaten


def test_nothing_said_when_every_rule_loaded(case: Case, capsys: pytest.CaptureFixture) -> None:
    print_summary(case.document, color=False)
    assert "not loaded" not in capsys.readouterr().out
