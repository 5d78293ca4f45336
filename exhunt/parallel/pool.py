"""Run work units on a process pool with a hung-file watchdog; merge split files. Workers start as
``startmethod`` says (forked from a fork server on Linux, else spawned).

Workers note each file they start in a shared-memory slot (``units.FileSlots``). A file still
running after ``file_timeout`` seconds (pyevtx-rs can spin forever on some corrupt EVTX, inside
Rust where no Python signal reaches it) gets its worker killed from outside; the pool is then
broken, so it is restarted with the units that had not finished (each first deletes its own
partial parts: part names are deterministic), minus the hung file, which becomes a warning row.
Nothing else is lost.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import pickle
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from exhunt.events.store import StoreWriter
from exhunt.evidence.base import EvidenceFile
from exhunt.parallel import ranges
from exhunt.parallel.evtx_ranges import plan_evtx_ranges
from exhunt.parallel.startmethod import environment, worker_context
from exhunt.parallel.units import (
    RANGE_ARTIFACTS,
    EvtxRangeUnit,
    FileSlots,
    FilesUnit,
    PivotUnit,
    RangeUnit,
    Unit,
    UnitResult,
    WholeUnit,
    WorkerSettings,
    current_settings,
    file_key,
    init_worker,
    part_name,
    pivot_part,
    preload_worker,
    ready_for_pivot,
    remove_parts,
    run_configured,
    run_unit,
    run_units,
    started_label,
    warm_worker,
)
from exhunt.worker import FileResult, ScannerArgs

DEFAULT_FILE_TIMEOUT = 600.0


@dataclass(frozen=True)
class PoolOptions:
    jobs: int = 1
    split_size: int = ranges.DEFAULT_SPLIT_SIZE
    chunk: int = 16 << 20
    file_timeout: float = DEFAULT_FILE_TIMEOUT
    settings: WorkerSettings | None = None  # (engine chunk, DuckDB memory limit, EVTX literals) per worker
    hook: str | None = None  # ``module:function`` run in each worker at start (plugins, tests)
    scheduler: str | None = None  # Dask scheduler address: run the units on that cluster instead
    roots: tuple[str, ...] = ()  # evidence roots every Dask worker must see


def make_units(batches: Sequence[tuple[list[EvidenceFile], str]], options: PoolOptions) -> tuple[
        list[Unit], dict[str, tuple[str, list[str]]]]:
    """Whole-file batches, and for each big seekable text log or EVTX file its ranges plus a
    whole-file pass, when whole files would leave the workers unevenly loaded (``balanced``), the
    file is over ``WHOLE_AT_MOST`` or the units go to a Dask cluster. Returns the units and, per split
    file, (whole part, range parts) keyed by the merged part name."""
    batches = list(batches)
    # a cluster's workers are not known here (often many more than --jobs): its big files always split
    uneven = bool(options.scheduler) or not balanced([sum(f.size for f in fs) for fs, _ in batches], options.jobs)
    units: list[Unit] = []
    splits: dict[str, tuple[str, list[str]]] = {}
    for files, host in batches:
        whole_files = []
        for f in files:
            planned = _ranges(f, host, options) if uneven or f.size > WHOLE_AT_MOST else []
            if len(planned) > 1:
                _add_split(units, splits, f, host, planned)
            else:
                whole_files.append(f)
        if whole_files:
            units.append(FilesUnit(host, tuple(whole_files), part_name(host, *map(file_key, whole_files))))
    units.sort(key=lambda u: u.size, reverse=True)  # largest first: no big unit left alone at the end
    return units, splits


# a file bigger than this is split however even the load: a unit of minutes would meet the hung-file
# watchdog (--file-timeout) and, killed, lose more than a range
WHOLE_AT_MOST = 1 << 30


def _ranges(file: EvidenceFile, host: str, options: PoolOptions) -> Sequence[RangeUnit | EvtxRangeUnit]:
    """The ranges of a big text log or EVTX file (none for any other file)."""
    artifact = ranges.splittable(file, options.split_size)
    if artifact:
        return ranges.plan_ranges(file, host, artifact, options.split_size, options.chunk,
                                  RANGE_ARTIFACTS[artifact][1].field_sep)
    return plan_evtx_ranges(file, host, options.split_size)


def _add_split(units: list[Unit], splits: dict[str, tuple[str, list[str]]], file: EvidenceFile, host: str,
               planned: Sequence[RangeUnit | EvtxRangeUnit]) -> None:
    whole = ranges.whole_unit(file, host)
    units.extend(planned)
    units.append(whole)
    splits[part_name(host, file_key(file), "merged")] = (whole.part, [u.part for u in planned])


BALANCED = 1.15  # of an even share: the busiest worker's bytes when whole files are balanced enough


def balanced(sizes: list[int], jobs: int) -> bool:
    """Whether whole units, largest first each to the least loaded worker, leave no worker with more
    than ``BALANCED`` times an even share. A split file costs a second read (its hashing unit reads it
    again) and each range its own start: 16 EVTX files of 178 MB on 2 workers took 4.3 s split against
    3.9 s whole, 8 IIS logs of 62 MB in 16 MB ranges 1.65-1.75 s against 1.35-1.40 (1 job: 2.50 against
    2.23), while one EVTX file of 2.8 GB took 4.3 s split against 6.7 s whole, one worker idle."""
    total = sum(sizes)
    if jobs <= 1 or not total:
        return True
    loads = [0] * jobs
    for size in sorted(sizes, reverse=True):
        heapq.heapreplace(loads, loads[0] + size)
    return max(loads) <= BALANCED * total / jobs


def run(units: list[Unit], splits: dict[str, tuple[str, list[str]]], store: Path, options: PoolOptions,
        scanner_args: ScannerArgs, advance: Callable[[int], None], warm: WarmPool | None = None,
        submitted: Callable[[], None] = lambda: None,
        unit_done: Callable[[str, str], None] | None = None) -> list[FileResult]:
    """Run every unit, then merge split files; returns one FileResult per file parsed. ``warm``: workers
    started earlier (else started here when the units need a pool); ``submitted``: called once the
    workers (a pool or a cluster) have every unit, so the caller's own work waits for that;
    ``unit_done(host, part)``: a unit of the first pass ended well and its parts are final (a split
    file's too: its ranges write rows, its whole-file pass the ``files`` row; their warnings and facts
    come back here and go to the merged part, written after the pass)."""
    done = _run_units(units, store, options, scanner_args, advance, warm, submitted, unit_done)
    split_parts = {p for whole, parts in splits.values() for p in (whole, *parts)}
    results = [f for part, r in done.items() if part not in split_parts for f in r.files]
    for merged, (whole, parts) in splits.items():
        host = next(u.host for u in units if u.part == whole)
        results.append(ranges.merge([done[p] for p in parts if p in done], done.get(whole), store, host, merged))
    return results


class WarmPool:
    """Worker processes started as soon as the scan knows it needs them (before the listing when the
    evidence looks like several files, ``start_ahead``; else after it), before it has its units:
    spawn and imports (1.8-2.5 s until both workers were ready on a loaded 2-core machine, on the
    critical path) overlap the listing and building the rules and prefilters in this process.
    ``configure`` hands the workers the rules, settings and hook through a file named with each task
    (a path, not initializer arguments: a blob bigger than a pipe's buffer makes the parent wait for
    each new worker in turn); a worker applies it at the first task that names it (``preload``: at
    once). The workers outlive a pass that ended well (``give_back``): the pivot pass runs on them
    with its own configuration instead of starting a pool again. Fresh workers after a hung file's
    kill are started the same way."""

    def __init__(self) -> None:
        self.jobs = 0
        self.folder: Path | None = None
        self.config = ""  # the configuration file of the current pass
        self._configs = 0
        self._blob: bytes | None = None  # the rules last written to rules.bin
        self._payload = b""  # the current configuration file's bytes
        self._executor: ProcessPoolExecutor | None = None
        self._report: Any = None
        self._ahead: Future[None] | None = None  # start_ahead's work on its thread

    def __enter__(self) -> WarmPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def started(self) -> bool:
        return self.folder is not None

    def start(self, jobs: int) -> None:
        """Spawn ``jobs`` workers now (``--jobs 1`` runs its scan in this process and starts none: see
        ``api.start_workers``; one worker for a lone unit, under the hung-file watchdog)."""
        self._wait_ahead()
        if jobs < 1 or self.started:
            return
        self.folder = Path(tempfile.mkdtemp(prefix="exhunt-pool-"))
        self._start(jobs)

    def start_ahead(self, jobs: int, scanner_args: ScannerArgs, settings: WorkerSettings | None,
                    hook: str | None) -> None:
        """``start``, ``configure`` and ``preload`` on a thread: spawning waits for the fork server's
        imports, which the caller's own work (the listing) need not. Every other method waits for
        that thread first and raises what it raised."""
        if jobs <= 1 or self.started:
            return
        self.folder = Path(tempfile.mkdtemp(prefix="exhunt-pool-"))

        def ahead() -> None:
            self._start(jobs)
            self._configure(scanner_args, settings, hook)
            self._preload()

        thread = ThreadPoolExecutor(1, thread_name_prefix="exhunt-pool-start")
        self._ahead = thread.submit(ahead)
        thread.shutdown(wait=False)  # the thread ends with ``ahead``

    def _wait_ahead(self) -> None:
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            ahead.result()

    def _start(self, jobs: int) -> None:
        self.jobs = jobs
        self._executor, self._report = self._spawn()
        for _ in range(jobs):  # every worker now: the executor spawns one per submit it cannot place
            self._executor.submit(int)

    def configure(self, scanner_args: ScannerArgs, settings: WorkerSettings | None, hook: str | None) -> None:
        """The configuration of the next pass; the same as the current one (the parse after
        ``start_ahead``) keeps it: workers that applied it do not load the rules again."""
        self._wait_ahead()
        self._configure(scanner_args, settings, hook)

    def _configure(self, scanner_args: ScannerArgs, settings: WorkerSettings | None, hook: str | None) -> None:
        assert self.folder is not None, "start() first"
        blob, max_size, scan_logs = scanner_args
        new_rules = False
        if isinstance(blob, bytes):
            rules = self.folder / "rules.bin"
            if blob != self._blob:
                rules.write_bytes(blob)
                self._blob, new_rules = blob, True
            scanner_args = (rules, max_size, scan_logs)
        payload = pickle.dumps((scanner_args, settings, hook, environment()))
        if self.config and payload == self._payload and not new_rules:
            return
        self._configs += 1
        self._payload = payload
        temp = self.folder / "config.tmp"
        temp.write_bytes(payload)
        self.config = str(self.folder / f"config-{self._configs}.pickle")
        os.replace(temp, self.config)  # whole or absent for a worker that looks

    def preload(self) -> None:
        """Each held worker applies the current configuration now and builds its content scanner
        (``units.preload_worker``), before any unit arrives; not awaited (a failure comes back at
        the first unit, which applies the configuration the same way)."""
        self._wait_ahead()
        self._preload()

    def _preload(self) -> None:
        assert self.config and self._executor is not None, "start() and configure() first"
        for _ in range(self.jobs):
            self._executor.submit(preload_worker, self.config)

    def take(self) -> tuple[ProcessPoolExecutor, Any]:
        """The started workers and their report queue (fresh ones when none are held: after a pool
        broken by a killed worker); the caller shuts them down or gives them back."""
        self._wait_ahead()
        if self._executor is not None:
            taken = self._executor, self._report
            self._executor = self._report = None
            return taken
        return self._spawn()

    def give_back(self, executor: ProcessPoolExecutor, report: Any) -> None:
        """Workers of a pass that ended well, kept for the next pass (shut down by ``close``)."""
        assert self._executor is None
        self._executor, self._report = executor, report

    def ready_for_pivot(self) -> None:
        """Have each held worker fault in its pivot-pass read buffer now (``units.ready_for_pivot``),
        while this process runs the detections and the workers would idle: a fresh 16 MiB buffer
        cost each worker ~30 ms of page faults at the pass's first unit. Not awaited."""
        if self._executor is not None:
            for _ in range(self.jobs):
                self._executor.submit(ready_for_pivot)

    def release(self) -> None:
        """Shut down the held workers now (no later pass will use them: their memory goes back);
        a later pass would start fresh ones, as after a killed worker."""
        with contextlib.suppress(Exception):  # a failed start ahead holds no workers; its error was raised or is moot
            self._wait_ahead()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._report.close()
            self._executor = self._report = None

    def close(self) -> None:
        self.release()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _spawn(self) -> tuple[ProcessPoolExecutor, Any]:
        assert self.folder is not None
        context = worker_context()
        report = FileSlots(context, self.jobs)
        executor = ProcessPoolExecutor(max_workers=self.jobs, mp_context=context, initializer=warm_worker,
                                       initargs=(report,))
        return executor, report


