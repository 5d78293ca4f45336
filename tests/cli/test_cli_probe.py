"""``exhunt probe``: JSON document, case folder, streamed lines, resume, usage errors (exit 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from exhunt.cli import main
from tests.probe.fixture import Running, start_fixture, stop_fixture


@pytest.fixture
def servers() -> Iterator[Running]:
    running, thread = start_fixture(["vuln2016", "iis"])
    yield running
    stop_fixture(running, thread)


def test_probe_json_out_and_resume(servers: Running, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "targets.txt"
    listing.write_text(f"# lab\nhttp://127.0.0.1:{servers.ports['iis']}\n", encoding="utf-8")
    vuln = f"http://127.0.0.1:{servers.ports['vuln2016']}"
    case = tmp_path / "case"
    argv = ["probe", vuln, "--targets", str(listing), "--out", str(case), "--json", "--quiet",
            "--timeout", "5"]
    assert main(argv) == 1
    doc = json.loads(capsys.readouterr().out)
    assert sorted(h["host"] for h in doc["hosts"]) == sorted([vuln, f"http://127.0.0.1:{servers.ports['iis']}"])
    checks = {f["check"] for f in doc["findings"] if f["host"] == vuln}
    assert {"probe.proxylogon_ssrf", "probe.proxyshell_path", "probe.proxynotshell_mitigation"} <= checks
    assert json.loads((case / "findings.json").read_text(encoding="utf-8"))["findings"] == doc["findings"]
    assert len((case / "probe.jsonl").read_text(encoding="utf-8").splitlines()) == 2

    sent = servers.server.requests
    assert main([*argv, "--resume"]) == 1
    again = json.loads(capsys.readouterr().out)
    assert servers.server.requests == sent  # nothing probed twice
    assert again["findings"] == doc["findings"]


def test_probe_streams_host_lines(servers: Running, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", f"http://127.0.0.1:{servers.ports['vuln2016']}", "--no-color"]) == 1
    err = capsys.readouterr().err
    assert "Exchange 2016 CU19" in err and "VULNERABLE: proxylogon_ssrf" in err
    assert "probe.proxylogon_ssrf: 1 vulnerable" in err


@pytest.mark.parametrize("argv", [
    ["probe"],
    ["probe", "192.0.2.0/24"],
    ["probe", "mail.example.org", "--resume"],
    ["probe", "mail.example.org", "--resolve", "nonsense"],
    ["probe", "mail.example.org", "--concurrency", "0"],
    ["probe", "bad host"],
])
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("exhunt: error:")


def test_probe_start_does_not_load_the_scan_stack() -> None:
    """Start-up time counts in a sweep: the probe command's imports stay clear of DuckDB, Arrow, YARA."""
    import subprocess
    import sys

    code = ("import sys, exhunt.cli, exhunt.cli.probe, exhunt.probe.runner, exhunt.probe.sweep, "
            "exhunt.probe.terminal; print(sorted(m for m in ('duckdb', 'pyarrow', 'yara_x', 'exhunt.api') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


def test_a_quiet_sweep_loads_neither_rich_nor_the_scan_stack() -> None:
    """``--quiet`` prints nothing, so the terminal layer (rich) is not imported either."""
    import subprocess
    import sys

    code = ("import sys; from exhunt.cli import main; "
            "main(['probe', 'http://127.0.0.1:1', '--quiet', '--timeout', '0.5', '--retries', '0']); "
            "print(sorted(m for m in ('duckdb', 'pyarrow', 'yara_x', 'exhunt.api', 'rich', 'aiohttp') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
