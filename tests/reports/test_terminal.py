from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

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


def _thirty(case: Case):  # type: ignore[no-untyped-def]
    base = case.document.findings[0]
    findings = tuple(replace(base, id=f"x{n}", key=f"key{n:02d} " + "k" * 20, title="A long finding title " * 4,
                             severity=("critical", "high", "medium", "low")[n % 4]) for n in range(30))
    host = replace(case.document.hosts[0], host="exchange-server-with-a-very-long-name.corp.example",
                   verdict="compromised")
    return replace(case.document, findings=findings, hosts=(host,))


def test_summary_fits_80_columns_and_the_verdict_is_never_cut(case: Case, capsys: pytest.CaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    print_summary(_thirty(case), color=False, case_dir=Path("case"))
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert re.match(r"^compromised +exchange-server-wit…  4 files, 6 events · build ", lines[0]), lines[0]
    finding_lines = [ln for ln in lines if ln.startswith(("critical", "high", "medium", "low"))]
    assert len(finding_lines) == 15 and finding_lines[0].startswith("critical")
    assert finding_lines[-1].startswith("high")  # the most severe first
    assert "15 more: see report.html" in lines
    assert len(lines) < 40


def test_verbose_prints_every_finding(case: Case, capsys: pytest.CaptureFixture,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    print_summary(_thirty(case), color=False, verbose=True)
    out = capsys.readouterr().out
    assert "Findings (30)" in out and "key29" in out and "more: see" not in out


def test_inconclusive_host_line_names_what_is_missing(case: Case, capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    host = case.document.hosts[0]
    coverage = replace(host.coverage, missing=("frontend_logs", "build", "event_logs"))
    doc = replace(case.document, findings=(), hosts=(replace(host, verdict="inconclusive", coverage=coverage),))
    print_summary(doc, color=True)
    out = capsys.readouterr().out
    assert "inconclusive" in out and "not seen: front-end logs, build ·" in out
    assert "Collect Exchange front-end logs (HttpProxy or IIS)" in out
