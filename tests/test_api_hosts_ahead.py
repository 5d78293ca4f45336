"""The hosts' verdicts started during the pivot pass (``api.HostsAhead``) are those of the final store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from exhunt import api
from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate


class _Cursor:
    def __init__(self, state: int) -> None:
        self.state, self.closed = state, False

    def close(self) -> None:
        self.closed = True

    def interrupt(self) -> None:
        pass


class _Store:
    """A stand-in connection whose cursors tell which state of the store they saw."""

    def __init__(self) -> None:
        self.state = 0
        self.cursors: list[_Cursor] = []

    def cursor(self) -> _Cursor:
        self.cursors.append(_Cursor(self.state))
        return self.cursors[-1]


def test_the_result_is_that_of_the_latest_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "_host_assessments", lambda cursor, work, findings: [cursor.state])
    store = _Store()
    with api.HostsAhead(store, [], []) as ahead:
        ahead.start()
        store.state = 1  # a later round's rows
        ahead.start()
        ahead.start_unless_current()  # no change since: not started again
        assert ahead.result() == [1]
    store.state = 2
    with api.HostsAhead(store, [], []) as ahead:  # no pivot round: started where the verdicts are needed
        assert ahead.result() == [2]


def test_a_start_not_begun_is_cancelled_and_an_error_does_not_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A later start drops the one still queued (its cursor closed); leaving on an error cancels what
    has not begun and interrupts what runs instead of waiting for its queries."""
    running = threading.Event()
    release = threading.Event()

    def slow(cursor, work, findings):  # type: ignore[no-untyped-def]
        running.set()
        release.wait(30)
        return [cursor.state]

    monkeypatch.setattr(api, "_host_assessments", slow)
    store = _Store()
    started = time.monotonic()
    with pytest.raises(RuntimeError), api.HostsAhead(store, [], []) as ahead:
        ahead.start()
        assert running.wait(5)
        store.cursors[0].interrupt = release.set  # type: ignore[method-assign]  # as DuckDB's would end it
        ahead.start()  # queued behind the running one
        ahead.start()  # so the queued one never begins
        assert store.cursors[1].closed and not store.cursors[2].closed
        raise RuntimeError("a pivot round failed")
    assert release.is_set() and store.cursors[2].closed
    assert time.monotonic() - started < 10


def test_two_jobs_give_the_hosts_one_job_gives(tmp_path: Path) -> None:
    """With a pivot pass that stores rows, --jobs 2 (verdicts begun beside the last gathering) and
    --jobs 1 (verdicts after the pass) assess every host alike."""
    generate(tmp_path / "evidence", DemoSpec(days=2, per_day=200))
    documents = []
    for jobs in (1, 2):
        result = scan([tmp_path / "evidence"], ScanOptions(out=tmp_path / f"case{jobs}", host="EXCH01", jobs=jobs,
                                                           quiet=True, html_report=False))
        documents.append(result.document)
    assert documents[1].rules["triage"]["pivot"]["rows"] > 0
    assert documents[0].hosts == documents[1].hosts
