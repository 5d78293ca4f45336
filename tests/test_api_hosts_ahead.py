"""The hosts' verdicts started during the pivot pass (``api.HostsAhead``) are those of the final store."""

from __future__ import annotations

from pathlib import Path

import pytest

from exhunt import api
from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate


class _Store:
    """A stand-in connection whose cursors tell which state of the store they saw."""

    def __init__(self) -> None:
        self.state = 0

    def cursor(self) -> int:
        return self.state


def test_the_result_is_that_of_the_latest_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "_host_assessments", lambda cursor, work, findings: [cursor])
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
