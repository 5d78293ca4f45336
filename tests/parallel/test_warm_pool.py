"""The worker pool starts before the listing when the evidence looks like several files (else right
after it), so its start-up overlaps the listing and building the rules and prefilters; its workers
get the rules, settings and hook before the listing (``preload``) or when their first unit arrives."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from exhunt import api
from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.parallel import limits


def _children_when(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """The scan process's live children each time ``api.<name>`` is called."""
    seen: list[int] = []
    real = getattr(api, name)

    def spy(*a, **k):  # type: ignore[no-untyped-def]
        seen.append(len(multiprocessing.active_children()))
        return real(*a, **k)

    monkeypatch.setattr(api, name, spy)
    return seen


def test_workers_start_with_the_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several files: the workers are asked for before the listing, run by the time the parse
    starts, and got the settings and hook before the first unit."""
    from exhunt.parallel import pool

    ev = tmp_path / "exch01"
    generate(ev, DemoSpec(days=1, per_day=50))
    order: list[str] = []
    real_ahead, real_plan = pool.WarmPool.start_ahead, api.plan
    monkeypatch.setattr(pool.WarmPool, "start_ahead", lambda self, *a: (order.append("ahead"), real_ahead(self, *a)))
    monkeypatch.setattr(api, "plan", lambda *a: (order.append("plan"), real_plan(*a))[1])
    seen = _children_when(monkeypatch, "parse_all")
    record = tmp_path / "chunk.txt"
    monkeypatch.setenv("EXHUNT_TEST_CHUNK_FILE", str(record))
    limit = 600 << 20  # two workers, and an engine chunk other than the default
    result = scan([ev], ScanOptions(out=tmp_path / "case", jobs=2, quiet=True, html_report=False,
                                    memory_limit=limit, worker_hook="tests.parallel.settings_hook:record"))
    assert order == ["ahead", "plan"]
    assert seen and seen[0] >= 2
    assert result.document.hosts[0].coverage.files > 1
    # the hook ran in a worker after the settings were applied there
    assert int(record.read_text()) == limits.budget(limit, 2).chunk
    assert multiprocessing.active_children() == []


def test_one_file_starts_no_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "evidence" / "a.aspx"
    page.parent.mkdir()
    page.write_bytes(b"<%@ Page Language=\"C#\" %>hello")
    seen = _children_when(monkeypatch, "parse_all")
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
    """--index full has no pivot pass: its workers stop before the detections (their memory back);
    with triage they make their pivot-pass buffer while the detections run."""
    from exhunt.parallel import pool

    readied: list[int] = []
    real_ready = pool.WarmPool.ready_for_pivot
    monkeypatch.setattr(pool.WarmPool, "ready_for_pivot",
                        lambda self: (readied.append(self.jobs), real_ready(self)))
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
    assert readied == ([2] if kept else [])


def test_the_pivot_buffer_made_ahead_is_the_one_the_pass_reads_into() -> None:
    from exhunt.parallel import units

    units.ready_for_pivot()
    made = units._pivot_buffer()
    assert made is units._BUFFER[0] and len(made) == units.w3c_fast.CHUNK


def test_workers_load_their_rules_while_the_scan_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder of several files: the workers get the parse's configuration and build their content
    scanners before the listing starts (``WarmPool.preload``), and the parse keeps that configuration
    (the workers do not load the rules a second time)."""
    from exhunt.parallel import pool

    order: list[str] = []
    configs: list[str] = []
    real_preload, real_plan, real_run = pool.WarmPool._preload, api.plan, pool._run_pool
    real_ahead = pool.WarmPool.start_ahead

    def start_ahead(self, *a, **k):  # type: ignore[no-untyped-def]
        order.append("ahead")
        return real_ahead(self, *a, **k)

    def preload(self):  # type: ignore[no-untyped-def]
        configs.append(self.config)
        return real_preload(self)

    def plan(*a, **k):  # type: ignore[no-untyped-def]
        order.append("plan")
        return real_plan(*a, **k)

    def run_pool(units, store, options, warm, *a, **k):  # type: ignore[no-untyped-def]
        configs.append(warm.config)
        return real_run(units, store, options, warm, *a, **k)

    monkeypatch.setattr(pool.WarmPool, "_preload", preload)
    monkeypatch.setattr(pool.WarmPool, "start_ahead", start_ahead)
    monkeypatch.setattr(api, "plan", plan)
    monkeypatch.setattr(pool, "_run_pool", run_pool)
    folder = tmp_path / "web"
    (folder / "owa").mkdir(parents=True)
    for n in range(40):
        (folder / "owa" / f"p{n}.aspx").write_bytes(b'<%@ Page Language="C#" %>page ' + str(n).encode())
    result = scan([folder], ScanOptions(out=tmp_path / "case", jobs=2, quiet=True, html_report=False))
    assert result.document.hosts[0].coverage.files == 40
    assert order == ["ahead", "plan"]
    assert len(configs) == 2 and configs[0] == configs[1]  # the parse found its configuration applied


