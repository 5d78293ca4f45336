"""A Dask worker's frozen glibc thresholds are raised while exhunt's unit runs, and given back."""

from __future__ import annotations

import pytest

from exhunt.parallel import heapsize


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    made: list[tuple[int, int]] = []
    monkeypatch.setattr(heapsize, "_mallopt", lambda option, value: made.append((option, value)))
    monkeypatch.delenv(heapsize.TRIM_ENV, raising=False)
    monkeypatch.delenv(heapsize.MMAP_ENV, raising=False)
    return made


def test_raised_while_scanning_then_the_workers_own(calls: list[tuple[int, int]],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(heapsize.TRIM_ENV, "65536")  # what Dask's nanny gives its workers
    with heapsize.scanning_heap() as raised:
        assert raised
        assert calls == [(heapsize.M_MMAP_THRESHOLD, 32 << 20), (heapsize.M_TRIM_THRESHOLD, 64 << 20)]
    assert calls[2:] == [(heapsize.M_MMAP_THRESHOLD, heapsize.DEFAULT_MMAP), (heapsize.M_TRIM_THRESHOLD, 65536)]


def test_given_back_when_the_unit_raises(calls: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(heapsize.MMAP_ENV, "1048576")
    with pytest.raises(RuntimeError), heapsize.scanning_heap():
        raise RuntimeError("a unit failed")
    assert calls[2:] == [(heapsize.M_MMAP_THRESHOLD, 1048576), (heapsize.M_TRIM_THRESHOLD, 128 * 1024)]


def test_left_alone_where_glibc_adjusts_them_itself(calls: list[tuple[int, int]]) -> None:
    with heapsize.scanning_heap() as raised:
        assert not raised
    assert calls == []
