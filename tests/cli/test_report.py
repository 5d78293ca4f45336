from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
import stix2

from exhunt.api import ScanResult
from exhunt.cli import main


@pytest.fixture
def case_copy(scanned: ScanResult, tmp_path: Path) -> Path:
    target = tmp_path / "case"
    shutil.copytree(scanned.case_dir, target)
    return target


def test_scan_out_writes_report_html_next_to_findings(scanned: ScanResult) -> None:
    page = (scanned.case_dir / "report.html").read_text(encoding="utf-8")
    assert "Exchange compromise assessment" in page and (scanned.case_dir / "findings.json").exists()


@pytest.mark.parametrize(("fmt", "name"), [
    ("html", "report.html"), ("md", "report.md"), ("csv", "timeline.csv"), ("timesketch", "timeline.jsonl"),
    ("stix", "indicators.stix.json")])
def test_report_writes_the_default_file(case_copy: Path, fmt: str, name: str) -> None:
    (case_copy / name).unlink(missing_ok=True)
    assert main(["report", str(case_copy), "--format", fmt]) == 0
    assert (case_copy / name).stat().st_size > 100
    assert not list(case_copy.glob("*.part"))


def test_report_json_to_stdout_is_the_document(case_copy: Path, capsysbinary: pytest.CaptureFixture) -> None:
    assert main(["report", str(case_copy), "-f", "json", "-o", "-"]) == 0
    assert capsysbinary.readouterr().out == (case_copy / "findings.json").read_bytes()


def test_report_all_events_and_output_file(case_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    assert main(["report", str(case_copy), "-f", "timesketch", "--all-events", "-o", str(out)]) == 0
    assert len(out.read_bytes().splitlines()) == 8


def test_report_from_findings_json_alone(case_copy: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(case_copy / "findings.json", lone / "findings.json")
    out = tmp_path / "b.json"
    assert main(["report", str(lone / "findings.json"), "-f", "stix", "-o", str(out)]) == 0
    stix2.parse(out.read_text())
    assert main(["report", str(lone), "-f", "csv", "--all-events"]) == 2


@pytest.mark.parametrize("argv", [["report", "/nonexistent/case"],
                                  ["report", "{case}", "-f", "md", "--all-events"],
                                  ["report", "{case}", "-f", "md", "-o", "{case}/findings.json"]])
def test_report_usage_errors_exit_2(case_copy: Path, argv: list[str], capsys: pytest.CaptureFixture) -> None:
    before = (case_copy / "findings.json").read_bytes()
    assert main([a.replace("{case}", str(case_copy)) for a in argv]) == 2
    assert capsys.readouterr().err.startswith("exhunt: error:")
    assert (case_copy / "findings.json").read_bytes() == before
    orjson.loads(before)
