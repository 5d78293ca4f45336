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
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
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


def wanted(jobs: int, scheduler: str | None) -> bool:
    """Whether the scan's records go to a custodian process: only beside a local pool of forked
    workers (one more fork of their server costs milliseconds; a spawned one ~0.4 s of imports)."""
    return jobs > 1 and scheduler is None and forking()


# What the custodian process holds between its tasks (one scan's; the process serves one scan)
_HELD: dict[str, Any] = {}


def _hold(listing: list[Listing], cwd: str) -> None:
    """Keep the listing and make the records no hash decides (``manifest.prepare``) now, while the
    workers parse: made after them, they held the ids back until ~0.16 s into the detections on
    20,000 pages, longer than the whole tail of a scan with few findings (0.1 s slower than making
    them on a thread of the scan process). Work where the scan process works now (the process
    starts in the folder the scan process was in at its first task: evidence given relative to a
    folder entered since must resolve as in the scan process)."""
    _HELD.clear()
    os.chdir(cwd)
    _HELD["listing"] = listing
    _HELD["prepared"] = manifest.prepare([(w.host, w.evidence, w.files) for w in listing])


def _record(read: manifest.ReadHashes, hashed: manifest.PathHashes, jobs: int) -> tuple[Ids, Roots]:
    """The manifest records from the listing held and the parse's hashes; what the detections need
    back. Hashes what no worker read whole here (``manifest.build``), as the scan process would."""
    listing = _HELD["listing"]
    records, refs = manifest.build([(w.host, w.evidence, w.files) for w in listing], read, hashed, jobs,
                                   _HELD.pop("prepared"))
    _HELD.update(records=records, refs=refs, read=read, hashed=hashed)
    return custody.kept_ids(refs), custody.kept_roots(records)


def _write_manifest(case: Path, store: Path, tool_version: str) -> Path:
    """The manifest, once ``_record`` made the records (its error, if any, is the one the scan
    raises: nothing is written then)."""
    if "records" not in _HELD:
        raise RuntimeError("the custody records were not made")
    return manifest.write(case, store, _HELD.pop("records"), _HELD.pop("refs"), tool_version)


def _write_state(store: Path, key: str, stats: dict[Any, str] | None) -> None:
    """The resume state (after the manifest: the scan's document waits for the manifest only)."""
    if "read" not in _HELD:
        raise RuntimeError("the custody records were not made")
    listing = _HELD["listing"]
    resume.save(store, resume.fingerprints(listing, _HELD["read"], _HELD["hashed"]), key,
                resume.listed_stats(listing) if stats is None else stats)
    _HELD.clear()


class Custodian:
    """One scan's custodian process: ``hold`` the listing while the workers parse, ``record`` once
    they end, ``finish`` when the scan's case is written (the resume state), ``close`` last."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(1, mp_context=worker_context())
        self._listing: list[Listing] = []
        self._state: Future[None] | None = None
        self._state_here: Callable[[], None] = lambda: None

    def hold(self, work: list[Any]) -> None:
        """Send the listing now (the scan process pickles it on the executor's thread, ~25 ms for
        20,000 files, while the workers parse)."""
        self._listing = [Listing(w.host, w.evidence, tuple(w.files)) for w in work]
        self._pool.submit(_hold, self._listing, os.getcwd())

    def record(self, case: Path, store: Path, read: manifest.ReadHashes, hashed: manifest.PathHashes,
               jobs: int, tool_version: str, key: str, stats: dict[Any, str] | None) -> custody.RecordedInputs:
        """The records made and written by the custodian; on a broken process, in this process."""
        def here() -> custody.RecordedInputs:
            self._state = None  # written here too
            return self._here(case, store, read, hashed, jobs, tool_version, key, stats)

        self._state_here = lambda: self._save_state(store, read, hashed, jobs, key, stats)
        try:
            made: Future[tuple[Ids, Roots]] = self._pool.submit(_record, read, hashed, jobs)
            written: Future[Path] = self._pool.submit(_write_manifest, case, store, tool_version)
            self._state = self._pool.submit(_write_state, store, key, stats)
        except BrokenProcessPool:
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
        self._pool.shutdown(wait=True, cancel_futures=True)
