"""The pipeline, top to bottom: open evidence -> parse -> store -> detect -> triage -> document.

The CLI and tests call these functions; nothing here prints except through ``progress``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exhunt import __version__, heap
from exhunt.artifacts import RANGE_ARTIFACTS, evtx
from exhunt.artifacts.linefilter import TriagePlan
from exhunt.casefolder import case_directory, refuse_overlap
from exhunt.detections import builds, eventfilter, prefilter
from exhunt.detections import pivot as attacker
from exhunt.detections.checks import CHECKS
from exhunt.detections.eventfilter import EventFilter
from exhunt.detections.filehunt import scan_rules
from exhunt.detections.fleet_reach import attacker_reach
from exhunt.detections.impact import Accesses, assess_impact, pivot_rows, read_accesses
from exhunt.detections.iocs import load_iocs
from exhunt.detections.runner import DetectContext, run_detections
from exhunt.detections.yara import DEFAULT_MAX_SIZE
from exhunt.errors import EvidenceError, UsageError
from exhunt.events import selected
from exhunt.events.preload import PartLoader
from exhunt.events.store import StoreWriter, connect, drop_unfinished, write_table
from exhunt.evidence import custody, manifest, open_evidence
from exhunt.evidence.archive import strip_archive_suffix
from exhunt.evidence.base import EvidenceFile
from exhunt.evidence.kape import machine_collections
from exhunt.findings import coverage as expected
from exhunt.findings.document import save_document
from exhunt.findings.model import (
    DOCUMENT_SCHEMA_VERSION,
    AssessmentDocument,
    Finding,
    HostAssessment,
    MailboxImpact,
)
from exhunt.findings.triage import iso, sort_findings, verdict
from exhunt.parallel import limits, pivot, resume
from exhunt.parallel.limits import DEFAULT_MEMORY_LIMIT
from exhunt.parallel.meanwhile import Meanwhile
from exhunt.parallel.pool import DEFAULT_FILE_TIMEOUT, PoolOptions, WarmPool, make_units
from exhunt.parallel.pool import run as run_units
from exhunt.parallel.ranges import DEFAULT_SPLIT_SIZE
from exhunt.parallel.startmethod import prestart
from exhunt.parallel.units import WorkerSettings
from exhunt.progress import Progress
from exhunt.worker import FileResult, ScannerArgs


@dataclass
class ScanOptions:
    out: Path | None = None
    host: str | None = None
    jobs: int = 0  # 0: all cores
    quiet: bool = False
    progress: bool = True
    yara: list[Path] = field(default_factory=list)  # user YARA packs (files or folders)
    sigma: list[Path] = field(default_factory=list)  # user Sigma rules (files or folders)
    iocs: list[Path] = field(default_factory=list)  # user IOC lists
    baselines: list[Path] = field(default_factory=list)  # known-good hash baselines
    html_report: bool = True  # with --out: write report.html next to findings.json
    yara_max_size: int = DEFAULT_MAX_SIZE  # larger files are hashed but not YARA-scanned
    yara_logs: bool | None = None  # YARA over files parsed as logs too; None: only with user rules
    split_size: int = DEFAULT_SPLIT_SIZE  # text logs bigger than this are parsed in byte ranges
    file_timeout: float = DEFAULT_FILE_TIMEOUT  # seconds per file before its worker is killed (jobs > 1)
    memory_limit: int = DEFAULT_MEMORY_LIMIT  # bytes for the whole scan: chunk, DuckDB and batch sizes follow
    resume: bool = False  # keep the parts of files unchanged since the last scan into this --out
    worker_hook: str | None = None  # ``module:function`` run in every worker at start (plugins, tests)
    scheduler: str | None = None  # Dask scheduler address: run the file work on that cluster
    index: str = "triage"  # "triage": only prefiltered text-log lines and EVTX chunks parsed; "full": all
    org_domains: list[str] = field(default_factory=list)  # the organisation's mail domains (else from evidence)


@dataclass
class ScanResult:
    document: AssessmentDocument
    case_dir: Path
    file_results: list[FileResult] = field(default_factory=list)


@dataclass(frozen=True)
class HostWork:
    host: str
    evidence: str
    files: tuple[EvidenceFile, ...]


def plan(evidence: Sequence[Path], host: str | None, store: Path) -> list[HostWork]:
    """List every evidence file per host; listing problems are written as warnings. A folder that
    holds only machines' collections (``EXCH01/C/...``, ``EXCH02/C/...``) is a host per machine
    unless ``host`` names one for everything."""
    work: list[HostWork] = []
    named: dict[str, str] = {}  # a host named after its evidence (no --host) -> the first evidence so named
    for given in evidence:
        machines, only = machine_collections(given)
        split = host is None and len(machines) > 1 and only  # a folder of machines: a host each (as --fleet)
        for path in machines if split else [given]:
            try:
                source = open_evidence(path)
            except EvidenceError as exc:
                if len(evidence) == 1 and not split:
                    raise  # the one evidence given: a usage error
                work.append(_unread_host(store, host or strip_archive_suffix(path.name) or path.name, path, exc))
                continue
            name = host or source.default_host()
            with _listing_writer(store, name) as writer:
                def warn(rel: str, message: str, _w: StoreWriter = writer, _h: str = name) -> None:
                    _w.add("warnings", {"host": _h, "artifact": "evidence", "path": rel, "message": message})

                if len(machines) > 1 and not split:
                    warn("", f"holds the collections of {len(machines)} machines "
                             f"({', '.join(m.name for m in machines)}) read as one host {name}: give each "
                             "collection (or --fleet) to assess each machine as its own host")
                first = named.setdefault(name.lower(), str(path)) if host is None else str(path)
                if first != str(path):  # two servers' folders of one name had merged without a word
                    warn("", f"{path} and {first} are both named {name} and are read as one host {name} (one "
                             "verdict, one coverage): if they are different machines, scan each with its own "
                             "--host (or use --fleet)")
                files = tuple(source.files(warn))
            work.append(HostWork(name, str(path), files))
    return work


def _listing_writer(store: Path, name: str) -> StoreWriter:
    """The writer of one host's listing warnings (a part of its own, dropped by the next run)."""
    return StoreWriter(store, name, part="listing-" + os.urandom(6).hex())


