"""Time the detection stage alone (``api.assess`` over a finished store) and check its findings.

Usage: .venv/bin/python bench/assess_profile.py CASE [--runs N] [--jobs N] [--checks]
       [--sigma DIR] [--yara DIR] [--save FILE | --compare FILE] EVIDENCE...

CASE is a folder a ``exhunt scan --out CASE`` wrote (scan once, then run this as often as needed).
Each run re-assesses the store and prints its wall time, the time of each engine and, with
``--checks``, of each native check and Sigma batch (one extra run with checks timed one by one).
``--save`` writes the findings' fingerprint (ids, keys, severities, confidences, counts, first and
last seen, evidence, indicators, and the hits table) and ``--compare`` fails when it differs: the
way to show a faster detection stage gives the same answer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fingerprint(document: Any, store: Path) -> dict[str, Any]:
    """What must not change: every finding's identity, numbers and evidence, and the hits table."""
    from exhunt.events.store import connect

    findings = sorted(
        [f.id, f.key, f.severity, f.confidence, f.count, f.first_seen, f.last_seen,
         [[e.path, e.source, e.line, e.record_id, e.ts, e.excerpt] for e in f.evidence],
         {k: list(v) for k, v in f.indicators.items()}]
        for f in document.findings
    )
    con = connect(store, extra_tables=("hits",))
    try:
        hits = con.execute("SELECT * FROM hits ORDER BY ALL").fetchall()
    except Exception:  # noqa: BLE001 - no hits table when nothing was found
        hits = []
    finally:
        con.close()
    digest = hashlib.sha256(repr(hits).encode()).hexdigest()
    # the built-in rules' folder names the checkout: compare the rest of the rules report
    rules = json.loads(json.dumps(document.rules, default=str).replace(str(ROOT), "<exhunt>"))
    return {"findings": findings, "hits": len(hits), "hits_sha256": digest, "rules": rules}


@contextmanager
def engine_times(timings: dict[str, float]) -> Iterator[None]:
    from exhunt.detections import runner

    engines = runner.ENGINES

    def timed(name: str, engine: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return engine(*args)
            finally:
                timings[name] = time.perf_counter() - start
        return run

    runner.ENGINES = tuple((name, timed(name, engine)) for name, engine in engines)
    try:
        yield
    finally:
        runner.ENGINES = engines


@contextmanager
def check_times(timings: dict[str, float]) -> Iterator[None]:
    """Each native check's query plus its grouping (``Check.findings``), and each Sigma query
    (checks run one by one)."""
    from exhunt.detections.base import Check
    from exhunt.detections.sigma import engine

    findings, rows = Check.findings, engine._rows

    def timed_findings(check: Any, con: Any, out: Any = None) -> Any:
        start = time.perf_counter()
        try:
            return findings(check, con, out)
        finally:
            timings[f"check {check.id}"] = time.perf_counter() - start

    def sigma_rows(con: Any, sql: str) -> Any:
        start = time.perf_counter()
        try:
            return rows(con, sql)
        finally:
            label = f"sigma query {sql[-160:]}" if "sigma_key" in sql else f"sigma batch {len(timings)}"
            timings[label] = time.perf_counter() - start

    Check.findings, engine._rows = timed_findings, sigma_rows  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        Check.findings, engine._rows = findings, rows  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", type=Path)
    parser.add_argument("evidence", type=Path, nargs="+")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--checks", action="store_true", help="one more run timing each check")
    parser.add_argument("--sigma", type=Path, action="append", default=[])
    parser.add_argument("--yara", type=Path, action="append", default=[])
    parser.add_argument("--save", type=Path)
    parser.add_argument("--compare", type=Path)
    args = parser.parse_args()

    from exhunt.api import ScanOptions, assess, plan
    from exhunt.detections.sigma.loader import forget

    store = args.case / "store"
    options = ScanOptions(out=args.case, jobs=args.jobs, quiet=True, progress=False, sigma=args.sigma,
                          yara=args.yara)
    work = plan(args.evidence, None, store)
    walls: list[float] = []
    document = None
    for run in range(args.runs):
        forget()  # rules load as in a fresh scan
        timings: dict[str, float] = {}
        with engine_times(timings):
            start = time.perf_counter()
            document = assess(store, work, options)
            walls.append(time.perf_counter() - start)
        parts = ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
        print(f"run {run}: assess {walls[-1]:.2f} s ({parts}); {len(document.findings)} findings")
    print(f"median assess {statistics.median(walls):.2f} s over {len(walls)} runs")
    if args.checks:
        forget()
        timings = {}
        options.jobs = 1
        with check_times(timings):
            assess(store, work, options)
        for label, seconds in sorted(timings.items(), key=lambda kv: -kv[1])[:25]:
            print(f"  {seconds:7.3f}  {label}")
    assert document is not None
    got = fingerprint(document, store)
    if args.save:
        args.save.write_text(json.dumps(got, indent=1, default=str), encoding="utf-8")
    if args.compare:
        want = json.loads(args.compare.read_text(encoding="utf-8"))
        got = json.loads(json.dumps(got, default=str))
        if got != want:
            for name in ("hits", "hits_sha256", "rules"):
                if got[name] != want[name]:
                    print(f"DIFFERENT {name}")
            missing = [f for f in want["findings"] if f not in got["findings"]]
            extra = [f for f in got["findings"] if f not in want["findings"]]
            print(f"DIFFERENT findings: {len(missing)} missing, {len(extra)} new")
            for f in (missing + extra)[:5]:
                print("  ", json.dumps(f)[:300])
            raise SystemExit(1)
        print(f"same findings as {args.compare} ({len(got['findings'])}, {got['hits']} hits)")


if __name__ == "__main__":
    main()
