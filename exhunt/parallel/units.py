"""Work units and the one module-level function that runs any of them in a worker process.

A unit is a small frozen, picklable dataclass (a batch of whole files, one byte range of a big
text log, or the whole-file pass of a split log: hash + content scan), so the same units run in a
local process pool or as Dask tasks. Every unit writes its own Parquet parts under a
deterministic part name (``unit.part``): a unit that must run again (a restarted pool, a resumed
scan) first deletes exactly its own parts.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from exhunt import artifacts, smallfiles, worker
from exhunt.artifacts import encoding, w3c_fast
from exhunt.artifacts.base import MAX_WARNINGS_PER_FILE, ParseContext
from exhunt.artifacts.w3c import Block
from exhunt.artifacts.w3c_fast import PivotContext, W3cEngine
from exhunt.events.schema import TABLES
from exhunt.events.store import WRITING, StoreWriter
from exhunt.evidence.base import EvidenceFile
from exhunt.evidence.readonly import open_readonly
from exhunt.parallel.startmethod import adopt_environment
from exhunt.worker import ScannerArgs

if TYPE_CHECKING:
    from exhunt.artifacts.linefilter import TriagePlan

# per worker process: engine chunk, DuckDB memory limit, EVTX chunk literals (None: every chunk),
# text-log triage plan (None: parse everything), SHA-1/MD5 of every file (an IOC list holds such hashes)
WorkerSettings = tuple[int, str | None, tuple[str, ...] | None, "TriagePlan | None", bool]


def apply_settings(settings: WorkerSettings) -> None:
    """Set this process's settings (pool initializer, Dask worker, in-process run)."""
    from exhunt.artifacts import evtx_chunks, files, w3c_fast
    from exhunt.evidence import archive_formats

    w3c_fast.CHUNK, w3c_fast.DUCKDB_MEMORY, literals, w3c_fast.TRIAGE, files.ALL_DIGESTS = settings
    archive_formats.SPOOL_IN_MEMORY = w3c_fast.CHUNK  # a nested archive's copy (one engine chunk)
    evtx_chunks.configure(literals)


def current_settings() -> WorkerSettings:
    from exhunt.artifacts import evtx_chunks, files, w3c_fast

    return w3c_fast.CHUNK, w3c_fast.DUCKDB_MEMORY, evtx_chunks.current(), w3c_fast.TRIAGE, files.ALL_DIGESTS

# Artifacts whose files may be parsed in byte ranges (each names its dialect): (class, dialect factory).
RANGE_ARTIFACTS = artifacts.RANGE_ARTIFACTS


def part_name(*key: str) -> str:
    """A deterministic part name for a unit: the same unit always writes the same files."""
    return "u-" + hashlib.sha256("\0".join(key).encode("utf-8", "surrogateescape")).hexdigest()[:20]


PIVOT_PREFIX = "p-"  # the pivot pass's parts: every run (``--resume`` included) deletes and redoes them


def pivot_part(*key: str) -> str:
    return PIVOT_PREFIX + part_name(*key).removeprefix("u-")


def file_key(file: EvidenceFile) -> str:
    """A file in part names: its root too, since one host's two roots (a folder and its archive,
    two collections) may hold the same relative path, and their parts must not replace each other."""
    return f"{file.root}\0{file.rel}"


@dataclass(frozen=True)
class FilesUnit:
    """Whole files of one host (small files batched, big ones alone); one part per table."""

    host: str
    files: tuple[EvidenceFile, ...]
    part: str

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class RangeUnit:
    """Bytes ``[start, end)`` of one text log, cut at line (and engine chunk) boundaries."""

    host: str
    file: EvidenceFile
    artifact: str
    index: int
    start: int
    end: int
    line0: int  # lines before ``start``
    directives: tuple[tuple[str, str], ...]  # the header block in force at ``start``
    fields: tuple[str, ...]
    first_read: int  # bytes up to the end of the whole-file engine chunk ``start`` opens
    chunk: int
    part: str

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class WholeUnit:
    """The whole-file pass of a split log: one sequential read hashes it (the custody SHA-256),
    writes its ``files`` row and runs the content scan; its ranges do the parsing."""

    host: str
    file: EvidenceFile
    part: str

    @property
    def size(self) -> int:
        return self.file.size


