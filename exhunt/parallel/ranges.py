"""Big text logs in byte ranges: planned in the parent with C-speed scans, merged back per file.

The parent maps the file and replays where the W3C engine would cut its read chunks
(``bytes.rfind(b"\\n")`` per chunk), so every range starts on a chunk boundary: a range then sees
exactly the segments the whole-file parse sees, and gives the same rows and the same
once-per-segment warnings. The header block in force at a range start comes from the header
lines before it (found with ``find(b"\\n#")``), its first line number from ``count(b"\\n")``.
No Python runs per log line.

Hashing: one extra unit per split file (``WholeUnit``) reads the file once, sequentially, for its
SHA-256/SHA-1/MD5 and content scan, in parallel with the ranges. Hashing runs at several hundred
MB/s against tens of MB/s for parsing, so it costs little and keeps every range independent
(the alternative, the first range hashing the whole file, makes that range the long pole).
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from exhunt.artifacts import choose
from exhunt.artifacts.base import MAX_WARNINGS_PER_FILE
from exhunt.artifacts.encoding import is_utf16
from exhunt.artifacts.evtx import CUT, FIRST_NOT_STORED, LAST_NOT_STORED, NOT_STORED
from exhunt.artifacts.w3c import Block, apply_header
from exhunt.artifacts.w3c_fast import BOM, next_header
from exhunt.bytecount import newlines
from exhunt.events.store import StoreWriter
from exhunt.evidence.base import EvidenceFile
from exhunt.evidence.readonly import open_readonly
from exhunt.parallel.units import (
    RANGE_ARTIFACTS,
    RangeUnit,
    UnitResult,
    WholeUnit,
    _real_path,
    file_key,
    part_name,
)
from exhunt.worker import FileResult

SEEKABLE_SOURCES = ("directory", "file", "kape")  # archive and image members stay whole
DEFAULT_SPLIT_SIZE = 64 << 20
HEAD_BYTES = 4096


class _NoWarn:
    """``apply_header`` wants a context to warn on; the ranges that contain the header warn."""

    def warn(self, *args: Any, **kwargs: Any) -> None:
        return None


def splittable(file: EvidenceFile, split_size: int) -> str | None:
    """The artifact name when ``file`` is a big text log of a source that can seek, else None."""
    if file.size <= split_size or file.source not in SEEKABLE_SOURCES:
        return None
    try:
        with open_readonly(_real_path(file)) as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return None  # the whole-file task reports it
    if is_utf16(head):  # ranges cut UTF-8 bytes; a UTF-16 log is transcoded whole, streaming
        return None
    artifact = choose(file.rel_lower, head)
    return artifact.name if artifact is not None and artifact.name in RANGE_ARTIFACTS else None


def chunk_starts(data: Any, size: int, chunk: int) -> list[int]:
    """Where the engine's read chunks start: after each read it cuts at the last newline.
    A chunk without any newline (one overlong line) makes the rest of the file one piece."""
    starts = [0]
    pos, k = 0, 1
    while (k - 1) * chunk < size:
        newline = data.rfind(b"\n", pos, min(k * chunk, size))
        if newline < 0:
            break
        pos = newline + 1
        if pos < size:
            starts.append(pos)
        k += 1
    return starts


def _headers(data: Any, size: int) -> Iterable[tuple[int, str]]:
    """(position, text) of every line before ``size`` that starts with ``#``, in file order (the
    two-byte search for a line's ``#`` took 0.11 of the 0.12 s to plan a 129 MB log's ranges)."""
    first = 3 if data[:3] == BOM else 0
    pos = first if data[first:first + 1] == b"#" else next_header(data, first)  # the one byte: memchr speed
    while 0 <= pos < size:
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        yield pos, bytes(data[pos:end]).rstrip(b"\r\n").decode("utf-8", "replace")
        pos = next_header(data, end)


def plan_ranges(file: EvidenceFile, host: str, artifact: str, split_size: int, chunk: int,
                sep: str) -> list[RangeUnit]:
    """Cut ``file`` into ranges of about ``split_size`` bytes on engine chunk boundaries."""
    with open_readonly(_real_path(file)) as f:
        size = min(file.size, f.seek(0, 2))
        if size == 0:
            return []
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            starts = chunk_starts(data, size, chunk)
            cuts = [0]
            for s in starts[1:]:
                if s - cuts[-1] >= split_size:
                    cuts.append(s)
            headers = iter(_headers(data, cuts[-1]))
            block, units, pending = Block(), [], next(headers, None)
            line0 = 0
            for i, start in enumerate(cuts):
                while pending is not None and pending[0] < start:
                    block = apply_header(_NoWarn(), block, pending[1], 0, 0, sep)  # type: ignore[arg-type]
                    pending = next(headers, None)
                if i:
                    line0 += newlines(data, cuts[i - 1], start)
                end = cuts[i + 1] if i + 1 < len(cuts) else size
                # a chunk starting at ``start`` (cut after read j = ceil(start / chunk)) ends with read j + 1
                first_read = (-(-start // chunk) + 1) * chunk - start
                units.append(RangeUnit(
                    host, file, artifact, i, start, end, line0, tuple(block.directives.items()),
                    tuple(block.fields), first_read, chunk, part_name(host, file_key(file), "range", str(i))))
    return units


def whole_unit(file: EvidenceFile, host: str) -> WholeUnit:
    return WholeUnit(host, file, part_name(host, file_key(file), "whole"))


def merge(ranges: list[UnitResult], whole: UnitResult | None, store: Path, host: str, part: str) -> FileResult:
    """One split file's results (ranges in file order, then the whole-file pass) with the warning cap
    and fact de-duplication a single parse applies per file; warnings and facts go to one more part."""
    ordered = ranges + ([whole] if whole is not None else [])
    warnings: list[dict[str, Any]] = []
    total = sum(r.warning_count for r in ordered)
    said: dict[tuple[Any, ...], int] = {}  # warning -> the unit that said it first
    for unit, warning in _parse_order(ranges, whole):
        key = (warning.get("line"), warning.get("offset"), warning.get("message"))
        if said.setdefault(key, unit) != unit and str(key[2]).startswith(EVERY_UNIT):  # said once, as one parse does
            total -= 1
            continue
        if len(warnings) < MAX_WARNINGS_PER_FILE:
            warnings.append(warning)
    if total >= MAX_WARNINGS_PER_FILE and len(warnings) == MAX_WARNINGS_PER_FILE:
        warnings[-1] = {**warnings[-1], "message": warnings[-1]["message"] + " (further warnings for this "
                        "file suppressed)"}
    with StoreWriter(store, host, part=part) as writer:
        writer.extend("warnings", warnings)
        writer.extend("host_facts", merged_facts(ordered))
    events = sum(f.events for r in ordered for f in r.files)
    base = whole.files[0] if whole is not None and whole.files else ranges[0].files[0]
    return replace(base, events=events, warnings=total)  # the whole-file pass's size and custody hash


# what every unit of a file says when the file cannot be read (it vanished, a disk error): said once;
# any other warning two units both say is two findings of the file (two chunks with the same records)
EVERY_UNIT = ("cannot open:", "read error")


def _parse_order(ranges: list[UnitResult], whole: UnitResult | None) -> list[tuple[int, dict[str, Any]]]:
    """(unit index, warning) in the order one parse of the file says them: an EVTX file's chunk checks
    first (a cut chunk's before all), then each range's other warnings, then the whole-file pass's."""
    checks = [(i, w) for i, r in enumerate(ranges) for w in r.warnings[: r.leading]]
    checks.sort(key=lambda item: not str(item[1].get("message", "")).startswith(CUT))  # stable: file order kept
    rest = [(i, w) for i, r in enumerate(ranges) for w in r.warnings[r.leading :]]
    after = [(len(ranges), w) for w in whole.warnings] if whole is not None else []
    return checks + rest + after


def _later(a: str, b: str) -> str:
    return max(a, b, key=datetime.fromisoformat)


def _earlier(a: str, b: str) -> str:
    return min(a, b, key=datetime.fromisoformat)


# facts each range says of its own part: the file's is their sum, or the widest time range
COMBINED: dict[str, Callable[[str, str], str]] = {
    NOT_STORED: lambda a, b: str(int(a) + int(b)), FIRST_NOT_STORED: _earlier, LAST_NOT_STORED: _later}


def merged_facts(results: list[UnitResult]) -> list[dict[str, Any]]:
    """The facts of a split file's units as one parse says them: each value once (the software and
    version of a header every range carries), and the counts of an EVTX file's records that triage did
    not store summed, with the earliest and latest of their times."""
    facts: dict[tuple[str, str], dict[str, Any]] = {}
    combined: dict[str, dict[str, Any]] = {}
    for r in results:
        for fact in r.facts:
            how = COMBINED.get(fact["fact"])
            seen = combined.get(fact["fact"])
            if how is None:
                facts.setdefault((fact["fact"], fact["value"]), fact)
            elif seen is None:
                combined[fact["fact"]] = fact
            else:
                combined[fact["fact"]] = {**seen, "value": how(seen["value"], fact["value"])}
    return [*facts.values(), *combined.values()]
