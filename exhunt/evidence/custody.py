"""Glue between the scan pipeline and the manifest: record inputs, cite them, fail cleanly on a full disk."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from exhunt.errors import CaseError
from exhunt.evidence import manifest

DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
ROOT_COLUMNS = ("id", "kind", "host", "evidence", "path", "size", "sha256")  # a root in the document


@dataclass(frozen=True)
class RecordedInputs:
    """What ``record_inputs`` wrote, kept for this scan's own findings: citing them and listing the
    roots from memory, not by reading the store's ``inputs`` and ``manifest`` tables back (0.2-0.5 s
    on 20,000 pages). ``assess`` on a saved case reads the tables."""

    manifest: Path
    ids: dict[tuple[str, str], str]  # (host, path) -> input id(s), as ``manifest.input_ids``
    roots: tuple[dict[str, Any], ...]  # as ``root_inputs``
    written: Future[Path] | None = None  # the manifest's write, when it runs on a thread

    def wait(self) -> None:
        """Until the manifest is written (its error, e.g. a full disk, raised here)."""
        if self.written is not None:
            self.written.result()


def read_hashes(results: Iterable[Any]) -> manifest.ReadHashes:
    """(root, rel) -> (SHA-256, size) of every file a worker read whole (``worker.FileResult``)."""
    return {(r.root, r.rel): (r.sha256, r.size) for r in results if r.sha256 is not None}


def prepare_inputs(work: Sequence[Any], later: Callable[..., Future[manifest.Prepared]]) -> Future[manifest.Prepared]:
    """What of the manifest needs no hash (``manifest.prepare``), made while the workers parse
    (``later``: ``Meanwhile.add``): the scan process only waits for them then (0.15 s of its serial
    work on 20,000 pages)."""
    return later(manifest.prepare, [(w.host, w.evidence, w.files) for w in work])


def record_inputs(case: Path, store: Path, work: Sequence[Any], read: manifest.ReadHashes,
                  hashed: manifest.PathHashes, jobs: int, tool_version: str,
                  prepared: Future[manifest.Prepared] | None = None,
                  write_later: Callable[..., Future[Path]] | None = None) -> RecordedInputs:
    """Record every input once parsing has ended, from the hashes of the workers' one read (``read``)
    and the containers hashed in this process (``hashed``); both are completed in place with what
    had to be hashed here (files no worker read). ``prepared``: ``prepare_inputs(work, ...)``.
    ``write_later`` (an executor's ``submit``): the manifest's write runs there, while the scan goes
    on to its detections, which need only the ids and roots kept here (``RecordedInputs.wait``
    before the document is saved). On 20,000 pages the write (12.9 MB of JSON, two Parquet tables)
    was 0.07-0.3 s of the scan process's serial work, most of it compression and the kernel's copy."""
    hosts = [(w.host, w.evidence, w.files) for w in work]
    records, refs = manifest.build(hosts, read, hashed, jobs, prepared.result() if prepared else None)
    written = None
    if write_later is None:
        path = manifest.write(case, store, records, refs, tool_version)
    else:
        path = manifest.json_path(case)
        written = write_later(manifest.write, case, store, records, refs, tool_version)
    ids = manifest.id_map([r["host"] for r in refs], [r["path"] for r in refs], [r["input"] for r in refs])
    roots = tuple({k: r[k] for k in ROOT_COLUMNS} for r in records if ":" not in r["id"])
    return RecordedInputs(path, ids, roots, written)


def cite_inputs(store: Path, findings: Sequence[Any], ids: dict[tuple[str, str], str] | None = None) -> list[Any]:
    """Fill each evidence reference's ``input`` with the manifest id of the file it came from
    (``ids``: those ``record_inputs`` kept, else read from the store)."""
    if ids is None:
        ids = manifest.input_ids(store, {r.path for f in findings for r in f.evidence})
    if not ids:
        return list(findings)
    out = []
    for f in findings:
        refs = tuple(_replaced(r, input=ids.get((f.host, r.path))) for r in f.evidence)
        out.append(_replaced(f, evidence=refs))
    return out


def _replaced(frozen: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` for the document's frozen dataclasses (no ``__post_init__``, no
    ``InitVar``): their fields copied with ``changes``, without a keyword ``__init__`` call each
    (7,300 findings and their references: 40 -> 10 ms)."""
    copy = object.__new__(type(frozen))
    copy.__dict__.update(frozen.__dict__, **changes)
    return copy


def root_inputs(store: Path) -> tuple[dict[str, Any], ...]:
    """The evidence roots of the manifest, for the findings document."""
    folder = store / "manifest"
    if not folder.exists() or not any(folder.glob("*.parquet")):
        return ()
    table = pq.read_table(folder, columns=list(ROOT_COLUMNS))  # roots only: no Python row per input file
    rows = table.filter(pc.invert(pc.match_substring(table["id"], ":"))).to_pylist()
    return tuple(rows)


def is_disk_full(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno in DISK_FULL) or "No space left on device" in str(exc)


@contextmanager
def case_writes(case: Path) -> Iterator[None]:
    """A full disk while writing the case becomes one readable line (exit 2), the partial case kept.

    ``findings.json`` and ``manifest.json`` are removed before a scan and written once their part
    is done (atomically), so a partial case never shows findings or hashes of another run.
    """
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise CaseError(f"disk full while writing the case in {case}: free space or give --out on another "
                        "disk, then scan again (the partial case has no findings.json)") from exc
