"""The per-file task run in worker processes: sniff, parse, hash, write this file's store parts.

Module-level and picklable so it runs under the ``spawn`` start method (Windows, macOS) and in
workers forked from the fork server (Linux).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

from exhunt.artifacts import choose
from exhunt.artifacts.base import ParseContext
from exhunt.artifacts.files import HEAD_BYTES, drain, extra_digests_for, file_row, open_hashing
from exhunt.artifacts.unrecognised import warning as unclaimed_warning
from exhunt.detections.filescan import scan_file
from exhunt.detections.yara import FileScanner
from exhunt.events.store import StoreWriter
from exhunt.evidence.archive_formats import problem_of
from exhunt.evidence.base import EvidenceFile

# --- file-scanning hook (YARA, heuristics, archive members): set once per worker process -----------
_SCANNER: FileScanner | None = None
# compiled rules (or a file holding them), YARA size limit, scan parsed logs too
ScannerArgs = tuple[bytes | Path | None, int, bool]


def rules_bytes(rules: bytes | Path | None) -> bytes | None:
    """The serialized rules, read from their file when the pool shipped a path."""
    return rules.read_bytes() if isinstance(rules, Path) else rules


def init_scanner(rules_blob: bytes | Path | None, max_size: int, scan_logs: bool = False) -> FileScanner | None:
    """Pool initializer: one yara-x Scanner per worker process, from the serialized rules."""
    blob = rules_bytes(rules_blob)
    return use_scanner(FileScanner(blob, max_size, scan_logs) if blob else None)


def use_scanner(scanner: FileScanner | None) -> FileScanner | None:
    """The scanner the file tasks of this process use from now on (a Dask worker thread swaps in its
    own: yara-x scanners belong to the thread that built them). The one way to set it."""
    global _SCANNER
    _SCANNER = scanner
    return scanner
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileResult:
    rel: str
    artifact: str | None
    size: int
    events: int
    warnings: int
    # the custody hash of the one read (manifest.json is built from it): None when this result did
    # not read the whole file (a byte range, a timed-out file), "unreadable: why" when it could not
    sha256: str | None = None
    root: str = ""  # the file's evidence root, with ``rel`` its identity in the listing


def process_file(file: EvidenceFile, host: str, store: str) -> FileResult:
    """Parse one evidence file into its own Parquet parts; never raises for bad evidence."""
    return process_files([file], host, store)[0]


def process_files(files: list[EvidenceFile], host: str, store: str) -> list[FileResult]:
    """A batch of (small) files sharing one writer: one Parquet part per table per batch, not per
    file, so web roots of tens of thousands of small pages do not cost a part file each."""
    with StoreWriter(Path(store), host) as writer:
        return [_process(file, host, writer) for file in files]


def process_bytes(file: EvidenceFile, host: str, writer: StoreWriter, data: bytes) -> FileResult:
    """One file already read whole (an archive member the content scan opened), as ``_process``."""
    return _process(file, host, writer, data=data)


def _process(file: EvidenceFile, host: str, writer: StoreWriter, parse: bool = True,
             ctx: ParseContext | None = None, data: bytes | None = None) -> FileResult:
    """``parse=False``: hash, inventory and content-scan only (the byte ranges of a split log parse it).
    ``data``: the whole file, already read by the fast lane (``exhunt.smallfiles``): not read again."""
    ctx = ctx or ParseContext(host=host, file=file, writer=writer)
    try:
        stream, raw = open_hashing(file, capture=_SCANNER is not None and _SCANNER.wants(file.size),
                                   capture_limit=_SCANNER.max_size if _SCANNER is not None else None, data=data)
    except OSError as exc:
        ctx.artifact = "files"
        ctx.warn(f"cannot open: {exc.strerror or exc}")
        return FileResult(file.rel, None, 0, 0, ctx.warnings, f"unreadable: {exc.strerror or exc}", file.root)
    with stream:
        try:
            head = stream.peek(HEAD_BYTES)[:HEAD_BYTES]
        except OSError as exc:  # a corrupt archive member can fail on its first read
            head = b""
            ctx.artifact = "files"
            ctx.warn(f"read error: {exc.strerror or exc}")
        artifact = choose(file.rel_lower, head)
        raw.want_extra_digests(extra_digests_for(artifact))
        ctx.artifact = artifact.name if artifact else "files"
        if artifact is None and file.rel_lower.endswith(".evtx"):  # evidence a responder expects read
            ctx.warn("named .evtx but " + ("empty" if not head else "without the EVTX signature (ElfFile)")
                     + ": not parsed as an event log, only inventoried and scanned as a file", offset=0)
        elif artifact is None and (why := unclaimed_warning(file.rel_lower, head, file.size)):
            ctx.artifact = "unrecognised"  # counted in the host's coverage (findings/coverage.py)
            ctx.warn(why, offset=0)
            ctx.artifact = "files"
        content_scan = _SCANNER is not None and not _SCANNER.skips(artifact.name if artifact else None)
        if not content_scan:
            raw.chunks = None  # nothing to keep for YARA
        if artifact is not None and parse:
            try:
                artifact.parse(ctx, stream)
            except OSError as exc:
                ctx.warn(f"read error while parsing: {exc.strerror or exc}")
            except Exception as exc:  # a parser bug must not lose the rest of the evidence
                where = traceback.extract_tb(exc.__traceback__)[-1]
                ctx.warn(f"parser error {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})")
        read_error = None
        try:
            drain(stream)
        except OSError as exc:
            read_error = f"unreadable: {exc.strerror or exc}"  # the manifest claims no hash of a partial read
            ctx.warn(f"read error while hashing: {exc.strerror or exc}")
        if file.source == "archive":  # its size is the archive's word, not a listing's
            if (problem := problem_of(raw)) is not None:  # a compressed stream cut short, a bomb
                ctx.warn(problem)
            if raw.bytes_read != file.size:
                ctx.warn(f"member read as {raw.bytes_read:,} bytes; its archive declared {file.size:,}")
        elif raw.bytes_read != file.size:
            ctx.warn(f"file changed while read: listed {file.size} bytes, read {raw.bytes_read}")
        sha256 = raw.sha256.hexdigest()
        writer.add("files", file_row(host, file, raw, head, artifact.name if artifact else None, sha256))
        if _SCANNER is not None and content_scan:
            data = b"".join(raw.chunks) if raw.chunks is not None else None
            raw.chunks = None
            try:
                scan_file(_SCANNER, ctx, file, data, sha256, head)
            except Exception as exc:  # a scanner failure on hostile content loses only this file's scan
                ctx.warn(f"content scan error {type(exc).__name__}: {exc}")
    return FileResult(file.rel, artifact.name if artifact else None, raw.bytes_read, ctx.events, ctx.warnings,
                      read_error or sha256, file.root)