@dataclass(frozen=True)
class EvtxRangeUnit:
    """Chunks of one big EVTX file from number ``first``, bytes ``[start, end)``, read behind
    ``header`` (the file's, with their chunk count: ``exhunt.parallel.evtx_ranges``)."""

    host: str
    file: EvidenceFile
    index: int
    first: int
    start: int
    end: int
    header: bytes
    last_before: int | None  # the record id ending chunk ``first - 1`` (None for the first range)
    part: str
    counted: int | None = None  # the chunk count in the file's own header (``header`` holds the range's)
    ends_file: bool = True  # the last range: it says whether the file ends before its counted chunks

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class PivotUnit:
    """The pivot pass over text logs of one host (``exhunt.parallel.pivot``): whole files, or one
    byte range of a split one (``window``); it stores only rows, under a ``p-`` part name."""

    host: str
    files: tuple[EvidenceFile, ...]
    artifacts: tuple[str, ...]  # each file's artifact name (a key of RANGE_ARTIFACTS)
    part: str
    window: RangeUnit | None = None

    @property
    def size(self) -> int:
        return self.window.size if self.window is not None else sum(f.size for f in self.files)


Unit = FilesUnit | RangeUnit | EvtxRangeUnit | WholeUnit | PivotUnit


@dataclass
class UnitResult:
    """What a unit hands back: per-file results, plus for split-file units the warnings and
    facts the parent merges (so a split file gets the same per-file cap and fact de-duplication)."""

    part: str
    files: list[worker.FileResult]
    warnings: list[dict[str, Any]] = field(default_factory=list)
    facts: list[dict[str, Any]] = field(default_factory=list)
    warning_count: int = 0
    leading: int = 0  # of ``warnings``, the first ones a whole parse says before all others (chunk checks)


class CollectingContext(ParseContext):
    """A parse context that keeps warnings and facts for the parent to merge instead of writing them."""

    def __init__(self, host: str, file: EvidenceFile, writer: StoreWriter) -> None:
        super().__init__(host=host, file=file, writer=writer)
        self.warning_rows: list[dict[str, Any]] = []
        self.fact_rows: list[dict[str, Any]] = []

    def warn(self, message: str, line: int | None = None, offset: int | None = None) -> None:
        self.warnings += 1
        if len(self.warning_rows) < MAX_WARNINGS_PER_FILE:
            self.warning_rows.append({"host": self.host, "artifact": self.artifact, "path": self.file.rel,
                                      "line": line, "offset": offset, "message": message})

    def fact(self, fact: str, value: str, line: int | None = None, confidence: str = "high") -> None:
        if (fact, value) in self.facts:
            return
        self.facts.append((fact, value))
        self.fact_rows.append({"host": self.host, "fact": fact, "value": value, "source": self.artifact,
                               "path": self.file.rel, "line": line, "confidence": confidence})


