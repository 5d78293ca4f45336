"""The scan's custody records made in a process of their own, beside its detections.

The manifest (``case/manifest.json`` and the ``manifest`` and ``inputs`` tables) and the resume
state are Python per listed file: on 20,001 pages the scan process spent ~0.35 CPU s on them
(the hash-free records 0.125 s while its workers parsed, taking that from their two cores; the
records 0.05 s, then the manifest's write 0.09 s and the resume state's 0.08 s on a thread that
shared one GIL with the detections and the report). With a local pool (``--jobs`` > 1 on Linux,
where workers fork from a server that has the modules imported) a process forked from that server
does all of it instead: it gets the listing while the workers parse (and makes the records no hash
decides then, as the scan process did on a thread) and the hashes of the one read of each file when
they end; it sends back only what the detections need (each cited file's input id, the evidence
roots), then writes while the scan process goes on.

Anywhere else (``--jobs 1`` keeps to one core, a Dask cluster, spawned workers whose start costs
more than this work) ``api.scan`` makes the records in its own process, as ``custody`` does. A
process that dies (killed, out of memory) costs nothing: the records are made in the scan process
then, from the same listing and hashes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, NamedTuple

from exhunt.evidence import custody, manifest
from exhunt.evidence.base import EvidenceFile
from exhunt.evidence.custody import Ids, Roots
from exhunt.parallel import resume
from exhunt.parallel.startmethod import forking, worker_context


class Listing(NamedTuple):
    """One root's listed files, as ``api.HostWork`` holds them (a process that unpickles this needs
    no import of the scan's pipeline)."""

    host: str
    evidence: str
    files: tuple[EvidenceFile, ...]


def wanted(jobs: int, scheduler: str | None, files: int) -> bool:
    """Whether the scan's records go to a custodian process: only beside a local pool of forked
    workers (``jobs``: those the memory budget allows; one more fork of their server costs
    milliseconds, a spawned process ~0.4 s of imports), and for more than one file."""
    return jobs > 1 and scheduler is None and files > 1 and forking()


# What the custodian process holds between its tasks (one scan's; the process serves one scan)
_HELD: dict[str, Any] = {}


