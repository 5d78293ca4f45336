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
