"""``exhunt build``: text and JSON output, exit status 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exhunt.cli import main
from tests.conftest import shared_path


@pytest.mark.parametrize(("value", "code", "shown"), [
    ("15.2.792.10", 1, "Exchange 2019"),
    ("15.02.1118.025", 1, "Feb23SU"),  # CVE-2024-21410 has no fix on CU12
    ("15.2.2562.17", 0, "Exchange SE"),
    ("Version 15.2 (Build 2562.17)", 0, "AdminDisplayVersion"),
    ("15.2.1200.3", 0, "Unknown build 15.2.1200.3"),
])
def test_versions(value: str, code: int, shown: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", value]) == code
    out = capsys.readouterr().out
    assert shown in " ".join(out.split()) and "CVE-2021-26855" in out and "Install:" in out


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "15.1.2375.7", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert (doc["product"], doc["cu"], doc["source"]) == ("Exchange 2016", "CU22", "command line")
    assert len(doc["cves"]) == 17 and doc["install"].startswith("Upgrade to Exchange 2016 CU23")
    assert {c["cve"]: c["status"] for c in doc["cves"]}["CVE-2022-41082"] == "vulnerable"


@pytest.mark.parametrize("value", ["garbage", "15.2", "Version 15.2"])
def test_bad_input_exit_2(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("exhunt: error: not an Exchange build number") and err.count("\n") == 1


def test_file_that_is_not_clixml_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "applicationHost.config"
    path.write_text('<?xml version="1.0"?><configuration/>')
    assert main(["build", str(path)]) == 2
    assert "not a HealthChecker/ExSetup CLIXML file" in capsys.readouterr().err


def test_clixml_file(capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_path("css-exchange", "healthchecker-testdata", "E19", "ExSetup1.xml")
    assert main(["build", str(path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert (doc["build"], doc["update"], doc["source"], doc["confidence"]) == (
        "15.2.1118.25", "Feb23SU", "ExSetup1.xml:17", "high")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig"])
def test_clixml_file_as_windows_powershell_writes_it(tmp_path: Path, encoding: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Export-Clixml of Windows PowerShell 5.1 writes UTF-16 with a BOM: read through the one CLIXML reader."""
    source = shared_path("css-exchange", "healthchecker-testdata", "E19", "ExSetup1.xml")
    path = tmp_path / "ExSetup1.xml"
    path.write_bytes(source.read_bytes().decode("utf-8-sig").encode(encoding))
    assert main(["build", str(path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert (doc["build"], doc["source"]) == ("15.2.1118.25", "ExSetup1.xml:17")
