"""Workers fork from a server that imported their modules (Linux) or are spawned; either way they
see the scan process's environment as it is when a pass is configured."""

from __future__ import annotations

import subprocess
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


@linux_only
@pytest.mark.parametrize("quick_exit", [True, False])
def test_the_server_exits_without_the_interpreters_teardown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick_exit: bool) -> None:
    """``serverexit`` (preloaded after the marker, so its handler runs first) ends the server with
    ``os._exit``: the marker's exit handler never runs. Without it, it does (the test can fail)."""
    from multiprocessing import forkserver

    mark = tmp_path / "exit.txt"
    monkeypatch.setenv("EXHUNT_TEST_EXIT_MARK", str(mark))
    startmethod.stop()  # a server started by an earlier test has the other preload list
    context = startmethod.worker_context()
    preload = ["tests.parallel.exit_marker"] + (["exhunt.parallel.serverexit"] if quick_exit else [])
    context.set_forkserver_preload(preload)
    try:
        process = context.Process(target=int)
        process.start()
        process.join()
        startmethod.stop()
        assert mark.exists() is not quick_exit
    finally:
        startmethod.stop()
        context.set_forkserver_preload(startmethod.PRELOAD)
    assert forkserver._forkserver._forkserver_pid is None  # type: ignore[attr-defined]


def test_serverexit_does_nothing_outside_the_fork_server() -> None:
    from exhunt.parallel import serverexit

    assert not serverexit.imported_by_fork_server()


def test_the_servers_preload_leaves_duckdb_out() -> None:
    """Workers forked from the server parse and store without DuckDB (a segment that needs its JSON
    function imports it then): its import was ~0.05 s of the server's start, which the scan waits for."""
    code = "import sys\nimport " + ", ".join(startmethod.PRELOAD) + "\nprint('duckdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
