"""Where one exhunt scan's time goes: the scan process's phases and every worker's units, traced.

Runs the command line in this process with chosen functions wrapped (each call's start, end and
thread CPU), the workers' units logged by a worker hook, and prints the calls in time order, each
worker's units and busy time, and the stretches where no worker ran a unit (before the first, between
the passes, after the last). The traced figures in bench/results/*_profile.md are read this way.

The wrappers are installed right after the command line starts the fork server, as the scan's own
imports begin, so that server imports beside them as in a plain run; times count from this script's
start (the interpreter's own ~25 ms come before). A wrapped call costs ~10 us: wrap what is called
a few times, not per file.

Each call shows its thread's CPU and the whole scan process's (every thread: what the process took
from the workers' cores meanwhile). EXHUNT_TIMELINE_UNITS=1 also lists every unit's start and end.

Usage: python bench/timeline.py [--wrap module:attr ...] -- scan EVIDENCE --out CASE --jobs 2 ...
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

T0 = float(os.environ.get("EXHUNT_TIMELINE_T0") or time.time())
LOG = "EXHUNT_TIMELINE_LOG"
WRAPPED = (
    "exhunt.api:plan", "exhunt.api:parse_all", "exhunt.evidence.custody:record_inputs",
    "exhunt.events.preload:PartLoader.connect", "exhunt.api:connect", "exhunt.api:run_detections",
    "exhunt.api:pivot_pass",
    "exhunt.detections.pivot:gather", "exhunt.artifacts.linefilter:compile_patterns", "exhunt.api:_impact",
    "exhunt.api:_host_assessments", "exhunt.api:save_html_report", "exhunt.api:save_document",
)
UNIT = "unit"


def log(name: str, phase: str) -> None:
    with open(os.environ[LOG], "a") as out:
        out.write(f"{time.time() - T0:.4f}\t{os.getpid()}\t{threading.current_thread().name}\t{phase}\t{name}\t"
                  f"{time.thread_time():.4f}\t{time.process_time():.4f}\n")


def wrap(owner: Any, attr: str, name: str) -> None:
    function = getattr(owner, attr)

    @functools.wraps(function)
    def traced(*args: Any, **kwargs: Any) -> Any:
        log(name, "B")
        try:
            return function(*args, **kwargs)
        finally:
            log(name, "E")

    setattr(owner, attr, traced)


def wrap_path(spec: str) -> None:
    module, _, path = spec.partition(":")
    owner: Any = importlib.import_module(module)
    *parents, attr = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    wrap(owner, attr, path)


def install_worker() -> None:
    """Worker hook (``ScanOptions.worker_hook``): each unit a worker runs, logged."""
    from exhunt.parallel import units

    if not getattr(units, "_timeline", False):
        units._timeline = True  # type: ignore[attr-defined]
        wrap(units, "run_unit", UNIT)


def run(command: list[str], specs: list[str]) -> None:
    """The command line, its functions wrapped once the fork server is started."""
    from exhunt.cli import main
    from exhunt.parallel import startmethod

    started = startmethod.prestart

    def prestart(*args: Any, **kwargs: Any) -> None:
        started(*args, **kwargs)
        if getattr(startmethod, "_timeline", False):
            return
        startmethod._timeline = True  # type: ignore[attr-defined]
        log("imports", "B")
        from dataclasses import replace

        from exhunt import api
        from exhunt.parallel import pool
        log("imports", "E")
        for spec in specs:
            wrap_path(spec)
        wrap(pool, "run_unit", UNIT)  # --jobs 1: units in this process
        scan = api.scan
        api.scan = lambda evidence, options: scan(evidence, replace(options, worker_hook="timeline:install_worker"))

    startmethod.prestart = prestart
    log("main", "B")
    try:
        main(command)
    except SystemExit:
        pass
    finally:
        log("main", "E")


def report(path: Path) -> None:
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()]
    main_pid = rows[0][1]
    opened: dict[tuple[str, str, str], tuple[float, float, float]] = {}
    calls: list[tuple[float, float, float, float, str, str]] = []
    units: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for t, pid, thread, phase, name, cpu, pcpu in rows:
        key = (pid, thread, name)
        if phase == "B":
            opened[key] = (float(t), float(cpu), float(pcpu))
            continue
        begin, cpu0, pcpu0 = opened.pop(key)
        if name == UNIT:
            units[f"{'scan process' if pid == main_pid else 'worker ' + pid}"].append(
                (begin, float(t), float(cpu) - cpu0))
        else:
            calls.append((begin, float(t), float(cpu) - cpu0, float(pcpu) - pcpu0, thread, name))
    print(f"{'from':>7} {'to':>7} {'wall':>6} {'cpu':>6} {'proc':>6}  thread / call (cpu: the thread's; proc: the "
          "scan process's, every thread)")
    for begin, end, cpu, pcpu, thread, name in sorted(calls):
        print(f"{begin:7.3f} {end:7.3f} {end - begin:6.3f} {cpu:6.3f} {pcpu:6.3f}  {thread[:16]} / {name}")
    spans = sorted(span for runs in units.values() for span in [(b, e) for b, e, _ in runs])
    for who, runs in sorted(units.items()):
        busy = sum(e - b for b, e, _ in runs)
        if os.environ.get("EXHUNT_TIMELINE_UNITS"):
            print(f"{who}: " + " ".join(f"{b:.2f}-{e:.2f}" for b, e, _ in sorted(runs)))
        print(f"{who}: {len(runs)} units, first {min(b for b, _, _ in runs):.3f}, last end "
              f"{max(e for _, e, _ in runs):.3f}, busy {busy:.3f} s, CPU {sum(c for _, _, c in runs):.3f} s")
    if spans:
        end_of_main = max(e for _, e, _, _, _, name in calls if name == "main")
        idle, reach = [(0.0, spans[0][0])], spans[0][1]
        for begin, end in spans[1:]:
            if begin - reach > 0.05:
                idle.append((reach, begin))
            reach = max(reach, end)
        idle.append((reach, end_of_main))
        print("no unit running: " + ", ".join(f"{b:.3f}-{e:.3f} ({e - b:.3f} s)" for b, e in idle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wrap", action="append", default=[], metavar="MODULE:ATTR",
                        help="another function to trace (e.g. exhunt.api:write_table)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="exhunt's arguments, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the exhunt command after --")
    with tempfile.TemporaryDirectory(prefix="exhunt-timeline-") as folder:
        path = Path(folder) / "log.tsv"
        os.environ[LOG] = str(path)  # the workers inherit it, and this start, with the environment
        os.environ["EXHUNT_TIMELINE_T0"] = repr(T0)
        run(command, [*WRAPPED, *args.wrap])
        report(path)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the hook's module, for the workers
    main()