def _run_units(units: list[Unit], store: Path, options: PoolOptions, scanner_args: ScannerArgs,
               advance: Callable[[int], None], warm: WarmPool | None,
               submitted: Callable[[], None],
               unit_done: Callable[[str, str], None] | None = None) -> dict[str, UnitResult]:
    done: dict[str, UnitResult] = {}
    if options.scheduler:
        return _run_on_dask(units, store, options, scanner_args, advance, submitted, unit_done)
    # --jobs 1: in this process, simple and debuggable, but no hung-file watchdog. One unit with more
    # jobs still goes to a worker: a single suspicious EVTX given alone is where a parser can spin
    if options.jobs <= 1 or not units:
        saved = current_settings()  # the same chunking and EVTX chunks as pool workers: same rows
        init_worker(scanner_args, None, options.settings, options.hook)
        try:
            for unit in units:
                done[unit.part] = run_unit(unit, str(store))
                advance(unit.size)
        finally:
            init_worker((None, 0, False), settings=saved)
        return done
    with contextlib.ExitStack() as stack:
        if warm is None or not warm.started:
            warm = stack.enter_context(WarmPool())
            warm.start(min(options.jobs, len(units)))
        warm.configure(scanner_args, options.settings, options.hook)
        return _run_pool(units, store, options, warm, advance, submitted, unit_done)


