"""Past one machine: run the per-file work units on an existing Dask ``distributed`` cluster.

``exhunt scan --scheduler tcp://HOST:8786`` swaps the local spawn pool for :class:`DaskExecutor`, a
``concurrent.futures.Executor`` over a ``distributed.Client``: ``api.parse_all`` submits the same
``worker.process_files`` batches and reads the same ``FileResult`` lists back, so the two paths can
not drift apart. What a cluster adds, and how it is handled here:

* **Rules travel once.** The serialized yara-x rules are scattered to every worker (broadcast) and
  each task gets a reference to them; a worker (re)builds its scanner lazily, only when the rules
  digest differs from the one it holds (capa-style cache keyed by SHA-256), so workers that join
  late or run several scans in a row stay correct without a WorkerPlugin to install and remove.
* **One scanner per process.** A yara-x ``Scanner`` is not shareable between threads (externals
  are set per file) and holds the GIL while scanning, so tasks in one worker process run one at a
  time under a lock. Start workers as ``dask worker --nthreads 1 --nworkers <cores>``.
* **Shared storage is checked, not assumed.** Workers read the evidence by path and write Parquet
  parts into the case store by path. Before submitting anything, every worker must see a marker
  file written into the store and every evidence root, and run the same exhunt version; otherwise
  the scan stops with one line naming the worker and the path, instead of losing parts silently.
  The store is a local or network-mounted path (NFS, SMB, Lustre...): fsspec URLs (s3://...) are
  not supported, because the store writer and DuckDB views work on file-system paths.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exhunt.arrowpool import prefer_jemalloc

# A Dask worker imports this module first (the task's function), before anything loads pyarrow:
# Arrow's pool there is then the one exhunt's own processes use (exhunt.arrowpool). In the client,
# pyarrow is loaded already and this does nothing.
prefer_jemalloc()

from exhunt import __version__, worker  # noqa: E402 - after the pool's choice
from exhunt.errors import MissingExtraError, UsageError  # noqa: E402
from exhunt.parallel.heapsize import scanning_heap  # noqa: E402
from exhunt.worker import ScannerArgs  # noqa: E402

if TYPE_CHECKING:
    from exhunt.parallel.units import WorkerSettings

CONNECT_TIMEOUT = "15s"
WAIT_WORKERS_S = 60.0
MARKER = ".exhunt-shared-check"


@dataclass(frozen=True)
class RulesPayload:
    """What a worker needs to build its scanner; scattered once, one object (not a sequence)."""

    digest: str
    blob: bytes | None
    max_size: int
    scan_logs: bool = False
    settings: WorkerSettings | None = None  # (engine chunk, DuckDB memory limit, EVTX literals), as pool workers get


_LOCK = threading.Lock()
_THREAD = threading.local()  # yara-x scanners are bound to the thread that built them ("unsendable")


def run_task(rules: RulesPayload, fn: Callable[..., Any], *args: Any) -> Any:
    """Runs on a Dask worker thread: give the worker module this thread's scanner over ``rules``
    (built on first use, rebuilt when the digest changes), run the work unit, take the scanner back."""
    with _LOCK:
        if getattr(_THREAD, "digest", None) != rules.digest:
            _THREAD.scanner = worker.init_scanner(rules.blob, rules.max_size, rules.scan_logs)
            _THREAD.digest = rules.digest
        worker.use_scanner(_THREAD.scanner)
        from exhunt.parallel.units import apply_settings, current_settings

        saved = current_settings()  # a worker in the caller's process must give its settings back
        if rules.settings is not None:  # the same chunking as the local pool: the same rows and warnings
            apply_settings(rules.settings)
        try:
            with scanning_heap():
                return fn(*args)
        finally:
            worker.use_scanner(None)
            apply_settings(saved)


def loaded_digest() -> str | None:
    """The rules digest of this thread's scanner (for tests and diagnostics)."""
    return getattr(_THREAD, "digest", None)


def check_worker(marker: str, token: str, roots: Sequence[str]) -> dict[str, Any]:
    """Runs on every worker before the scan: what this worker cannot see."""
    try:
        seen = Path(marker).read_text(encoding="utf-8") == token
    except OSError:
        seen = False
    return {"version": __version__, "store": seen, "missing": [r for r in roots if not os.path.exists(r)]}


class DaskExecutor(Executor):
    """The ``concurrent.futures`` face of a Dask cluster, as ``api.parse_all`` expects of its pool."""

    def __init__(self, address: str, scanner_args: ScannerArgs, store: Path,
                 roots: Sequence[str], settings: WorkerSettings | None = None) -> None:
        relative = [str(p) for p in (str(store), *roots) if not Path(p).is_absolute()]
        if relative:  # workers run in other folders, on other machines
            raise UsageError(f"with a Dask scheduler give absolute paths, not {relative[0]}")
        try:
            from distributed import Client
        except ImportError:
            raise MissingExtraError("--scheduler (Dask distributed)", "cluster") from None
        try:
            self.client = Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        try:
            self.client.wait_for_workers(1, timeout=WAIT_WORKERS_S)
            self._check_shared(store, list(roots))
            shipped, max_size, scan_logs = scanner_args
            blob = worker.rules_bytes(shipped)
            digest = hashlib.sha256((blob or b"") + bytes([scan_logs])).hexdigest()
            payload = RulesPayload(digest, blob, max_size, scan_logs, settings)
            self._rules = self.client.scatter(payload, broadcast=True, hash=False)
            self._pool = self.client.get_executor(pure=False)
        except BaseException:
            self.client.close()
            raise
        self.slots = max(1, sum(self.client.nthreads().values()))

    def _check_shared(self, store: Path, roots: list[str]) -> None:
        store.mkdir(parents=True, exist_ok=True)
        marker = store / MARKER
        token = os.urandom(16).hex()
        marker.write_text(token, encoding="utf-8")
        try:
            reports = self.client.run(check_worker, str(marker), token, roots)
        finally:
            marker.unlink(missing_ok=True)
        for address, report in sorted(reports.items()):
            if report["version"] != __version__:
                raise UsageError(f"Dask worker {address} runs exhunt {report['version']}, this client "
                                 f"{__version__}: install the same version on every worker")
            if not report["store"]:
                raise UsageError(f"Dask worker {address} cannot see the case store {store}: "
                                 "--out must be on storage every worker mounts at the same path")
            if report["missing"]:
                raise UsageError(f"Dask worker {address} cannot see the evidence {report['missing'][0]}: "
                                 "evidence must be on storage every worker mounts at the same path")

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if kwargs:
            raise TypeError("DaskExecutor.submit takes positional arguments only")
        return self._pool.submit(run_task, self._rules, fn, *args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self._pool.shutdown(wait=wait and not cancel_futures)
        finally:
            self.client.close()