class FileSlots:
    """Where each worker says which file it is on, for the hung-file watchdog: one slot per worker in
    shared memory (sequence number, pid, start time, file index, unit part), written in place.

    A report per file on a ``multiprocessing.Queue`` (the first design) handed each put to a feeder
    thread, which then fought the scanning thread for the GIL (yara-x holds it while it scans): on
    20,000 pages that cost 1.3 CPU s in the workers and 0.3 s in the parent (issue 19). A slot write
    costs about a microsecond and needs no reader; the parent looks at the slots when it checks the
    time. The sequence number is odd while a worker writes, so a half-written slot is never read as
    a hung file (a hung worker's slot does not change)."""

    def __init__(self, context: Any, workers: int) -> None:
        self.workers = workers
        self._numbers = context.RawArray("d", SLOT_NUMBERS * workers)
        self._parts = context.RawArray("c", PART_BYTES * workers)
        self._claimed = context.Value("i", 0)
        self._slot = -1  # this process's slot (claimed by a worker on its first report)
        self._pid = 0  # this process's pid, taken when it claims its slot
        self._part = ""

    def started(self, part: str, index: int) -> None:
        """Worker side: file ``index`` of unit ``part`` starts now."""
        if self._slot < 0:
            with self._claimed.get_lock():
                self._slot, self._claimed.value = self._claimed.value, self._claimed.value + 1
            self._pid = os.getpid()  # once: a system call per file cost the workers ~4% of a page scan
        if self._slot >= self.workers:
            return
        numbers, base = self._numbers, self._slot * SLOT_NUMBERS
        numbers[base] += 1  # odd: being written
        numbers[base + 1] = self._pid
        numbers[base + 2] = time.time()
        numbers[base + 3] = index
        if part != self._part:
            at = self._slot * PART_BYTES
            self._parts[at : at + PART_BYTES] = part.encode()[:PART_BYTES].ljust(PART_BYTES, b"\0")
            self._part = part
        numbers[base] += 1

    def running(self) -> dict[int, tuple[str, int, float]]:
        """Parent side: pid -> (unit part, file index, start time) of every worker that reported."""
        out: dict[int, tuple[str, int, float]] = {}
        numbers = self._numbers
        for slot in range(self.workers):
            base = slot * SLOT_NUMBERS
            seq = numbers[base]
            if seq == 0 or int(seq) % 2:
                continue
            pid, started, index = int(numbers[base + 1]), numbers[base + 2], int(numbers[base + 3])
            part = bytes(self._parts[slot * PART_BYTES : (slot + 1) * PART_BYTES]).rstrip(b"\0").decode()
            if numbers[base] == seq:
                out[pid] = (part, index, started)
        return out

    def close(self) -> None:
        """Nothing to release (the shared memory goes with the last process holding it)."""


def started_label(unit: Unit, index: int) -> str:
    """The file a unit's ``index``-th report names (the hung file's warning and its batch's rerun)."""
    if isinstance(unit, RangeUnit | EvtxRangeUnit):
        return f"{unit.file.rel} bytes {unit.start}-{unit.end}"
    if isinstance(unit, WholeUnit):
        return unit.file.rel
    return unit.files[index].rel if 0 <= index < len(unit.files) else ""


SLOT_NUMBERS = 16  # 4 used; each slot on its own 128 bytes, so two workers never write one cache line
PART_BYTES = 32  # part names are "u-"/"p-" and 20 hex digits


# --- per-worker state, set by ``init_worker`` -------------------------------------------------------
_REPORT: FileSlots | None = None  # this worker's slot: which file it is on


def init_worker(scanner_args: ScannerArgs, report: Any = None,
                settings: WorkerSettings | None = None, hook: str | None = None) -> None:
    """Pool initializer: content scanner, progress reports for the hung-file watchdog, memory
    settings (engine chunk, DuckDB memory limit, EVTX chunk literals, triage plan) and an optional
    ``module:function`` hook."""
    global _REPORT

    worker.init_scanner(*scanner_args)
    _REPORT = report
    if settings is not None:
        apply_settings(settings)
    if hook:
        import importlib

        module, _, name = hook.partition(":")
        getattr(importlib.import_module(module), name)()


_APPLIED: str | None = None  # a warm pool's worker: the configuration file it applied last
_HOOKS_RUN: set[str] = set()  # hooks this worker ran (once each, however many passes it serves)


def warm_worker(report: Any = None) -> None:
    """Initializer of a pool started before the scan has its rules and prefilters (``WarmPool``):
    spawn and imports overlap their building in the parent; each task names its configuration."""
    global _REPORT

    _REPORT = report


def _configure(path: str) -> None:
    """Apply a warm pool's configuration file when it is not the one this worker applied last: the
    first unit of each pass (the first pass, then the pivot pass on the same workers). The hook
    runs after the settings, as with ``init_worker``, once per worker."""
    global _APPLIED

    if path != _APPLIED:
        scanner_args, settings, hook, env = pickle.loads(Path(path).read_bytes())  # noqa: S301 - our own file
        adopt_environment(env)
        init_worker(scanner_args, _REPORT, settings, hook if hook not in _HOOKS_RUN else None)
        if hook:
            _HOOKS_RUN.add(hook)
        _APPLIED = path