def _run_pool(units: list[Unit], store: Path, options: PoolOptions, warm: WarmPool,
              advance: Callable[[int], None], submitted: Callable[[], None],
              unit_done: Callable[[str, str], None] | None = None) -> dict[str, UnitResult]:
    done: dict[str, UnitResult] = {}
    pending = {u.part: u for u in units}
    while pending:
        executor, report = warm.take()
        hung: list[tuple[str, str]] = []
        ended_well = False
        try:
            with contextlib.closing(_Watch(report, pending)) as watch:
                futures: dict[Future[UnitResult], str] = {}
                for part, unit in pending.items():
                    remove_parts(store, part)
                    futures[executor.submit(run_configured, warm.config, unit, str(store))] = part
                submitted()
                while futures and not hung:
                    finished, _ = wait(futures, timeout=min(1.0, max(0.05, options.file_timeout / 4)),
                                       return_when=FIRST_COMPLETED)
                    for future in finished:
                        part = futures.pop(future)
                        try:
                            done[part] = future.result()
                        except BrokenProcessPool:
                            continue
                        unit = pending.pop(part)
                        advance(unit.size)
                        watch.finished(part)
                        if unit_done is not None and not isinstance(unit, PivotUnit):
                            unit_done(unit.host, part)
                    now = time.time()
                    for pid, (part, rel, started) in watch.running().items():
                        if part not in pending:  # a report of an earlier pass on these workers
                            continue
                        if options.file_timeout > 0 and now - started > options.file_timeout:
                            hung.append((part, rel))
                            _kill(pid)
                if hung:
                    executor.shutdown(wait=True, cancel_futures=True)
                    for future, part in futures.items():  # finished between the last wait and the kill
                        if future.done() and not future.cancelled() and future.exception() is None:
                            done[part] = future.result()
                            advance(pending.pop(part).size)
            ended_well = not hung and not pending
        finally:
            if ended_well:
                warm.give_back(executor, report)
            else:
                executor.shutdown(wait=True, cancel_futures=True)
                report.close()
        for part, rel in hung:
            if part not in pending:
                continue
            unit = pending.pop(part)
            remove_parts(store, part)
            rest = _without(unit, rel)
            if rest is not None:
                pending[rest.part] = rest
            key, result = _timed_out(unit, rel, options.file_timeout, store)
            done[key] = result
            advance(unit.size - (rest.size if rest is not None else 0))
    return done


