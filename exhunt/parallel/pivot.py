"""The triage pivot pass: every text log of every host scanned again for the attacker's indicators.

Runs after the detections (``api.assess``), only when triage is on and the findings give
indicators (a clean host costs nothing). The indicators' patterns are compiled once into a
database shipped with the triage plan (``TriagePlan.pivot``) to the same pool as the first pass
(``--jobs``, ``--scheduler``, byte ranges of big logs); each worker parses and stores the lines
that hold an indicator and that the first pass did not store (``w3c_fast.W3cEngine._pivot``).

Pivot rows live in parts named ``p-…``: a rerun (``--resume`` included) deletes them all first and
does the pass again, since new evidence can bring new indicators to every old file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exhunt.artifacts import RANGE_ARTIFACTS, linefilter
from exhunt.artifacts.linefilter import TriagePlan
from exhunt.events.schema import TABLES
from exhunt.events.store import add_new_parts, parts_of
from exhunt.evidence.base import EvidenceFile
from exhunt.parallel import ranges
from exhunt.parallel.pool import WHOLE_AT_MOST, PoolOptions, WarmPool, balanced
from exhunt.parallel.pool import run as run_units
from exhunt.parallel.units import PIVOT_PREFIX, PivotUnit, Unit, file_key, pivot_part
from exhunt.progress import Progress
from exhunt.worker import ScannerArgs

if TYPE_CHECKING:
    import duckdb

PREFIX = PIVOT_PREFIX
BATCH_FILES = 256
BATCH_BYTES = 64 << 20
# Without the first pass's workers (kept alive for this pass), below this many bytes of text logs the
# pass runs in the scan process: it reads about 150-250 MB/s in one process, and starting a spawned
# pool (each worker imports exhunt) took 2-3 s on the shared 2-core machine (216 MB bench corpus:
# 0.8-1.5 s in process, 3.0-3.6 s with 2 new workers). Measured before workers forked from a server.
IN_PROCESS_BYTES = 512 << 20


def drop_parts(store: Path) -> None:
    """Delete every pivot part (each run does the pass again)."""
    for table in TABLES:
        for path in (store / table).glob(f"host=*/{PREFIX}*.parquet") if (store / table).exists() else ():
            path.unlink()


def make_units(logs: list[tuple[str, EvidenceFile, str]], options: PoolOptions, round_: int = 1) -> list[PivotUnit]:
    """Small logs of one host batched, big seekable logs cut in the first pass's byte ranges when whole
    logs would leave the workers unevenly loaded, a log is over ``WHOLE_AT_MOST`` or the units go to a
    cluster (as the first pass decides: planning the ranges reads every byte of a log in this process,
    ~0.3 ms a MB, while a whole log's gate skips it in a worker)."""
    uneven = bool(options.scheduler) or not balanced([f.size for _, f, _ in logs], options.jobs)
    units: list[PivotUnit] = []
    batch: list[tuple[EvidenceFile, str]] = []
    host, size = "", 0

    def flush() -> None:
        if batch:
            files = tuple(f for f, _ in batch)
            units.append(PivotUnit(host, files, tuple(a for _, a in batch),
                                   pivot_part(host, str(round_), *map(file_key, files))))
            batch.clear()

    for h, file, artifact in logs:
        if (uneven or file.size > WHOLE_AT_MOST) and ranges.splittable(file, options.split_size) == artifact:
            planned = ranges.plan_ranges(file, h, artifact, options.split_size, options.chunk,
                                         RANGE_ARTIFACTS[artifact][1].field_sep)
            if len(planned) > 1:
                units.extend(PivotUnit(h, (file,), (artifact,),
                                       pivot_part(h, str(round_), file_key(file), "range", str(r.index)), r)
                             for r in planned)
                continue
        if batch and (h != host or len(batch) >= BATCH_FILES or size + file.size > BATCH_BYTES):
            flush()
            size = 0
        host = h
        batch.append((file, artifact))
        size += file.size
    flush()
    units.sort(key=lambda u: u.size, reverse=True)
    return units


def run_pass(store: Path, logs: list[tuple[str, EvidenceFile, str]], plan: TriagePlan, patterns: list[str],
             options: PoolOptions, advance: Callable[[int], None] = lambda n: None,
             scanner_args: ScannerArgs = (None, 0, False), searched: list[str] | None = None,
             round_: int = 1, warm: WarmPool | None = None) -> dict[str, Any]:
    """One round: scan ``logs`` (host, file, artifact) for ``patterns``, skipping the lines of the
    first pass and of ``searched`` (earlier rounds' patterns); the round's counts. ``warm``: the
    first pass's workers, when they are still running."""
    start = time.perf_counter()
    compiled = linefilter.compile_patterns(patterns)
    before = linefilter.compile_patterns(searched).blob if searched else None
    settings = options.settings
    chunk, memory = (settings[0], settings[1]) if settings is not None else (options.chunk, None)
    pivot_options = replace(options, settings=(chunk, memory, None,  # no EVTX, no file hashes in this pass
                                               replace(plan, pivot=compiled.blob, searched=before), False))
    pooled = warm is not None and warm.started
    if options.scheduler is None and not pooled and sum(f.size for _, f, _ in logs) < IN_PROCESS_BYTES:
        pivot_options = replace(pivot_options, jobs=1)  # starting a pool costs more than the pass
    units: list[Unit] = list(make_units(logs, pivot_options, round_))
    results = run_units(units, {}, store, pivot_options, scanner_args, advance, warm)
    return {"files": len({(h, f.root, f.rel) for h, f, _ in logs}), "rows": sum(r.events for r in results),
            "patterns": len(compiled.patterns), "seconds": time.perf_counter() - start}


VIEWED = ("events", "warnings")  # the tables a pass adds parts to
ROUNDS = 3  # the second finds the rows of what only the attacker's rows name (SIDs); a third is spare


def run_rounds(con: duckdb.DuckDBPyConnection, store: Path, work: Sequence[Any], plan: TriagePlan,
               options: PoolOptions, scanner_args: ScannerArgs,
               indicators: Callable[[], tuple[dict[str, int], list[str]]], progress: bool,
               warm: WarmPool | None = None, grew: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Rounds of the pass until ``indicators`` (counts per kind, patterns; read from the store as it
    stands) gives no new pattern: the report for ``rules.triage.pivot``. ``work``: the scan's
    HostWork (host, files); ``warm``: the first pass's workers, when they are still running;
    ``grew``: called when a round's rows are in ``con`` (the store may be final from then on)."""
    report: dict[str, Any] = {"indicators": {}, "rounds": 0, "files": 0, "rows": 0, "patterns": 0, "seconds": 0.0}
    searched: list[str] = []
    logs = text_logs(con, work)
    if not logs:  # web roots or event logs only: the indicators (0.15 s over 7,300 page hits) serve nothing
        return {**report, "reason": "no text log to search"}
    for round_ in range(1, ROUNDS + 1):
        report["indicators"], patterns = indicators()
        new = [p for p in patterns if p not in set(searched)]
        if not new:
            break
        known = [p for table in VIEWED for p in parts_of(store, table)]
        with Progress(enabled=progress) as bars:
            bar = bars.task(f"pivot pass {round_}", total=sum(f.size for _, f, _ in logs))
            done = run_pass(store, logs, plan, new, options, partial(bars.advance, bar), scanner_args, searched,
                            round_, warm)
        add_new_parts(con, store, VIEWED, known)
        grew()  # warnings too may have come in, with no row
        searched += new
        report.update(rounds=round_, files=done["files"], rows=report["rows"] + done["rows"],
                      patterns=len(searched), seconds=report["seconds"] + done["seconds"])
        if not done["rows"]:
            break  # the store is as it was: the indicators are too
    report["seconds"] = round(report["seconds"], 3)
    if not report["rounds"]:
        report["reason"] = "no finding gives an attacker indicator"
    return report


def text_logs(con: duckdb.DuckDBPyConnection, work: Sequence[Any]) -> list[tuple[str, EvidenceFile, str]]:
    """(host, file, artifact) of every text log the first pass parsed with the triage engine."""
    by_key = {(h, p): a for h, p, a in con.execute(
        "SELECT DISTINCT host, path, artifact FROM files WHERE list_contains(?, artifact)",
        [sorted(RANGE_ARTIFACTS)]).fetchall()}
    return [(hw.host, f, by_key[(hw.host, f.rel)]) for hw in work for f in hw.files if (hw.host, f.rel) in by_key]