def preload_worker(config: str) -> None:
    """A warm pool's task before its first unit (``WarmPool.preload``): apply the pass's
    configuration and build the content scanner now, while the scan process still lists."""
    _configure(config)
    if worker._SCANNER is not None:
        worker._SCANNER.preload()


def run_configured(config: str, unit: Unit, store: str) -> UnitResult:
    """A warm pool's task: the pass's configuration (``config``), then the unit."""
    _configure(config)
    return run_unit(unit, store)


def _started(part: str, index: int) -> None:
    if _REPORT is not None:
        _REPORT.started(part, index)


def remove_parts(store: Path, part: str) -> None:
    """Delete every Parquet part a unit may have written (before it runs again), or begun (a worker
    killed while writing it)."""
    for table in TABLES:
        folder = store / table
        if folder.exists():
            for path in [*folder.glob(f"host=*/{part}.parquet"), *folder.glob(f"host=*/{part}.parquet{WRITING}")]:
                path.unlink(missing_ok=True)


def run_units(units: Sequence[Unit], store: str) -> list[UnitResult]:
    """Several units as one task (a Dask task: each costs a worker ~5 ms to receive and report, as
    much as a tenth of a pivot unit's own time)."""
    return [run_unit(unit, store) for unit in units]


def run_unit(unit: Unit, store: str) -> UnitResult:
    """Run one unit (module-level and picklable: a pool task or a Dask task)."""
    if isinstance(unit, PivotUnit):
        return _run_pivot(unit, Path(store))
    if isinstance(unit, RangeUnit):
        return _run_range(unit, Path(store))
    if isinstance(unit, WholeUnit):
        return _run_whole(unit, Path(store))
    if isinstance(unit, EvtxRangeUnit):
        return _run_evtx_range(unit, Path(store))
    with StoreWriter(Path(store), unit.host, part=unit.part) as writer:
        results = smallfiles.process(unit.files, unit.host, writer, lambda index: _started(unit.part, index))
    return UnitResult(unit.part, results)


def _run_whole(unit: WholeUnit, store: Path) -> UnitResult:
    _started(unit.part, 0)
    with StoreWriter(store, unit.host, part=unit.part) as writer:
        ctx = CollectingContext(unit.host, unit.file, writer)
        result = worker._process(unit.file, unit.host, writer, parse=False, ctx=ctx)
    return UnitResult(unit.part, [result], ctx.warning_rows, ctx.fact_rows, ctx.warnings)