def _unread_host(store: Path, name: str, path: Path, error: EvidenceError) -> HostWork:
    """A host of a fleet (or of several evidence roots) whose evidence cannot be opened: no files, its
    reason as a warning, so its verdict is "not assessed" and the other hosts are still scanned (one
    damaged archive had stopped the whole fleet)."""
    with _listing_writer(store, name) as writer:
        writer.add("warnings", {"host": name, "artifact": "evidence", "path": path.name,
                                "message": f"not read: {error}"})
    return HostWork(name, str(path), ())


JOBS_PER_CORE = 4  # --jobs above this many per core is taken as this many: more only costs memory


def _jobs(requested: int) -> int:
    """``--jobs`` as used: 0 (or less) every core, never more than ``JOBS_PER_CORE`` per core (the
    workers are fewer still when ``--memory-limit`` cannot hold them: ``limits.budget``; the query
    threads are these). --jobs 30000 had started 30,000 DuckDB threads and ignored the memory limit."""
    cores = max(1, os.cpu_count() or 1)
    return min(requested, cores * JOBS_PER_CORE) if requested > 0 else cores


BATCH_FILES = 1024  # a Parquet part per table per batch: 7% of the per-page work at 256
BATCH_BYTES = 64 << 20


def batches(tasks: list[tuple[EvidenceFile, str]], jobs: int,
            batch_bytes: int = BATCH_BYTES) -> Iterator[tuple[list[EvidenceFile], str]]:
    """Consecutive small files of one host in batches (one store part each); large files alone.
    Batches stay small enough that every worker gets several."""
    limit = max(1, min(BATCH_FILES, len(tasks) // (jobs * 4) or 1))
    batch: list[EvidenceFile] = []
    size, host = 0, None
    for file, h in tasks:
        if batch and (h != host or len(batch) >= limit or size + file.size > batch_bytes):
            yield batch, host or ""
            batch, size = [], 0
        batch.append(file)
        size += file.size
        host = h
    if batch:
        yield batch, host or ""


# --index full: the detections read the web rows triage would store (events.selected), not all of them;
# the triage/full oracle tests turn it off to hold the prefilter to every row
FULL_DETECTS_SELECTED = True


def triage_plan(options: ScanOptions) -> tuple[TriagePlan | None, dict]:
    """The prefilter of this scan (with ``--index full``: None, or the plan that marks its lines,
    ``FULL_DETECTS_SELECTED``) and its report for the document."""
    check_index(options)
    plan, report = prefilter.build(options.index, CHECKS, options.sigma, options.iocs)
    if options.index == "full" and FULL_DETECTS_SELECTED:
        marking = prefilter.build("triage", CHECKS, options.sigma, options.iocs)[0]
        if marking is not None and marking.blob is not None:
            plan = replace(marking, mark=True)
    return plan, report


def parse_all(work: list[HostWork], store: Path, options: ScanOptions,
              skip: frozenset[tuple[str, str]] = frozenset(), plan: TriagePlan | None = None,
              events: EventFilter | None = None, warm: WarmPool | None = None,
              submitted: Callable[[], None] = lambda: None,
              unit_done: Callable[[str, str], None] | None = None) -> list[FileResult]:
    """Every file (minus ``skip``: (host, path) unchanged since a resumed scan) through the pool
    (``warm``: its workers, started by ``start_workers``; ``submitted``: called once they have
    their units; ``unit_done(host, part)``: as each whole-file unit's parts are final)."""
    tasks = [(f, hw.host) for hw in work for f in hw.files if (hw.host, f.rel) not in skip]
    jobs = _jobs(options.jobs)
    budget = limits.budget(options.memory_limit, jobs)
    scanner_args, settings = worker_config(options, plan, events)
    pool_options = PoolOptions(jobs=budget.jobs, split_size=options.split_size,
                               chunk=budget.chunk, file_timeout=options.file_timeout,
                               settings=settings, hook=options.worker_hook,
                               scheduler=options.scheduler, roots=tuple(hw.evidence for hw in work))
    with Progress(enabled=options.progress and not options.quiet) as progress:
        bar = progress.task("parsing evidence", total=sum(f.size for f, _ in tasks))
        units, splits = make_units(list(batches(tasks, jobs, budget.batch_bytes)), pool_options)
        results = run_units(units, splits, store, pool_options, scanner_args,
                            lambda n: progress.advance(bar, n), warm, submitted, unit_done)
    results.sort(key=lambda r: r.rel)
    return results


def worker_config(options: ScanOptions, plan: TriagePlan | None,
                  events: EventFilter | None) -> tuple[ScannerArgs, WorkerSettings]:
    """What every worker of this scan's parse gets: the content scanner's rules (compiled once, or
    taken from the cache) and limits, and the settings (engine chunk, DuckDB memory, EVTX literals,
    triage plan, all digests). Options only: known before the listing (``warm_ahead``)."""
    budget = limits.budget(options.memory_limit, _jobs(options.jobs))
    rules = scan_rules(options.yara, options.iocs)
    scan_logs = options.yara_logs if options.yara_logs is not None else bool(options.yara or options.iocs)
    scanner_args = (rules.blob, min(options.yara_max_size, budget.yara_max), scan_logs)
    settings = (budget.chunk, budget.duckdb, events.literals if events else None, plan, all_digests(options.iocs))
    return scanner_args, settings


def several_files(evidence: Sequence[Path], look: int = 16) -> bool:
    """Whether the evidence holds more than one file, judged from a quick look (at most ``look``
    folders, no links followed) before the listing: a wrong guess costs workers started early or
    late, never a file. Two roots, or a folder with two files under its first folders, say yes."""
    if len(evidence) > 1:
        return True
    folders, found = [str(evidence[0])], 0
    while folders and look > 0:
        look -= 1
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):
                        found += 1
                    elif entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                    if found > 1:
                        return True
        except OSError:  # a file, or a folder the listing will report
            continue
    return False


def warm_ahead(warm: WarmPool, options: ScanOptions, evidence: Sequence[Path], plan: TriagePlan | None,
               events: EventFilter) -> None:
    """Start the workers before the listing when the evidence looks like several files, with the
    parse's configuration, and have them build their content scanners (yara-x deserialising a large
    pack: ~0.1 s per worker, else paid by each worker's first unit after the listing). On a thread
    (``WarmPool.start_ahead``): the fork server may still be importing, and the listing need not
    wait for it. The parse hands the same configuration and finds it applied."""
    jobs = limits.budget(options.memory_limit, _jobs(options.jobs)).jobs
    if options.scheduler or jobs <= 1 or not several_files(evidence):
        return
    scanner_args, settings = worker_config(options, plan, events)
    warm.start_ahead(jobs, scanner_args, settings, options.worker_hook)


def start_workers(warm: WarmPool, options: ScanOptions, work: list[HostWork] | None) -> None:
    """Start the pool's workers as soon as the listing says the scan will use them, so their
    start-up overlaps building the rules and prefilters here."""
    jobs = limits.budget(options.memory_limit, _jobs(options.jobs)).jobs
    if not options.scheduler and jobs > 1 and (work is None or sum(len(hw.files) for hw in work) > 1):
        warm.start(jobs)


def all_digests(iocs: Sequence[Path]) -> bool:
    """SHA-1 and MD5 of every file, logs too, only when a loaded IOC list holds such hashes."""
    return bool(iocs) and bool(load_iocs(iocs).of("md5", "sha1"))


def scan(evidence: Sequence[Path], options: ScanOptions) -> ScanResult:
    if not evidence:
        raise UsageError("give at least one evidence folder or file")
    refuse_overlap(options.out, evidence)
    prestart(options.jobs, options.scheduler, options.yara, options.iocs)  # a no-op when the command line did
    with case_directory(options.out) as case:
        store = case / "store"
        with (custody.case_writes(case), WarmPool() as warm, heap.long_lived() as keep,
              ThreadPoolExecutor(1, thread_name_prefix="exhunt-writes") as writes, contextlib.ExitStack() as stack):
            if store.exists() and not options.resume:
                shutil.rmtree(store)
            drop_unfinished(store)  # parts a killed scan left open: no rows to keep, and no read takes them
            before, stats_before, key_before = resume.previous(store) if options.resume else ({}, {}, None)
            resume.drop_listing_parts(store)
            pivot.drop_parts(store)  # redone on every run, resumed or not: new evidence, new indicators
            (case / "findings.json").unlink(missing_ok=True)
            manifest.remove(case, store)
            events = event_filter(options)
            triage, triage_report = triage_plan(options)
            warm_ahead(warm, options, evidence, triage, events)
            work = plan(evidence, options.host, store)  # the workers start and load their rules meanwhile
            start_workers(warm, options, work)
            key = resume_key(options, triage, events)
            # each file's listed size and time: before the parse only when resuming, else on the writes thread
            stats = resume.listed_stats(work) if options.resume else None
            read: manifest.ReadHashes = {}  # (root, rel) -> SHA-256 and size of the one read of each file
            hashed: manifest.PathHashes = {}  # containers hashed in this process
            skip: frozenset[tuple[str, str]] = frozenset()
            if options.resume and key == key_before:
                resume.check_unchanged_looking(work, stats_before, read, hashed, _jobs(options.jobs))
                skip = resume.unchanged(resume.fingerprints(work, read, hashed), before, key, key_before)
            if options.resume:
                resume.keep_only(store, skip, {(hw.host, f.rel): hw.evidence for hw in work for f in hw.files})
                # until this run ends, the state vouches only for what is still in the store: an
                # interrupted run must not leave the old state claiming rows it just deleted
                resume.save(store, {k: before[k] for k in skip}, key, stats or {})
            meanwhile = Meanwhile()  # this process's work while the workers parse
            prepared = custody.prepare_inputs(work, meanwhile.add)
            if _jobs(options.jobs) > 1 or options.scheduler:  # else the parse runs here: no wait to fill
                meanwhile.add(_load_rules_ahead, list(options.sigma))
                meanwhile.add(_import_store_ahead)
                if options.out and options.html_report:
                    meanwhile.add(_import_report_ahead)
            loader = preload_store(store, options)
            if loader is not None:
                stack.callback(loader.close)
            results = parse_all(work, store, options, skip, triage, events, warm, meanwhile.start,
                                loader.unit_done if loader else None)
            meanwhile.finish()
            keep()  # the listing, the results, the rules and the imports: alive to the end
            if not pivot_may_follow(triage, results, options):
                warm.release()  # their memory back before the detections (--index full: ~0.2 GB)
            else:
                warm.ready_for_pivot()
            read.update(custody.read_hashes(results))  # the parse's own read wins over the pre-check
            inputs = custody.record_inputs(case, store, work, read, hashed, _jobs(options.jobs), __version__,
                                           prepared, writes.submit)  # written while the detections run
            state = writes.submit(_save_state, store, work, read, hashed, key, stats)  # for a later --resume
            with assessed(store, work, options, triage, warm, inputs, loader) as (document, con):
                triage_report = {**triage_report, "pivot": document.rules.get("pivot", PIVOT_NONE)}
                document = replace(document, rules={**{k: v for k, v in document.rules.items() if k != "pivot"},
                                                    "triage": triage_report,
                                                    "evtx_index": events.report(options.index)})
                inputs.wait()  # the manifest before the document: a case with findings has its hashes
                state.result()
                saved = writes.submit(save_document, case, document)  # its write overlaps the report's rendering
                if options.out and options.html_report:
                    save_html_report(case, document, con)
                saved.result()
        return ScanResult(document, case if options.out else Path(), results)


def preload_store(store: Path, options: ScanOptions) -> PartLoader | None:
    """The store's connection, filled as units end (``events.preload``), when the parse runs on a
    pool or a cluster (in one process there is no wait to fill)."""
    if _jobs(options.jobs) <= 1 and not options.scheduler:
        return None
    return PartLoader(store, threads=_jobs(options.jobs), memory_limit=limits.query_memory(options.memory_limit))


def _load_rules_ahead(sigma: list[Path]) -> None:
    """The detections' Sigma rule set, loaded while the workers parse (the prefilters needed only its
    summary). A head start only: whatever fails here fails again, and is reported, where it is used."""
    from exhunt.detections.sigma.loader import load_and_convert

    with contextlib.suppress(Exception):
        load_and_convert(sigma)


def _save_state(store: Path, work: list[HostWork], read: manifest.ReadHashes, hashed: manifest.PathHashes,
                key: str, stats: dict[tuple[str, str], str] | None) -> None:
    """The resume state of this scan's files, on the writes thread while the detections run (20,000
    fingerprints and a Parquet write: 0.05-0.3 s of serial work on the scan process's main thread)."""
    resume.save(store, resume.fingerprints(work, read, hashed), key,
                resume.listed_stats(work) if stats is None else stats)


def _import_store_ahead() -> None:
    """DuckDB (~0.03 s) imported while the workers parse: the modules the scan process imports
    before them name its types for the type checker only."""
    import duckdb  # noqa: F401


def _import_report_ahead() -> None:
    """The reports' modules (Jinja2, the chart, the case view, rich for the terminal's: 60-100 ms)
    imported and the report's template loaded while the workers parse, not before them nor after
    the detections; a head start only, as ``_load_rules_ahead``."""
    import exhunt.reports.terminal  # noqa: F401
    from exhunt.reports.html import report_template

    report_template()


def pivot_may_follow(triage: TriagePlan | None, results: list[FileResult], options: ScanOptions) -> bool:
    """Whether the pivot pass may run on the parse's workers: triage with a prefilter, and a text log
    parsed now (or kept from an earlier scan by --resume)."""
    if triage is None or triage.blob is None or triage.mark:
        return False
    return options.resume or any(r.artifact in RANGE_ARTIFACTS for r in results)


def check_index(options: ScanOptions) -> None:
    """``--index`` selects both the text-log lines and the EVTX chunks: one list of modes."""
    if options.index not in prefilter.INDEX_MODES:
        raise UsageError(f"--index must be one of {', '.join(prefilter.INDEX_MODES)}, not {options.index!r}")


def event_filter(options: ScanOptions) -> EventFilter:
    """Which EVTX chunks this scan parses (``--index``): the loaded detections' texts, or all."""
    check_index(options)
    return eventfilter.build(options.index, CHECKS, options.sigma, options.iocs)


def resume_key(options: ScanOptions, triage: TriagePlan | None = None, events: EventFilter | None = None) -> str:
    """What else must match for a resumed scan to keep old parts (see ``resume.key``); the YARA size
    limit is the one in force, which --memory-limit and --jobs can lower; the text-log prefilter and
    the EVTX chunk literals (another prefilter selects other lines and chunks)."""
    yara_max = min(options.yara_max_size, limits.budget(options.memory_limit, _jobs(options.jobs)).yara_max)
    key = resume.key(__version__, [*options.yara, *options.iocs], yara_max, options.yara_logs)
    if triage is not None:
        digest = hashlib.sha256(triage.blob).hexdigest() if triage.blob else "all"
        key = f"{key}|triage:{digest}:{','.join(sorted(triage.full_sources))}"
    if events is not None and events.literals is not None:
        key = f"{key}|evtx:{hashlib.sha256(repr(events.literals).encode()).hexdigest()}"
    return key


def assess(store: Path, work: list[HostWork], options: ScanOptions | None = None,
           triage: TriagePlan | None = None, warm: WarmPool | None = None,
           inputs: custody.RecordedInputs | None = None) -> AssessmentDocument:
    """Detections and triage over a finished store: re-runnable without re-parsing. With a triage
    plan, the pivot pass stores every text-log row of the attacker's indicators before the mailbox
    impact reads them (``rules["pivot"]`` reports it), on the scan's workers (``warm``) if any.
    ``inputs``: the manifest this scan just recorded (else read from the store)."""
    with assessed(store, work, options, triage, warm, inputs) as (document, _con):
        return document


@contextlib.contextmanager
def assessed(store: Path, work: list[HostWork], options: ScanOptions | None = None,
             triage: TriagePlan | None = None, warm: WarmPool | None = None,
             inputs: custody.RecordedInputs | None = None,
             loader: PartLoader | None = None) -> Iterator[tuple[AssessmentDocument, Any]]:
    """``assess``, with its DuckDB connection open until the block ends: the scan's report reads
    the same views (a second connection over the store cost ~0.07 s of a 2 GB scan's serial time).
    ``loader``: the connection the parse filled (``preload_store``)."""
    options = options or ScanOptions()
    if loader is not None:
        con = loader.connect()
    else:
        con = connect(store, threads=_jobs(options.jobs), memory_limit=limits.query_memory(options.memory_limit))
    try:
        yield _assess(con, store, work, options, triage, warm, inputs), con
    finally:
        con.close()


def _assess(con: Any, store: Path, work: list[HostWork], options: ScanOptions, triage: TriagePlan | None,
            warm: WarmPool | None, inputs: custody.RecordedInputs | None) -> AssessmentDocument:
    hit_rows: list[dict] = []
    context = DetectContext(store=store, yara=options.yara, sigma=options.sigma, iocs=options.iocs,
                            baselines=options.baselines, jobs=_jobs(options.jobs),
                            org_domains=options.org_domains)
    marked = triage is not None and triage.mark
    if marked:
        selected.use_selected(con, store)
    raw_findings, rules = run_detections(con, context, hit_rows)
    findings = custody.cite_inputs(store, sort_findings(raw_findings), inputs.ids if inputs else None)
    hit_rows.sort(key=_hit_order)  # the same table on every run, whatever order queries returned
    write_table(store, "hits", hit_rows)
    read = None
    # --jobs 1 keeps to one core: the hosts' verdicts after the impact, in this thread
    with HostsAhead(con, work, findings) if _jobs(options.jobs) > 1 else contextlib.nullcontext() as ahead:
        if triage is not None and triage.blob is not None and not marked:
            # the hosts' verdicts start as each pivot round's rows are in: after the last round that
            # found rows they run beside the gathering that finds no new indicator (~0.05 s of a 2 GB
            # scan's tail); else beside the impact, as below
            pivoted, read = pivot_pass(con, store, work, options, triage, findings, hit_rows, warm,
                                       ahead.start if ahead else lambda: None)
            rules = {**rules, "pivot": pivoted}
        if marked:  # every row again for the hosts' cursor, the selection for the impact on ``con``
            selected.only_here(con, store)
        if ahead:  # the hosts' verdicts on their own cursor while the impact runs: both are mostly
            # DuckDB queries (the GIL released), and each waited for the other on one core before
            ahead.start_unless_current()
        impact, shared = _impact(con, store, findings, hit_rows, read, marked)
        if shared:  # the reports say why no mailbox access is tied to them
            rules = {**rules, "impact": {"shared_client_ips": shared}}
        reached, reach_rows = attacker_reach(con, findings, [hw.host for hw in work], list(shared))
        if reached:  # the attacker's rows on hosts no finding named: their verdicts again, with them
            findings = sort_findings([*findings, *custody.cite_inputs(store, reached, inputs.ids if inputs else None)])
            hit_rows.extend(reach_rows)
            hit_rows.sort(key=_hit_order)
            write_table(store, "hits", hit_rows)
            if ahead:
                ahead.use(findings)
        hosts = ahead.result() if ahead else _host_assessments(con.cursor(), work, findings)
    if marked:
        selected.restore(con, store)
    document = AssessmentDocument(
        schema_version=DOCUMENT_SCHEMA_VERSION,
        tool_version=__version__,
        generated_at=iso(datetime.now(UTC)) or "",
        hosts=tuple(hosts),
        findings=tuple(findings),
        rules=rules,
        inputs=inputs.roots if inputs else custody.root_inputs(store),
        impact=impact,
    )
    write_table(store, "findings", [finding_row(f) for f in findings])
    return document


def _impact(con: Any, store: Path, findings: Sequence[Finding], hit_rows: list[dict], read: Accesses | None,
            marked: bool) -> tuple[tuple[MailboxImpact, ...], dict[str, int]]:
    """Whose mail: after every detection, and the attacker addresses set aside as shared (a load
    balancer's: ``impact.sources``). ``--index full`` (``marked``): over the selection plus the rows
    triage's pivot pass would store (``pivot_rows``), not every row."""
    if marked:
        read = pivot_rows.add_attacker_rows(con, store, findings, hit_rows)
    if read is None:
        read = read_accesses(con, findings, hit_rows)
    shared = dict(read[0].shared_ips)
    return assess_impact(con, findings, hit_rows, store, read), shared


class HostsAhead:
    """The hosts' verdicts (``_host_assessments``) on a side thread and their own cursor, started as
    soon as the store may be final (``start``: after each pivot round's parts are in). A later
    ``start`` cancels the earlier ones that have not begun (else leaves them to finish unread):
    ``result`` is always that of the latest. Leaving on an error cancels or interrupts every run."""

    def __init__(self, con: Any, work: list[HostWork], findings: Sequence[Finding]) -> None:
        self._con, self._work, self._findings = con, work, findings
        self._side = ThreadPoolExecutor(1, thread_name_prefix="exhunt-hosts")
        self._runs: list[tuple[Future[list[HostAssessment]], Any]] = []  # each with its cursor, latest last
        self._current = False  # the latest started after the store's last change

    def __enter__(self) -> HostsAhead:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            for future, cursor in self._runs:
                if future.cancel():
                    cursor.close()
                else:
                    with contextlib.suppress(Exception):  # finished, its cursor closed
                        cursor.interrupt()
        self._side.shutdown(wait=True)

    def start(self) -> None:
        for future, cursor in self._runs:
            if future.cancel():
                cursor.close()
        cursor = self._con.cursor()
        self._runs.append((self._side.submit(_host_assessments, cursor, self._work, self._findings), cursor))
        self._current = True

    def use(self, findings: Sequence[Finding]) -> None:
        """Judge ``findings`` instead (findings added after the store's last change): start again."""
        self._findings = findings
        self.start()

    def start_unless_current(self) -> None:
        if not self._current:
            self.start()

    def result(self) -> list[HostAssessment]:
        self.start_unless_current()
        return self._runs[-1][0].result()


def _host_assessments(cursor: Any, work: list[HostWork], findings: Sequence[Finding]) -> list[HostAssessment]:
    evidence_by_host: dict[str, list[str]] = {}
    for hw in work:
        evidence_by_host.setdefault(hw.host, []).append(hw.evidence)
    try:
        stats, counts = expected.event_stats(cursor), expected.store_counts(cursor)
        return [host_assessment(cursor, host, tuple(roots), [f for f in findings if f.host == host], stats, counts)
                for host, roots in evidence_by_host.items()]
    finally:
        cursor.close()


PIVOT_NONE = {"reason": "--index full or no triage: every line is stored"}


def pivot_pass(con, store: Path, work: list[HostWork], options: ScanOptions, triage: TriagePlan,  # type: ignore[no-untyped-def]
               findings: Sequence[Finding], hit_rows: list[dict], warm: WarmPool | None = None,
               grew: Callable[[], None] = lambda: None) -> tuple[dict, Any]:
    """The triage pivot pass (exhunt.parallel.pivot): every text log searched for the attacker's
    indicators (exhunt.detections.pivot), in rounds; ``con`` then sees the new rows. Also the
    impact's reading of the store (``Indicators.read``) when the last gathering saw it as it ends
    (no pass added rows since: the pass only adds), else None."""
    latest: list[Any] = [None, -1]  # the last gathering's reading, and the stored rows it saw

    def indicators() -> tuple[dict[str, int], list[str]]:
        found = attacker.gather(con, findings, hit_rows, alongside=_jobs(options.jobs) > 1)
        latest[:] = [found.read, _stored_rows(con)]
        return found.counts(), found.patterns()

    report = pivot.run_rounds(con, store, work, triage, _pivot_pool(work, options, triage), _pivot_scanner(options),
                              indicators, options.progress and not options.quiet, warm, grew)
    return report, latest[0] if latest[1] == _stored_rows(con) else None


def _stored_rows(con: Any) -> int:
    found = con.execute("SELECT count(*) FROM events_stored").fetchone()
    return int(found[0]) if found else 0


def _pivot_pool(work: list[HostWork], options: ScanOptions, triage: TriagePlan) -> PoolOptions:
    budget = limits.budget(options.memory_limit, _jobs(options.jobs))
    return PoolOptions(jobs=budget.jobs, split_size=options.split_size, chunk=budget.chunk,
                       file_timeout=options.file_timeout, settings=(budget.chunk, budget.duckdb, None, triage, False),
                       hook=options.worker_hook, scheduler=options.scheduler, roots=tuple(hw.evidence for hw in work))


def _pivot_scanner(options: ScanOptions) -> ScannerArgs:
    """No content scan in the pivot pass; Dask workers keep the scan's scanner (the same payload:
    nothing rebuilt for the next scan)."""
    if not options.scheduler:
        return (None, 0, False)
    budget = limits.budget(options.memory_limit, _jobs(options.jobs))
    scan_logs = options.yara_logs if options.yara_logs is not None else bool(options.yara or options.iocs)
    return (scan_rules(options.yara, options.iocs).blob, min(options.yara_max_size, budget.yara_max), scan_logs)


def _hit_order(row: dict) -> tuple[str, str, str, int, int, str, str]:
    ts = row.get("ts")
    return (row["finding_id"], str(ts) if ts is not None else "", row.get("path") or "",
            row.get("line") or 0, row.get("record_id") or 0, row.get("source") or "", row.get("excerpt") or "")


def finding_row(f: Finding) -> dict:
    return {"id": f.id, "host": f.host, "check": f.check, "title": f.title, "severity": f.severity,
            "confidence": f.confidence, "category": f.category, "key": f.key, "count": f.count,
            "first_seen": f.first_seen, "last_seen": f.last_seen, "cves": ",".join(f.cves)}


def host_assessment(con, host: str, roots: tuple[str, ...], findings: list[Finding],  # type: ignore[no-untyped-def]
                    stats: expected.EventStats | None = None,
                    counts: expected.StoreCounts | None = None) -> HostAssessment:
    """``stats``: ``coverage.event_stats`` of the store (one pass over the events for every host);
    ``counts``: its ``coverage.store_counts`` (every host's files and warnings at once)."""
    stats = stats if stats is not None else expected.event_stats(con)
    build = builds.assess_host(con, host)
    coverage = expected.host_coverage(con, host, build_known=build is not None and bool(build.build), stats=stats,
                                      counts=counts)
    times = [t for _, first, last in stats.get(host, {}).values() for t in (first, last) if t is not None]
    times += [t for t in con.execute(  # the written times of EVTX records triage did not store: their
        # range, not every file's two facts (33,794 small files: 67,000 times turned into Python, 0.09 s)
        "SELECT min(CAST(value AS TIMESTAMPTZ)), max(CAST(value AS TIMESTAMPTZ)) FROM host_facts "
        "WHERE host = ? AND fact IN (?, ?) AND value IS NOT NULL",
        [host, evtx.FIRST_NOT_STORED, evtx.LAST_NOT_STORED]).fetchone() or () if t is not None]
    first, last = (min(times), max(times)) if times else (None, None)
    assessed = coverage.events > 0 or coverage.files > 0
    return HostAssessment(
        host=host,
        verdict=verdict(findings, assessed, coverage.complete).value,
        evidence=roots,
        build=build,
        coverage=coverage,
        first_seen=iso(first),
        last_seen=iso(last),
    )


def save_html_report(case: Path, document: AssessmentDocument, con: Any = None) -> Path:
    """``con``: the assessment's open connection, whose views the report reads (else its own)."""
    from exhunt.reports.case import Case
    from exhunt.reports.html import render

    path = case / "report.html"
    with path.open("wb") as out:
        render(Case(document, case / "store", con=con), out)
    return path