class _Watch:
    """Which file each worker is on (``FileSlots``), minus the units that have finished."""

    def __init__(self, slots: FileSlots, pending: dict[str, Unit]) -> None:
        self._slots = slots
        self._pending = pending
        self._finished: set[str] = set()

    def running(self) -> dict[int, tuple[str, str, float]]:
        """pid -> (unit part, file, start time); the file is named as ``_without`` and ``_timed_out``
        expect it (``started_label``)."""
        out = {}
        for pid, (part, index, started) in self._slots.running().items():
            if part not in self._finished:
                unit = self._pending.get(part)
                out[pid] = (part, started_label(unit, index) if unit is not None else "", started)
        return out

    def finished(self, part: str) -> None:
        self._finished.add(part)

    def close(self) -> None:
        """Nothing to stop: the slots are read when the pool checks the time."""


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):  # already gone
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))  # SIGTERM is TerminateProcess on Windows


def _without(unit: Unit, rel: str) -> Unit | None:
    """The unit minus its hung file (the other files of a batch run again in a new part)."""
    if isinstance(unit, PivotUnit) and unit.window is None:
        kept = [(f, a) for f, a in zip(unit.files, unit.artifacts, strict=True) if f.rel != rel]
        if not kept:
            return None
        files = tuple(f for f, _ in kept)
        return replace(unit, files=files, artifacts=tuple(a for _, a in kept),
                       part=pivot_part(unit.part, *map(file_key, files)))
    if not isinstance(unit, FilesUnit):
        return None
    files = tuple(f for f in unit.files if f.rel != rel)
    return replace(unit, files=files, part=part_name(unit.host, *map(file_key, files))) if files else None


