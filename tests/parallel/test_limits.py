"""--memory-limit arithmetic: the parts given out never add up to more than the limit."""

from __future__ import annotations

import pytest

from exhunt.parallel import limits

MIB = limits.MIB


def _mb(text: str) -> int:
    assert text.endswith("MB")
    return int(text[:-2]) * MIB


@pytest.mark.parametrize("limit", [512 * MIB, 1 << 30, 4 << 30])
def test_query_memory_leaves_room_for_the_scan_process(limit: int) -> None:
    # DuckDB's limit covers its buffer pool only; the parent's Python side must still fit beside it
    # (at 0.75 of the rest the 1M-record EVTX scan with --index full peaked 1,029 MiB under 1 GiB)
    query = _mb(limits.query_memory(limit))
    assert query <= (limit - limits.PARENT) * 0.7
    assert query >= 128 * MIB


@pytest.mark.parametrize(("limit", "jobs"), [(1 << 30, 2), (1 << 30, 16), (512 * MIB, 4), (8 << 30, 8)])
def test_workers_fit_in_the_limit(limit: int, jobs: int) -> None:
    budget = limits.budget(limit, jobs)
    per_worker = limits.WORKER_BASE + limits.CHUNK_COPIES * budget.chunk
    assert 1 <= budget.jobs <= jobs
    assert limits.PARENT + budget.jobs * per_worker <= limit
