"""Worker batches: consecutive small files of one host share a store part; big files go alone."""

from __future__ import annotations

import pytest

from exhunt.api import BATCH_BYTES, batches
from exhunt.evidence.base import EvidenceFile


def _f(name: str, size: int = 10) -> EvidenceFile:
    return EvidenceFile("directory", "/r", name, size)


def test_batches_split_by_host_count_and_size() -> None:
    tasks = [(_f(f"a{n}"), "h1") for n in range(10)] + [(_f("big", BATCH_BYTES), "h1"), (_f("b"), "h2")]
    out = [([f.rel for f in batch], host) for batch, host in batches(tasks, jobs=1)]
    names = [f"a{n}" for n in range(10)]
    assert out == [(names[0:3], "h1"), (names[3:6], "h1"), (names[6:9], "h1"), (names[9:], "h1"),
                   (["big"], "h1"), (["b"], "h2")]  # 3 per batch: 12 tasks / (1 job * 4)
    assert sum(len(b) for b, _ in batches(tasks, jobs=2)) == len(tasks)


def test_jobs_are_every_core_by_default_and_at_most_four_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """--jobs 30000 had started 30,000 query threads and a worker count past the memory limit."""
    from exhunt import api

    monkeypatch.setattr(api.os, "cpu_count", lambda: 2)
    assert [api._jobs(n) for n in (0, 1, 2, 8, 9, 30_000)] == [2, 1, 2, 8, 8, 8]
