"""Workers fork from a server that imported their modules (Linux) or are spawned; either way they
see the scan process's environment as it is when a pass is configured."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.parallel import startmethod

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is used on Linux only")


@linux_only
def test_linux_forks_from_a_server_unless_told_to_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    assert startmethod.worker_context().get_start_method() == "forkserver"
    monkeypatch.setenv("EXHUNT_START_METHOD", "spawn")
    assert startmethod.worker_context().get_start_method() == "spawn"


@pytest.mark.parametrize("method", ["", "spawn"])
def test_workers_see_the_environment_set_after_the_server_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    monkeypatch.setenv("EXHUNT_START_METHOD", method)
    startmethod.prestart(2)  # the server's environment is fixed from here on
    record = tmp_path / "mark.txt"
    monkeypatch.setenv("EXHUNT_TEST_ENV_FILE", str(record))
    monkeypatch.setenv("EXHUNT_TEST_MARK", f"set later {tmp_path.name}")
    ev = tmp_path / "exch01"
    generate(ev, DemoSpec(days=1, per_day=30))
    scan([ev], ScanOptions(out=tmp_path / "case", jobs=2, quiet=True, html_report=False,
                           worker_hook="tests.parallel.env_hook:record"))
    assert record.read_text(encoding="utf-8") == f"set later {tmp_path.name}"


@linux_only
def test_the_command_line_stops_the_server_when_its_scan_ends(tmp_path: Path) -> None:
    """Waited for, the server's workers count in the command's CPU time (``time``, the benchmarks)."""
    from multiprocessing import forkserver

    from exhunt.cli import main

    ev = tmp_path / "exch01"
    generate(ev, DemoSpec(days=1, per_day=30))
    assert main(["scan", str(ev), "--out", str(tmp_path / "case"), "--quiet", "--jobs", "2"]) in (0, 1)
    assert forkserver._forkserver._forkserver_pid is None  # type: ignore[attr-defined]
