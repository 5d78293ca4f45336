"""Work for the scan process while its workers parse starts only once they have their units."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.parallel import pool
from exhunt.parallel.meanwhile import Meanwhile


def test_tasks_start_when_told_and_give_results_and_errors() -> None:
    meanwhile = Meanwhile()
    ran = threading.Event()
    done = meanwhile.add(lambda x: ran.set() or x * 2, 21)
    failed = meanwhile.add(lambda: 1 / 0)
    assert not ran.wait(0.05)  # nothing before start
    meanwhile.start()
    meanwhile.start()  # again: no second run
    meanwhile.finish()
    assert done.result() == 42 and isinstance(failed.exception(), ZeroDivisionError)


def test_finish_starts_what_no_pool_started() -> None:
    meanwhile = Meanwhile()
    future = meanwhile.add(lambda: "ok")
    meanwhile.finish()
    assert future.result() == "ok"


def test_scan_starts_its_own_work_after_every_unit_is_submitted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    real_submit = pool.ProcessPoolExecutor.submit

    def submit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if args and args[0] is pool.run_configured:
            order.append("unit")
        return real_submit(self, *args, **kwargs)

    real_start = Meanwhile.start

    def start(self: Meanwhile) -> None:
        if self._tasks:
            order.append("meanwhile")
        real_start(self)

    monkeypatch.setattr(pool.ProcessPoolExecutor, "submit", submit)
    monkeypatch.setattr(Meanwhile, "start", start)
    ev = tmp_path / "exch01"
    generate(ev, DemoSpec(days=2, per_day=40))
    scan([ev], ScanOptions(out=tmp_path / "case", jobs=2, quiet=True, html_report=False))
    assert order.count("meanwhile") == 1
    first_pass = order[:order.index("meanwhile")]  # a pivot pass may submit more units afterwards
    assert len(first_pass) > 1 and set(first_pass) == {"unit"}