def _quiet_on_interrupt() -> None:
    """The process's start: Ctrl-C reaches the whole process group, and the scan process ends it
    (``Custodian.close``): no traceback of its own, no write cut midway."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _step(name: str) -> None:
    """Where a test asks the process to die (``Custodian(die_at=...)``)."""
    if _HELD.get("die_at") == name:
        os._exit(9)


def _hold(listing: list[Listing], cwd: str, die_at: str = "") -> None:
    """Keep the listing and make the records no hash decides (``manifest.prepare``) now, while the
    workers parse: made after them, they held the ids back until ~0.16 s into the detections on
    20,000 pages, longer than the whole tail of a scan with few findings (0.1 s slower than making
    them on a thread of the scan process). Work where the scan process works now (the process
    starts in the folder the scan process was in at its first task: evidence given relative to a
    folder entered since must resolve as in the scan process)."""
    _HELD.clear()
    _HELD["die_at"] = die_at
    _step("listing")
    os.chdir(cwd)
    _HELD["listing"] = listing
    _HELD["prepared"] = manifest.prepare([(w.host, w.evidence, w.files) for w in listing])


def _record(read: manifest.ReadHashes, hashed: manifest.PathHashes, jobs: int, store: Path, key: str,
            stats: dict[Any, str] | None) -> tuple[Ids, Roots]:
    """The manifest records from the listing held and the parse's hashes; what the detections need
    back. Hashes what no worker read whole here (``manifest.build``), as the scan process would. The
    resume state is written from then on, beside the manifest (``_write_state`` waits for it)."""
    _step("records")
    listing = _HELD["listing"]
    records, refs = manifest.build([(w.host, w.evidence, w.files) for w in listing], read, hashed, jobs,
                                   _HELD.pop("prepared"))
    _HELD.update(records=records, refs=refs)
    side = ThreadPoolExecutor(1, thread_name_prefix="exhunt-state")  # its Parquet write frees the GIL
    _HELD["state"] = side.submit(_save_state, listing, read, hashed, store, key, stats)
    side.shutdown(wait=False)  # the thread ends with its one task
    return custody.kept_ids(refs), custody.kept_roots(records)


def _save_state(listing: list[Listing], read: manifest.ReadHashes, hashed: manifest.PathHashes, store: Path,
                key: str, stats: dict[Any, str] | None) -> None:
    _step("state")
    resume.save(store, resume.fingerprints(listing, read, hashed), key,
                resume.listed_stats(listing) if stats is None else stats)


def _write_manifest(case: Path, store: Path, tool_version: str) -> Path:
    """The manifest, once ``_record`` made the records (its error, if any, is the one the scan
    raises: nothing is written then)."""
    _step("manifest")
    if "records" not in _HELD:
        raise RuntimeError("the custody records were not made")
    return manifest.write(case, store, _HELD.pop("records"), _HELD.pop("refs"), tool_version)


def _write_state() -> None:
    """Until the resume state is written (its error raised here)."""
    state = _HELD.pop("state", None)
    _HELD.clear()
    if state is not None:
        state.result()


class Custodian:
    """One scan's custodian process: ``hold`` the listing while the workers parse, ``record`` once
    they end, ``finish`` before the scan's document is saved (the resume state), ``close`` last.
    ``die_at`` (tests only): the step at which the process exits (listing, records, manifest, state).

    Whatever keeps the process from its work (it cannot start, it dies, holding the listing
    failed) makes the records in the scan process instead, from the same listing and hashes: the
    hashes the process took are taken again here then (containers, files no worker read). An
    error of the records themselves (an unreadable root, a full disk) is raised as the scan process
    would raise it, when the findings need the records (after the detections)."""

    def __init__(self, die_at: str = "") -> None:
        self._pool = ProcessPoolExecutor(1, mp_context=worker_context(), initializer=_quiet_on_interrupt)
        self._die_at = die_at
        self._listing: list[Listing] = []
        self._held: Future[None] | None = None
        self._state: Future[None] | None = None
        self._state_here: Callable[[], None] = lambda: None

    def hold(self, work: list[Any]) -> None:
        """Send the listing now (the scan process pickles it on the executor's thread, ~25 ms for
        20,000 files, while the workers parse). Never raises: ``record`` sees what went wrong."""
        self._listing = [Listing(w.host, w.evidence, tuple(w.files)) for w in work]
        try:
            self._held = self._pool.submit(_hold, self._listing, os.getcwd(), self._die_at)
        except Exception as exc:  # noqa: BLE001 - no process (broken, cannot fork): ``record`` works here
            self._held = Future()
            self._held.set_exception(exc)

    def record(self, case: Path, store: Path, read: manifest.ReadHashes, hashed: manifest.PathHashes,
               jobs: int, tool_version: str, key: str, stats: dict[Any, str] | None) -> custody.RecordedInputs:
        """The records made and written by the custodian; in this process when it cannot."""
        def here() -> custody.RecordedInputs:
            self._state = None  # written here too
            return self._here(case, store, read, hashed, jobs, tool_version, key, stats)

        self._state_here = lambda: self._save_state(store, read, hashed, jobs, key, stats)
        try:
            if self._held is None:
                raise RuntimeError("no listing held")
            self._held.result()  # done while the workers parsed
            made: Future[tuple[Ids, Roots]] = self._pool.submit(_record, read, hashed, jobs, store, key, stats)
            written: Future[Path] = self._pool.submit(_write_manifest, case, store, tool_version)
            self._state = self._pool.submit(_write_state)
        except Exception:  # noqa: BLE001 - the process is gone or never held the listing: here, as without it
            return here()
        return custody.RecordedInputs(manifest.json_path(case), made, written, fallback=here)

    def finish(self) -> None:
        """Until the resume state is written (its error raised here; on a broken process, written
        in this process)."""
        state, self._state = self._state, None
        if state is None:
            return
        try:
            state.result()
        except BrokenProcessPool:
            self._state_here()

    def _here(self, case: Path, store: Path, read: manifest.ReadHashes, hashed: manifest.PathHashes, jobs: int,
              tool_version: str, key: str, stats: dict[Any, str] | None) -> custody.RecordedInputs:
        recorded = custody.record_inputs(case, store, self._listing, read, hashed, jobs, tool_version)
        resume.save(store, resume.fingerprints(self._listing, read, hashed), key,
                    resume.listed_stats(self._listing) if stats is None else stats)
        return recorded

    def _save_state(self, store: Path, read: manifest.ReadHashes, hashed: manifest.PathHashes, jobs: int,
                    key: str, stats: dict[Any, str] | None) -> None:
        """The resume state alone, in this process: the hashes the custodian took are taken again."""
        hosts = [(w.host, w.evidence, w.files) for w in self._listing]
        manifest.build(hosts, read, hashed, jobs)  # completes ``read`` and ``hashed`` as the records did
        resume.save(store, resume.fingerprints(self._listing, read, hashed), key,
                    resume.listed_stats(self._listing) if stats is None else stats)

    def close(self) -> None:
        """Wait for the process's work (its writes are never cut midway) and end it."""
        self._pool.shutdown(wait=True)