def test_a_worker_preloads_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``preload_worker`` applies the configuration and builds the scanner; the first unit with the
    same configuration applies nothing again."""
    from exhunt import worker
    from exhunt.detections.yara import load_rules
    from exhunt.parallel import units
    from exhunt.parallel.pool import WarmPool

    warm = WarmPool()
    warm.folder = tmp_path
    warm.configure((load_rules().blob, 1 << 20, False), None, None)
    applied: list[object] = []
    real_init = units.init_worker
    monkeypatch.setattr(units, "init_worker", lambda *a, **k: (applied.append(a), real_init(*a, **k)))
    saved = units._APPLIED, worker._SCANNER
    try:
        units.preload_worker(warm.config)
        assert worker._SCANNER is not None and worker._SCANNER._scanner is not None
        units._configure(warm.config)
        assert len(applied) == 1
    finally:
        units._APPLIED = saved[0]
        worker.use_scanner(saved[1])


def test_the_same_configuration_is_kept(tmp_path: Path) -> None:
    from exhunt.parallel.pool import WarmPool

    warm = WarmPool()
    warm.folder = tmp_path
    warm.configure((b"rules-1", 10, False), None, None)
    first = warm.config
    warm.configure((b"rules-1", 10, False), None, None)
    assert warm.config == first
    warm.configure((b"rules-2", 10, False), None, None)  # new rules, same file name: a new configuration
    assert warm.config != first and (tmp_path / "rules.bin").read_bytes() == b"rules-2"
    second = warm.config
    warm.configure((b"rules-2", 11, False), None, None)
    assert warm.config != second


def test_several_files_looks_only_as_far_as_it_must(tmp_path: Path) -> None:
    one = tmp_path / "one"
    (one / "a" / "b").mkdir(parents=True)
    (one / "a" / "b" / "x.txt").write_bytes(b"x")
    assert not api.several_files([one])
    (one / "a" / "y.txt").write_bytes(b"y")
    assert api.several_files([one])
    assert api.several_files([one / "a" / "y.txt", one / "a" / "b" / "x.txt"])
    assert not api.several_files([one / "a" / "y.txt"])
    deep = tmp_path / "deep"
    folder = deep
    for n in range(20):
        folder = folder / f"d{n}"
    folder.mkdir(parents=True)
    (folder / "1").write_bytes(b"")
    (folder / "2").write_bytes(b"")
    assert not api.several_files([deep])  # past the folders it looks at: a late start, not a wrong scan


def test_dask_tasks_group_pivot_units_and_keep_every_slot_busy() -> None:
    from exhunt.evidence.base import EvidenceFile
    from exhunt.parallel.pool import dask_tasks
    from exhunt.parallel.units import FilesUnit, PivotUnit

    file = EvidenceFile("directory", "/e", "u_ex1.log", 10)
    files = [FilesUnit("h", (file,), f"u-{i}") for i in range(3)]
    pivots = [PivotUnit("h", (file,), ("iis",), f"p-{i}") for i in range(37)]
    tasks = dask_tasks([*files, *pivots], slots=2)
    assert [t for t in tasks if isinstance(t[0], FilesUnit)] == [[u] for u in files]
    grouped = [t for t in tasks if isinstance(t[0], PivotUnit)]
    assert [u for t in grouped for u in t] == pivots  # every unit once, in order
    assert max(map(len, grouped)) == 4 and len(grouped) >= 8
    assert all(len(t) == 1 for t in dask_tasks(pivots[:7], slots=2))  # too few to group: a slot each