def _timed_out(unit: Unit, rel: str, timeout: float, store: Path) -> tuple[str, UnitResult]:
    """The hung file as data: one warning row (merged with a split file's other units, else written
    to a part of its own). Returns the key of the result and the result."""
    if isinstance(unit, RangeUnit | EvtxRangeUnit):
        path, where = unit.file.rel, f" (bytes {unit.start}-{unit.end} not parsed)"
    elif isinstance(unit, WholeUnit):
        path, where = unit.file.rel, " (not hashed or content-scanned)"
    else:
        path, where = rel, ""
    message = f"parsing stopped after the --file-timeout of {timeout:g} s: file skipped{where}"
    row = {"host": unit.host, "artifact": "files", "path": path, "line": None, "offset": None, "message": message}
    if isinstance(unit, RangeUnit | EvtxRangeUnit | WholeUnit):
        return unit.part, UnitResult(unit.part, [FileResult(path, None, 0, 0, 0)], [row], [], 1)
    named = pivot_part if isinstance(unit, PivotUnit) else part_name  # pivot parts are redone every run
    part = named(unit.host, *(file_key(f) for f in unit.files if f.rel == path), path, "timeout")
    with StoreWriter(store, unit.host, part=part) as writer:
        writer.add("warnings", row)
    return part, UnitResult(part, [FileResult(path, None, 0, 0, 1)])


def _run_on_dask(units: list[Unit], store: Path, options: PoolOptions, scanner_args: ScannerArgs,
                 advance: Callable[[int], None], submitted: Callable[[], None],
                 unit_done: Callable[[str, str], None] | None = None) -> dict[str, UnitResult]:
    """The same units on a Dask cluster (exhunt.cluster). No hung-file watchdog there: Dask's own
    worker lifetime settings are the place for that."""
    from exhunt.cluster import DaskExecutor

    done: dict[str, UnitResult] = {}
    with DaskExecutor(options.scheduler or "", scanner_args, store, list(options.roots), options.settings) as pool:
        futures = {pool.submit(run_units, group, str(store)): group for group in dask_tasks(units, pool.slots)}
        submitted()
        for future in as_completed(futures):
            for unit, result in zip(futures[future], future.result(), strict=True):
                done[unit.part] = result
                advance(unit.size)
                if unit_done is not None and not isinstance(unit, PivotUnit):
                    unit_done(unit.host, unit.part)
    return done


PIVOT_UNITS_PER_TASK = 4


def dask_tasks(units: list[Unit], slots: int) -> list[list[Unit]]:
    """The units as Dask tasks: one each, but the pivot pass's in fours (a pivot unit's gate reads a
    log in ~35 ms, and a Dask task costs its worker ~5 ms between tasks: 2 GB of logs took 0.83 s
    there against 0.6 s in the pool), while every slot still gets four tasks or more."""
    pivot: list[Unit] = [u for u in units if isinstance(u, PivotUnit)]
    size = max(1, min(PIVOT_UNITS_PER_TASK, len(pivot) // (4 * max(1, slots))))
    tasks: list[list[Unit]] = [[u] for u in units if not isinstance(u, PivotUnit)]
    tasks += [pivot[i : i + size] for i in range(0, len(pivot), size)]
    return tasks
