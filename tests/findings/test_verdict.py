"""'clean' only when the evidence could have shown a compromise; otherwise 'inconclusive'."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.demo.generator import LEGIT_PAGES, _legit_page
from exhunt.findings.model import Finding
from exhunt.findings.triage import verdict
from exhunt.reports.markdown import render_text

SIEM_LINE = {"SourceName": "Microsoft-Windows-Sysmon", "EventIDx": 1, "Hostname": "EXCH01",
             "UtcTime": "2021-03-03 02:10:05.123", "Image": "C:\\Windows\\System32\\cmd.exe"}


def _scan(root: Path):  # type: ignore[no-untyped-def]
    return scan([root], ScanOptions(host="EXCH01", jobs=1, quiet=True)).document


def test_full_collection_is_clean(tmp_path: Path) -> None:
    generate(tmp_path / "evidence", DemoSpec(per_day=60, attack=False, seed=3))
    doc = _scan(tmp_path / "evidence")
    (host,) = doc.hosts
    assert host.verdict == "clean"
    assert host.coverage.missing == ("event_logs",)  # listed, not required


def test_web_root_only_is_inconclusive_with_logs_missing(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    for rel, name in LEGIT_PAGES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(_legit_page(name))
    doc = _scan(root)
    (host,) = doc.hosts
    assert [f for f in doc.findings if f.category == "compromise"] == []
    assert host.verdict == "inconclusive"
    assert host.coverage.missing == ("frontend_logs", "build", "event_logs")
    text = render_text(doc)
    assert "EXCH01 is inconclusive" in text and "Exchange front-end logs (HttpProxy or IIS)" in text


def test_unrecognised_json_only_is_inconclusive_with_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    root.mkdir()
    (root / "siem_export.json").write_bytes(b"".join(orjson.dumps(SIEM_LINE) + b"\n" for _ in range(3)))
    doc = _scan(root)
    (host,) = doc.hosts
    assert host.verdict == "inconclusive" and host.coverage.events == 0
    assert host.coverage.unrecognised == 1 and host.coverage.warnings == 1
    (sample,) = host.coverage.warning_samples
    assert sample["path"] == "siem_export.json" and sample["artifact"] == "unrecognised"
    assert sample["message"].startswith("JSON lines with keys SourceName, EventIDx, Hostname")
    assert "not recognised as Windows events" in sample["message"]


def test_nothing_read_is_not_assessed(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert _scan(tmp_path / "empty").hosts[0].verdict == "not assessed"


def _finding(severity: str, confidence: str = "high", category: str = "compromise") -> Finding:
    return Finding(id="x", check="c", title="t", severity=severity, confidence=confidence, category=category,
                   host="h", key="k", description="", first_seen=None, last_seen=None, count=1)


@pytest.mark.parametrize(("findings", "complete", "expected"), [
    ([], True, "clean"),
    ([], False, "inconclusive"),
    ([_finding("critical", category="exposure")], False, "inconclusive"),  # exposure is no compromise
    ([_finding("medium")], False, "suspicious"),  # a finding is a finding whatever the coverage
    ([_finding("critical")], False, "compromised"),
])
def test_verdict_rule(findings: list[Finding], complete: bool, expected: str) -> None:
    assert verdict(findings, assessed=True, complete=complete).value == expected
