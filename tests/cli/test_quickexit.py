"""The ``exhunt`` program ends a scan's process with ``os._exit`` once its output is flushed (no
interpreter teardown); every other command, and ``main`` as tests call it, exits the ordinary way."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from exhunt.cli import quickexit
from exhunt.demo import DemoSpec, generate

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ("import atexit, sys; from pathlib import Path; mark = Path(sys.argv[1]); "
           "atexit.register(lambda: mark.write_text('teardown ran')); "
           "sys.argv = ['exhunt', *sys.argv[2:]]; from exhunt.cli import run; run()")


def _program(mark: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", PROGRAM, str(mark), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def test_a_scan_ends_without_the_teardown_and_with_its_whole_output(tmp_path: Path) -> None:
    ev = tmp_path / "exch01"
    generate(ev, DemoSpec(days=1, per_day=30))
    mark = tmp_path / "mark.txt"
    done = _program(mark, "scan", str(ev), "--out", str(tmp_path / "case"), "--quiet", "--jobs", "2", "--no-color")
    assert done.returncode in (0, 1), done.stderr
    assert done.stdout.rstrip().endswith("store/)") and "Case written to" in done.stdout
    assert (tmp_path / "case" / "findings.json").is_file() and (tmp_path / "case" / "manifest.json").is_file()
    assert not mark.exists()  # the exit handler never ran: os._exit
    assert done.stderr == ""


def test_other_commands_exit_the_ordinary_way(tmp_path: Path) -> None:
    mark = tmp_path / "mark.txt"
    done = _program(mark, "build", "15.1.2176.2")
    assert done.returncode in (0, 1) and mark.read_text() == "teardown ran"


def test_a_live_thread_means_the_ordinary_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    ended: list[int] = []
    monkeypatch.setattr(os, "_exit", ended.append)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not quickexit.safe()
        quickexit.end(1)
        assert ended == []
    finally:
        stop.set()
        thread.join()
    assert quickexit.safe()
    quickexit.end(1)
    assert ended == [1]