class _Window(io.RawIOBase):
    """``[start, end)`` of a file (opened unbuffered), read-only, after ``prefix`` (an EVTX range's header)."""

    def __init__(self, inner: BinaryIO, start: int, end: int, prefix: bytes = b"") -> None:
        self.inner = inner
        self.start, self.end, self.header = start, end, prefix
        self.left = end - start
        self.prefix = prefix
        inner.seek(start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Back to the window's start (the pivot pass's gate rewinds so); nothing else is asked of it."""
        if offset or whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a window rewinds only to its start")
        self.inner.seek(self.start)
        self.left, self.prefix = self.end - self.start, self.header
        return 0

    def read(self, size: int = -1) -> bytes:
        """One read of the file a call, for a reader of whole pieces (an EVTX range's 64 KiB chunks):
        ``readinto`` behind a buffered reader copied each byte twice more (0.24 of 0.78 s of a range's
        parse went to reading it)."""
        if self.prefix:
            n = len(self.prefix) if size < 0 else min(size, len(self.prefix))
            piece, self.prefix = self.prefix[:n], self.prefix[n:]
            return piece
        n = self.left if size < 0 else min(size, self.left)
        data = self.inner.read(n) if n > 0 else b""
        self.left -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        if self.prefix:
            n = min(len(buffer), len(self.prefix))
            buffer[:n] = self.prefix[:n]
            self.prefix = self.prefix[n:]
            return n
        with memoryview(buffer) as view:  # straight into the caller's buffer: one copy
            n = self.inner.readinto(view[: min(len(view), self.left)]) or 0  # type: ignore[attr-defined]
        self.left -= n
        return n

    def close(self) -> None:
        self.inner.close()
        super().close()


def _run_pivot(unit: PivotUnit, store: Path) -> UnitResult:
    """Each file through its artifact's parser (encodings included) or one range through the engine,
    with the pivot plan in force (``w3c_fast.TRIAGE.pivot``): only rows are written."""
    results = []
    with StoreWriter(store, unit.host, part=unit.part) as writer:
        for index, (file, name) in enumerate(zip(unit.files, unit.artifacts, strict=True)):
            artifact = RANGE_ARTIFACTS[name][0]
            ctx = PivotContext(host=unit.host, file=file, writer=writer, artifact=name)
            if unit.window is not None:
                _started(unit.part, 0)
                if _window_may_hold_indicator(unit.window):
                    _parse_range(unit.window, ctx)
            else:
                _started(unit.part, index)
                try:
                    with file.open() as raw:  # unbuffered: the gate reads into its own buffer
                        if _may_hold_indicator(raw):
                            with io.BufferedReader(raw, buffer_size=1 << 20) as stream:  # type: ignore[type-var]
                                artifact.parse(ctx, stream)
                except OSError as exc:  # the first pass read it: a file gone since is worth a line
                    ctx.warn_file(f"pivot pass: read error: {exc.strerror or exc}")
                except Exception as exc:  # as in worker._process: a parser bug loses only this file
                    ctx.warn_file(f"pivot pass: parser error {type(exc).__name__}: {exc}")
            results.append(worker.FileResult(file.rel, name, 0, ctx.events, ctx.warnings, None, file.root))
    return UnitResult(unit.part, results)


def _window_may_hold_indicator(window: RangeUnit) -> bool:
    """The gate of ``_may_hold_indicator`` over one byte range of a split log (without it, every range
    of a big log was parsed line by line: the pass took 0.87 s against 0.39 s with the logs whole);
    a range that cannot be opened or read is parsed, which reports it."""
    try:
        with _open_window(window.file, window.start, window.end) as stream:
            return _may_hold_indicator(cast(BinaryIO, stream))
    except OSError:
        return True


def _open_window(file: EvidenceFile, start: int, end: int, prefix: bytes = b"") -> _Window:
    """``[start, end)`` of ``file`` through its source's seekable stream (OSError when it has none,
    or the file cannot be opened or sought)."""
    raw = file.open_seekable()
    if raw is None:
        raise OSError(f"the {file.source} source cannot seek")
    try:
        return _Window(raw, start, end, prefix)
    except BaseException:
        raw.close()
        raise


def _may_hold_indicator(stream: BinaryIO) -> bool:
    """Whether a file can hold a line of the pivot pass: its raw bytes, chunk by chunk cut at line
    ends, against the indicators' database before any parsing (most logs hold none: no header
    parse, line count or segment work for them). UTF-16 logs are transcoded first: always parsed.
    Streams that cannot seek (some archive members) are parsed as before. The chunks are read
    straight into one buffer per process (a buffered reader's 1 MiB buffer, new for each file and
    filled by the encoding's peek, cost as much as the scan: its pages faulted in, then copied out).
    The stream is left at its start."""
    selector = w3c_fast.pivot_selector()
    if selector is None or not stream.seekable():
        return True
    buffer = _pivot_buffer()
    view = memoryview(buffer)
    found, kept, first = False, 0, True  # ``kept``: bytes of a line carried to the buffer's start
    while True:
        read = stream.readinto(view[kept:]) or 0  # type: ignore[attr-defined]
        end = kept + read
        if first:
            first = False
            if encoding.sniff(bytes(view[:min(end, encoding.SNIFF_BYTES)]))[0] != encoding.UTF8:
                found = True
                break
        if not read:
            found = bool(kept) and selector.any(view[:kept])
            break
        cut = buffer.rfind(b"\n", 0, end) + 1
        if not cut:
            if end == len(buffer):  # one line longer than a chunk: the parser reads it
                found = True
                break
            kept = end
            continue
        if selector.any(view[:cut]):
            found = True
            break
        kept = end - cut
        view[:kept] = view[cut:end]
    view.release()
    stream.seek(0)
    return found


_BUFFER: list[bytearray] = []


def ready_for_pivot() -> None:
    """A held worker's task after the first pass: its pivot buffer made (its pages faulted in) while
    the scan process runs the detections (``WarmPool.ready_for_pivot``)."""
    _pivot_buffer()


def _pivot_buffer() -> bytearray:
    """The process's read buffer of the pivot pass, one chunk (``w3c_fast.CHUNK``) long."""
    if not _BUFFER or len(_BUFFER[0]) != w3c_fast.CHUNK:
        _BUFFER[:] = [bytearray(w3c_fast.CHUNK)]
    return _BUFFER[0]


def _run_range(unit: RangeUnit, store: Path) -> UnitResult:
    with StoreWriter(store, unit.host, part=unit.part) as writer:
        ctx = CollectingContext(unit.host, unit.file, writer)
        _parse_range(unit, ctx)
    result = worker.FileResult(unit.file.rel, ctx.artifact, 0, ctx.events, 0, None, unit.file.root)
    return UnitResult(unit.part, [result], ctx.warning_rows, ctx.fact_rows, ctx.warnings)


def _run_evtx_range(unit: EvtxRangeUnit, store: Path) -> UnitResult:
    """The range's records, warnings and facts as the whole file's parse gives them for its chunks;
    the file's hashes and ``files`` row come from its ``WholeUnit``."""
    from exhunt.artifacts.evtx import parse_chunks

    _started(unit.part, 0)
    with StoreWriter(store, unit.host, part=unit.part) as writer:
        ctx = CollectingContext(unit.host, unit.file, writer)
        ctx.artifact = "evtx"
        checks: list[int] = []
        try:
            stream = _open_window(unit.file, unit.start, unit.end, unit.header)
        except OSError as exc:
            ctx.warn(f"cannot open: {exc.strerror or exc}")
        else:
            with stream:
                try:
                    parse_chunks(ctx, cast(BinaryIO, stream), unit.first, unit.last_before,  # reads whole pieces
                                 checked=lambda: checks.append(len(ctx.warning_rows)), counted=unit.counted,
                                 ends_file=unit.ends_file)
                except OSError as exc:
                    ctx.warn(f"read error while parsing: {exc.strerror or exc}")
                except Exception as exc:  # as in worker._process: a parser bug loses only this range
                    ctx.warn(f"parser error {type(exc).__name__}: {exc} (bytes {unit.start}-{unit.end})")
    result = worker.FileResult(unit.file.rel, "evtx", 0, ctx.events, 0, None, unit.file.root)
    return UnitResult(unit.part, [result], ctx.warning_rows, ctx.fact_rows, ctx.warnings, checks[0] if checks else 0)


def _parse_range(unit: RangeUnit, ctx: ParseContext) -> None:
    _started(unit.part, 0)
    artifact, dialect = RANGE_ARTIFACTS[unit.artifact]
    ctx.artifact = artifact.name
    try:
        stream = io.BufferedReader(_Window(open_readonly(_real_path(unit.file), buffered=False), unit.start, unit.end),
                                   buffer_size=1 << 20)
    except OSError as exc:
        ctx.warn(f"cannot open: {exc.strerror or exc}")
        return
    with stream:
        engine = W3cEngine(ctx, dialect(), use_fast=artifact.fast)
        engine.chunk = unit.chunk
        engine.block = Block(dict(unit.directives), list(unit.fields))
        if unit.fields:
            engine.rescope()
        engine.line, engine.offset = unit.line0, unit.start
        try:
            engine.run(stream, first_read=unit.first_read, at_start=unit.start == 0)
        except OSError as exc:
            ctx.warn(f"read error while parsing: {exc.strerror or exc}")
        except Exception as exc:  # as in worker._process: a parser bug loses only this range
            ctx.warn(f"parser error {type(exc).__name__}: {exc} (bytes {unit.start}-{unit.end})")


def _real_path(file: EvidenceFile) -> Path:
    return Path(file.root) / (file.locator[0] if file.locator else file.rel)

