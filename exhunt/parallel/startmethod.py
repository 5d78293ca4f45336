"""How worker processes start: forked from a server that imported the worker's modules once (Linux),
spawned elsewhere.

A spawned worker starts an interpreter and imports the scan machinery (pyarrow, yara-x, Hyperscan,
the parsers): 0.4-0.5 s per worker before its first file, longer than the whole work of a small
collection, and on 2 cores two workers importing at once take the cores the scan process needs. On
Linux a ``forkserver`` imports those modules once, started by ``prestart`` as soon as the command
line is read (it imports while the scan process imports its own), and forks each worker from that
state in milliseconds. Not a plain ``fork`` of the scan process: by the time it starts its pool it
may hold threads (DuckDB, Arrow, the progress display) whose locks a fork would copy held.
Workers forked from the server keep the server's environment, so each pass's configuration carries
the scan process's (``environment``). macOS (where forking is unsafe with system frameworks) and
Windows spawn, as before; ``EXHUNT_START_METHOD=spawn`` forces spawning anywhere."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# what a worker needs before its first unit (the EVTX parser is imported lazily by its artifact), the
# scan's YARA rules from the rule cache (serverrules) and the server's own quick exit (serverexit)
PRELOAD = ["exhunt.parallel.units", "evtx", "exhunt.parallel.serverrules", "exhunt.parallel.serverexit"]


def forking() -> bool:
    return sys.platform.startswith("linux") and os.environ.get("EXHUNT_START_METHOD", "") != "spawn"


def worker_context() -> Any:
    """The multiprocessing context worker pools start their processes with."""
    if forking():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def prestart(jobs: int, scheduler: str | None = None, yara: Sequence[Path] = (), iocs: Sequence[Path] = ()) -> None:
    """Start the fork server now, in the background, when the scan will have a local pool (``jobs``
    as ``--jobs``: 0 means every core; no-op where workers are spawned): its imports overlap the scan
    process's own; the first worker waits only for what is left of them. ``yara`` and ``iocs``: the
    scan's packs, whose compiled rules the server loads for its workers (``serverrules``)."""
    if scheduler is None and (jobs if jobs > 0 else os.cpu_count() or 1) > 1 and forking():
        worker_context()
        from multiprocessing import forkserver

        from exhunt.parallel import serverrules

        before = os.environ.get(serverrules.ENV)
        os.environ[serverrules.ENV] = serverrules.request(list(yara), list(iocs))
        try:  # the server is started (or found running) before this returns: it has read the value
            forkserver.ensure_running()
        finally:
            if before is None:
                del os.environ[serverrules.ENV]
            else:
                os.environ[serverrules.ENV] = before


def stop() -> None:
    """Stop the fork server and wait for it (the command line, as its scan ends): its workers' CPU
    time then counts in this process's children, as spawned workers' did (``time``, benchmarks).
    Python offers no public call for this; without the private one the server simply exits with
    this process. The server ends with ``os._exit`` (``serverexit``): the wait is ~4 ms, not the
    40-140 ms of its interpreter's teardown."""
    from multiprocessing import forkserver

    stop_server = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)
    if forking() and stop_server is not None:
        with contextlib.suppress(OSError, ChildProcessError):
            stop_server()


def environment() -> dict[str, str]:
    """The scan process's environment, for workers forked from a server started earlier."""
    return dict(os.environ)


def adopt_environment(env: dict[str, str] | None) -> None:
    """Worker side: take the scan process's environment (caches, temp folders, limits it set)."""
    if env is not None and env != os.environ:
        os.environ.clear()
        os.environ.update(env)
