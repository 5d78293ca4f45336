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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from exhunt.artifacts import RANGE_ARTIFACTS, linefilter
from exhunt.artifacts.linefilter import TriagePlan
from exhunt.events.schema import TABLES
from exhunt.evidence.base import EvidenceFile
from exhunt.parallel import ranges
from exhunt.parallel.pool import PoolOptions
from exhunt.parallel.pool import run as run_units
from exhunt.parallel.units import PivotUnit, Unit, file_key, part_name
from exhunt.worker import ScannerArgs

PREFIX = "p-"
BATCH_FILES = 256
BATCH_BYTES = 64 << 20


def pivot_part(*key: str) -> str:
    return PREFIX + part_name(*key).removeprefix("u-")


def drop_parts(store: Path) -> None:
    """Delete every pivot part (each run does the pass again)."""
    for table in TABLES:
        for path in (store / table).glob(f"host=*/{PREFIX}*.parquet") if (store / table).exists() else ():
            path.unlink()


def make_units(logs: list[tuple[str, EvidenceFile, str]], options: PoolOptions) -> list[PivotUnit]:
    """Small logs of one host batched, big seekable logs cut in the first pass's byte ranges."""
    units: list[PivotUnit] = []
    batch: list[tuple[EvidenceFile, str]] = []
    host, size = "", 0

    def flush() -> None:
        if batch:
            files = tuple(f for f, _ in batch)
            units.append(PivotUnit(host, files, tuple(a for _, a in batch),
                                   pivot_part(host, *map(file_key, files))))
            batch.clear()

    for h, file, artifact in logs:
        if ranges.splittable(file, options.split_size) == artifact:
            planned = ranges.plan_ranges(file, h, artifact, options.split_size, options.chunk,
                                         RANGE_ARTIFACTS[artifact][1].field_sep)
            if len(planned) > 1:
                units.extend(PivotUnit(h, (file,), (artifact,), pivot_part(h, file_key(file), "range", str(r.index)),
                                       r) for r in planned)
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
             scanner_args: ScannerArgs = (None, 0, False)) -> dict[str, Any]:
    """Scan ``logs`` (host, file, artifact) for ``patterns``; the report for ``rules.triage.pivot``."""
    start = time.perf_counter()
    drop_parts(store)
    compiled = linefilter.compile_patterns(patterns)
    settings = options.settings
    chunk, memory = (settings[0], settings[1]) if settings is not None else (options.chunk, None)
    pivot_options = replace(options, settings=(chunk, memory, None, replace(plan, pivot=compiled.blob)))
    units: list[Unit] = list(make_units(logs, pivot_options))
    results = run_units(units, {}, store, pivot_options, scanner_args, advance)
    return {"files": len({(h, f.root, f.rel) for h, f, _ in logs}), "rows": sum(r.events for r in results),
            "patterns": len(compiled.patterns), "seconds": round(time.perf_counter() - start, 3)}
