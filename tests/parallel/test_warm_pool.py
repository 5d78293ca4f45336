"""The worker pool starts right after listing, so its start-up overlaps building the rules and
prefilters; its workers get the rules, settings and hook when their first unit arrives."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from exhunt import api
from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.parallel import limits


def _children_when_prefilter_built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    real = api.triage_plan

    def spy(options: ScanOptions):  # type: ignore[no-untyped-def]
        seen.append(len(multiprocessing.active_children()))
        return real(options)

    monkeypatch.setattr(api, "triage_plan", spy)
    return seen


def test_workers_run_before_the_prefilter_is_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ev = tmp_path / "exch01"
    generate(ev, DemoSpec(days=1, per_day=50))
    seen = _children_when_prefilter_built(monkeypatch)
    record = tmp_path / "chunk.txt"
    monkeypatch.setenv("EXHUNT_TEST_CHUNK_FILE", str(record))
    limit = 600 << 20  # two workers, and an engine chunk other than the default
    result = scan([ev], ScanOptions(out=tmp_path / "case", jobs=2, quiet=True, html_report=False,
                                    memory_limit=limit, worker_hook="tests.parallel.settings_hook:record"))
    assert seen and seen[0] >= 2
    assert result.document.hosts[0].coverage.files > 1
    # the hook ran in a worker after the settings were applied there
    assert int(record.read_text()) == limits.budget(limit, 2).chunk
    assert multiprocessing.active_children() == []


def test_one_file_starts_no_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "evidence" / "a.aspx"
    page.parent.mkdir()
    page.write_bytes(b"<%@ Page Language=\"C#\" %>hello")
    seen = _children_when_prefilter_built(monkeypatch)
    scan([page.parent], ScanOptions(out=tmp_path / "case", jobs=2, quiet=True, html_report=False))
    assert seen == [0]


def test_many_small_files_per_unit_do_not_stall_the_pool(tmp_path: Path) -> None:
    """Each file's start report crosses a pipe: thousands of them per unit must not fill it and leave
    a worker waiting at exit (the pool's shutdown then waited forever)."""
    import threading

    from exhunt.evidence import open_evidence
    from exhunt.parallel.pool import PoolOptions, run
    from exhunt.parallel.units import FilesUnit

    folder = tmp_path / "pages"
    folder.mkdir()
    for n in range(3000):
        (folder / f"p{n}.htm").write_bytes(b"<html>%d</html>" % n)
    files = list(open_evidence(folder).files(lambda rel, message: None))
    units: list = [FilesUnit("h", tuple(files[:1500]), "a"), FilesUnit("h", tuple(files[1500:]), "b")]
    results: list = []
    thread = threading.Thread(target=lambda: results.extend(
        run(units, {}, tmp_path / "store", PoolOptions(jobs=2), (None, 0, False), lambda n: None)), daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the pool did not finish"
    assert len(results) == 3000


def test_the_pivot_pass_runs_on_the_first_pass_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers that parsed the evidence also run the pivot pass (their own configuration, the
    indicators' database): no second pool start, and none of that pass in the scan process."""
    from exhunt.parallel import pivot, pool

    spawned: list[int] = []
    real_spawn = pool.WarmPool._spawn

    def counting_spawn(self):  # type: ignore[no-untyped-def]
        spawned.append(1)
        return real_spawn(self)

    passes: list[tuple[int, bool]] = []
    real_run = pivot.run_units

    def spy(units, splits, store, options, scanner_args, advance, warm=None):  # type: ignore[no-untyped-def]
        passes.append((options.jobs, warm is not None and warm._executor is not None))
        return real_run(units, splits, store, options, scanner_args, advance, warm)

    monkeypatch.setattr(pool.WarmPool, "_spawn", counting_spawn)
    monkeypatch.setattr(pivot, "run_units", spy)
    generate(tmp_path / "evidence", DemoSpec(days=2, per_day=200))
    result = scan([tmp_path / "evidence"], ScanOptions(out=tmp_path / "case", host="EXCH01", jobs=2, quiet=True,
                                                       html_report=False))
    report = result.document.rules["triage"]["pivot"]
    assert report["rounds"] >= 1 and report["rows"] > 0, report
    assert passes and all(jobs == 2 and held for jobs, held in passes), passes
    assert spawned == [1]
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize(("index", "kept"), [("triage", True), ("full", False)])
def test_workers_outlive_the_parse_only_for_a_pivot_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         index: str, kept: bool) -> None:
    """--index full has no pivot pass: its workers stop before the detections (their memory back)."""
    seen: list[int] = []
    real = api.assessed

    def spy(*a, **k):  # type: ignore[no-untyped-def]
        seen.append(len(multiprocessing.active_children()))
        return real(*a, **k)

    monkeypatch.setattr(api, "assessed", spy)
    generate(tmp_path / "evidence", DemoSpec(days=1, per_day=100))
    scan([tmp_path / "evidence"], ScanOptions(out=tmp_path / "case", host="EXCH01", jobs=2, quiet=True,
                                              html_report=False, index=index))
    assert (seen[0] >= 2) is kept, seen
