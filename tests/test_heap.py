"""What a scan keeps to its end is left out of full collections while it runs, and handed back after."""

from __future__ import annotations

import gc

from exhunt.heap import YOUNG, long_lived


def test_kept_objects_leave_the_collector_until_the_end() -> None:
    before = gc.get_freeze_count()
    with long_lived() as keep:
        listing = [{"path": f"p{i}"} for i in range(1000)]
        keep()
        assert gc.get_freeze_count() >= before + len(listing)
    assert gc.get_freeze_count() == 0 and listing


def test_young_collections_are_rarer_while_a_scan_runs_and_as_before_after() -> None:
    before = gc.get_threshold()
    with long_lived():
        assert gc.get_threshold() == (max(YOUNG, before[0]), *before[1:])
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # garbage cycles still go
    assert gc.get_threshold() == before


def test_a_scan_freezes_after_the_parse_and_unfreezes_at_its_end(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from exhunt import api
    from tests.evidence import collection as c

    folder = c.write_folder(tmp_path / "ev")
    frozen: list[int] = []
    real = api.assessed

    def spy(*a, **k):  # type: ignore[no-untyped-def]
        frozen.append(gc.get_freeze_count())
        return real(*a, **k)

    monkeypatch.setattr(api, "assessed", spy)
    api.scan([folder], api.ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False))
    assert frozen and frozen[0] > 1000 and gc.get_freeze_count() == 0
