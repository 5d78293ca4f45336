"""Where an EVTX scan's time goes: the profile bench_sigma.py prints under its table.

Two views, both timed by wrapping the pipeline's own functions (no profiler, so Python-heavy parts
are not inflated):

* ``scan_phases``: the stages of ``api.scan`` (listing, custody, rule loading, parsing in the
  workers, each detection engine, the mailbox impact, the documents), wall seconds;
* ``worker_split``: what the per-file work is made of, from a ``--jobs 1`` scan, where the units
  run in the bench process: the EVTX parser's chunk filter, record mapping, the rest of the EVTX
  artifact, and the per-file work outside the parser (open, read + hash, inventory row, store).

Functions a later version renames are skipped, never an error: the profile explains, it does not
gate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Timings = dict[str, float]


@contextmanager
def _wrapped(targets: list[tuple[Any, str, str]], timings: Timings) -> Iterator[Timings]:
    """Replace ``owner.attr`` by a timer adding into ``timings[label]``; restored on exit."""
    saved: list[tuple[Any, str, Any]] = []
    for owner, attr, label in targets:
        original = owner.__dict__.get(attr) if isinstance(owner, type) else getattr(owner, attr, None)
        if original is None:
            continue
        function = original.__func__ if isinstance(original, classmethod) else original

        def timer(*args: Any, _f: Callable[..., Any] = function, _l: str = label, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _f(*args, **kwargs)
            finally:
                timings[_l] = timings.get(_l, 0.0) + time.perf_counter() - start

        setattr(owner, attr, classmethod(timer) if isinstance(original, classmethod) else timer)
        saved.append((owner, attr, original))
    try:
        yield timings
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


@contextmanager
def scan_phases() -> Iterator[Timings]:
    from exhunt import api
    from exhunt.detections import runner
    from exhunt.events.preload import PartLoader
    from exhunt.evidence import custody

    timings: Timings = {}
    engines = runner.ENGINES
    runner.ENGINES = tuple((name, _timed_engine(name, engine, timings)) for name, engine in engines)
    targets = [
        (api, "run_detections", "detections: every engine (side by side with --jobs > 1)"),
        (api, "plan", "list the evidence"),
        (custody, "record_inputs", "custody: hash every input (main process)"),
        (api, "event_filter", "EVTX chunk filter: the Sigma rules (disk cache, else parse + convert)"),
        (api, "triage_plan", "text-log prefilter: gather patterns (first Sigma parse), load/compile Hyperscan"),
        (api, "parse_all", "parse + store in the workers (start-up included)"),
        (api, "assess_impact", "mailbox impact"),
        (api, "connect", "assess: open the store (its small tables copied into DuckDB)"),
        (PartLoader, "connect", "assess: open the store (its small tables copied into DuckDB)"),
        (api, "_assess", "assess"),  # the scan's (api.assess is the re-run's entry)
        (api, "save_document", "findings.json + report.html"),
        (api, "save_html_report", "findings.json + report.html"),
    ]
    try:
        with _wrapped(targets, timings):
            yield timings
    finally:
        runner.ENGINES = engines
    inner = sum(v for k, v in timings.items() if k.startswith("detections") or k == "mailbox impact")
    timings["assess: coverage, verdict, findings table"] = max(0.0, timings.pop("assess", 0.0) - inner)


ENGINE = "engine: "  # the engines' own times: they overlap (side by side), so no stage of the sum


def engines_of(timings: Timings) -> tuple[Timings, Timings]:
    """The stages (which add up to the scan) and each engine's own wall time (which overlap)."""
    return ({k: v for k, v in timings.items() if not k.startswith(ENGINE)},
            {k[len(ENGINE):]: v for k, v in timings.items() if k.startswith(ENGINE)})


def _timed_engine(name: str, engine: Callable[..., Any], timings: Timings) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return engine(*args, **kwargs)
        finally:
            label = f"{ENGINE}{name}"
            timings[label] = timings.get(label, 0.0) + time.perf_counter() - start
    return timed


@contextmanager
def worker_split() -> Iterator[Timings]:
    from exhunt import worker
    from exhunt.artifacts import evtx, evtx_chunks
    from exhunt.events.store import StoreWriter

    timings: Timings = {}
    targets = [
        (worker, "_process", "per file, all"),
        (evtx.EvtxLog, "parse", "EVTX artifact, all"),
        (evtx_chunks.Selector, "keep", "EVTX chunk filter (Hyperscan per 64 KiB chunk, skipped chunks' times)"),
        (evtx, "evtx_event_values", "record mapping (evtx JSON -> row tuple)"),
        (StoreWriter, "close", "store: Arrow tables + Parquet parts"),
    ]
    with _wrapped(targets, timings):
        yield timings
    total, parse = timings.pop("per file, all", 0.0), timings.pop("EVTX artifact, all", 0.0)
    inner = sum(v for k, v in timings.items() if k.startswith(("EVTX chunk", "record mapping")))
    timings["EVTX parser + JSON decode + checksums (rest of the artifact)"] = max(0.0, parse - inner)
    timings["per file outside the parser: open, read + hash, inventory row"] = max(0.0, total - parse)


def table(title: str, timings: Timings, total: float) -> list[str]:
    lines = [f"| {title} | seconds | share |", "|---|---:|---:|"]
    for label, seconds in sorted(timings.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {label} | {seconds:.2f} | {seconds / total:.0%} |")
    rest = total - sum(timings.values())
    if rest > 0.005:
        lines.append(f"| other (start-up, resume bookkeeping, waits) | {rest:.2f} | {rest / total:.0%} |")
    lines.append(f"| total | {total:.2f} | 100% |")
    return lines
