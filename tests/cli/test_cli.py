"""The CLI contract: exit codes, one-line errors, --json to stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exhunt.cli import main
from exhunt.demo import DemoSpec, generate

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exhunt", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_missing_evidence_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = run("scan", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "evidence not found" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["scan"], ["frobnicate"], ["scan", "x", "--jobs", "many"], [],
                                  ["scan", "x", "--jobs", "-3"], ["scan", "x", "--org-domain", "not a domain"]])
def test_usage_errors_exit_2_without_traceback(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("exhunt: error:") and err.count("\n") == 1


def test_scan_json_and_exit_codes(tmp_path: Path) -> None:
    generate(tmp_path / "bad", DemoSpec(per_day=200))
    generate(tmp_path / "good", DemoSpec(per_day=200, attack=False))
    bad = run("scan", str(tmp_path / "bad"), "--json", "--jobs", "1")
    assert bad.returncode == 1, bad.stderr
    doc = json.loads(bad.stdout)
    assert doc["schema_version"] and doc["findings"]
    good = run("scan", str(tmp_path / "good"), "--json", "--jobs", "1")
    assert good.returncode == 1, "the demo build is vulnerable: an exposure finding"
    assert {f["category"] for f in json.loads(good.stdout)["findings"]} == {"exposure"}
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "u_ex210303.log").write_text(
        "#Software: Microsoft Internet Information Services 10.0\n#Fields: date time cs-method cs-uri-stem c-ip "
        "sc-status\n2021-03-03 02:00:00 GET /owa/ 10.0.0.1 200\n")
    clean = run("scan", str(tmp_path / "clean"), "--quiet")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "No findings" in clean.stdout


def test_single_log_file_is_evidence(tmp_path: Path) -> None:
    log = tmp_path / "u_ex210303.log"
    log.write_text("#Software: Microsoft Internet Information Services 10.0\n#Fields: date time cs-method "
                   "cs-uri-stem c-ip sc-status\n2021-03-03 02:00:00 POST /ecp/y.js 203.0.113.9 200\n")
    proc = run("scan", str(log), "--json")
    assert proc.returncode == 1
    assert [f["check"] for f in json.loads(proc.stdout)["findings"]] == ["proxylogon.ssrf.static_post"]


def test_org_domain_option_decides_what_is_outside(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without accepted domains in the evidence, --org-domain (repeatable) names the organisation."""
    from tests.artifacts.psexport import export
    from tests.artifacts.test_cmdlet_exports import EXPORTS

    type_name, objects, _, _ = EXPORTS["Get-InboxRule"]
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "rules.csv").write_bytes(export(objects, "csv", type_name))

    def forwarding(*extra: str) -> set[tuple[str, str]]:
        assert main(["scan", str(tmp_path / "ev"), "--json", "--quiet", "--jobs", "1", *extra]) == 1
        doc = json.loads(capsys.readouterr().out)
        return {(f["key"], f["confidence"]) for f in doc["findings"] if f["check"] == "mailflow.inbox_rule_forwarding"}

    outside = ("corp.example/Users/alice -> mallory@evil.example", "medium")
    assert forwarding() == {outside, ("corp.example/Users/bob -> carol@corp.example", "medium")}
    assert forwarding("--org-domain", "@CORP.example", "--org-domain", "other.example") == {(outside[0], "high")}
