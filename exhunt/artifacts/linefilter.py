"""The triage prefilter: one Hyperscan multi-pattern scan over a buffer of text-log lines, returning
the lines that any pattern matches, so that only those are parsed.

Compiled once per scan (in the scan process) into bytes shipped to every worker; each worker loads
it once. The first pass's database is kept under ``$EXHUNT_CACHE/hyperscan`` (default
``~/.cache/exhunt/hyperscan``), keyed by the patterns, flags and Hyperscan version: compiling it
costs a few tenths of a second, loading it nothing.

Patterns are matched case-insensitively, ``^``/``$`` at line boundaries; a match that a character
class carries across a newline only adds a candidate line, never loses one (every match inside one
line is also a match in the buffer).
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:  # a wheel that cannot load on this platform: triage reports why and the scan parses in full
    import hyperscan as _hs

    LOAD_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover - the wheel is a dependency; this is the loud fallback
    _hs = None  # type: ignore[assignment]
    LOAD_ERROR = f"the hyperscan module cannot be loaded ({exc})"

FLAGS = ("CASELESS", "MULTILINE")


@dataclass(frozen=True)
class TriagePlan:
    """What every worker needs for triage: the compiled prefilter (None: parse every line) and the
    sources (``iis``, ``httpproxy``, ... or ``*``) that are parsed in full anyway. ``pivot`` is set
    only for the pivot pass (``exhunt.parallel.pivot``): the attacker indicators' database, whose
    lines the first pass did not store are parsed and stored then; ``searched``, the database of
    the pass's earlier rounds, whose lines are stored already. ``fact_from``: the patterns of
    ``blob`` from that id on (an artifact's fact, such as the OWA build in a resource path) select
    lines the parser reads that fact from without storing them."""

    blob: bytes | None
    full_sources: frozenset[str] = frozenset()
    pivot: bytes | None = None
    searched: bytes | None = None
    fact_from: int | None = None  # ids of ``blob`` from here on: lines read for a fact, not stored
    # the patterns of ``blob`` before ``fact_from`` (its stored ones): a worker compiles them alone for
    # logs no fact is read from, and with the fact values it has learnt for those that have one
    stored: tuple[str, ...] = ()
    facts: tuple[str, ...] = ()  # the patterns of ``blob`` from ``fact_from`` on
    # (pattern, scope) of stored patterns that serve only the logs whose header the scope names
    # (``artifacts.scopes``): a worker compiles the stored patterns of each header's scopes
    scoped: tuple[tuple[str, str], ...] = ()
    # --index full: every line is parsed and stored, and the lines triage would store are stored a
    # second time in ``selected_events``, the web rows the detections read (``api.assess``)
    mark: bool = False


class PatternError(ValueError):
    """A pattern Hyperscan refuses (named by its origin)."""


@dataclass(frozen=True)
class Compiled:
    """A serialized database and the patterns it holds (for the report)."""

    blob: bytes
    patterns: tuple[str, ...]


def available() -> bool:
    return _hs is not None


def _flags() -> int:
    value = 0
    for name in FLAGS:
        value |= getattr(_hs, f"HS_FLAG_{name}")
    return value


def _pattern_flags(count: int, single_from: int | None) -> list[int]:
    """Every pattern's flags; from ``single_from`` on only a pattern's first match is reported."""
    flags = [_flags()] * count
    if single_from is not None:
        flags[single_from:] = [_flags() | _hs.HS_FLAG_SINGLEMATCH] * (count - single_from)
    return flags


def check_pattern(pattern: str) -> str | None:
    """Why Hyperscan refuses ``pattern`` alone, or None when it compiles."""
    if _hs is None:
        return LOAD_ERROR
    try:
        _database([pattern])
    except _hs.error as exc:  # type: ignore[attr-defined]
        return str(exc)
    return None


def _database(patterns: Sequence[str], single_from: int | None = None):  # type: ignore[no-untyped-def]
    db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
    db.compile(expressions=[p.encode("utf-8", "surrogateescape") for p in patterns],
               ids=list(range(len(patterns))), elements=len(patterns),
               flags=_pattern_flags(len(patterns), single_from))
    return db


def cache_dir() -> Path:
    base = os.environ.get("EXHUNT_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "exhunt") / "hyperscan"


@functools.cache
def _engine_version() -> str:
    """The installed Hyperscan binding's version, read once per process (reading the package's
    metadata cost ~0.1 ms per call: 0.12 s of a worker's CPU when asked for every log file)."""
    try:
        return version("hyperscan")
    except PackageNotFoundError:  # pragma: no cover - installed without metadata
        return "unknown"


def cache_key(patterns: Sequence[str], single_from: int | None = None) -> str:
    """SHA-256 of what the database depends on: the engine's version, mode, flags and patterns."""
    engine = _engine_version()
    single = "" if single_from is None else f"\0single@{single_from}"
    digest = hashlib.sha256(f"{engine}\0block\0{','.join(FLAGS)}{single}".encode())
    for pattern in patterns:
        digest.update(b"\0" + pattern.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _cache_path(cache: Path, unique: Sequence[str], single_from: int | None) -> Path:
    return cache / f"{cache_key(unique, single_from)}.hsdb"


def is_cached(patterns: Sequence[str], cache: Path, single_from: int | None = None) -> bool:
    """Whether ``compile_patterns(patterns, cache, single_from)`` would load rather than compile."""
    return _cache_path(cache, tuple(dict.fromkeys(patterns)), single_from).is_file()


def _cached(path: Path) -> bytes | None:
    """A stored database that still loads (a truncated or foreign file is compiled again)."""
    try:
        blob = path.read_bytes()
        _hs.loadb(blob, _hs.HS_MODE_BLOCK)
    except (OSError, _hs.error):  # type: ignore[attr-defined]
        return None
    return blob


def _store(path: Path, blob: bytes) -> None:
    try:  # a read-only home only costs the next scan the compile
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(blob)
        tmp.replace(path)
    except OSError:
        pass


def compile_patterns(patterns: Sequence[str], cache: Path | None = None,
                     single_from: int | None = None) -> Compiled:
    """One database of every pattern (duplicates dropped); raises PatternError naming a bad one.
    With ``cache`` (a folder), a set compiled before is loaded from there and a new one stored.
    ``single_from``: the patterns from this id on report their first match only (no duplicates
    may come before it: ids must stay those of ``patterns``)."""
    unique = tuple(dict.fromkeys(patterns))
    if _hs is None:
        raise PatternError(LOAD_ERROR or "hyperscan unavailable")
    if not unique:
        raise PatternError("no patterns")
    if single_from is not None and len(unique) != len(patterns):
        raise PatternError("duplicate patterns in a database with first-match-only ids")
    path = _cache_path(cache, unique, single_from) if cache is not None else None
    if path is not None and (blob := _cached(path)) is not None:
        return Compiled(blob, unique)
    try:
        db = _database(unique, single_from)
    except _hs.error as exc:  # type: ignore[attr-defined]
        bad = [p for p in unique if check_pattern(p)]
        raise PatternError(f"{exc}: {bad[0] if bad else '?'}") from exc
    blob = _hs.dumpb(db)
    if path is not None:
        _store(path, blob)
    return Compiled(blob, unique)


class _Lines:
    """The lines that matches end in, each once, in order (Hyperscan reports matches by end)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.found: list[tuple[int, int]] = []
        self.last_end = -1

    def add(self, end: int) -> None:
        if end <= self.last_end:  # another match in a line already taken
            return
        data = self.data
        start = data.rfind(b"\n", 0, end) + 1 if end else 0
        if end and data[end - 1:end] == b"\n":  # a class carried the match up to the newline
            start = data.rfind(b"\n", 0, end - 1) + 1
            stop = end
        else:
            stop = data.find(b"\n", end)
            stop = len(data) if stop < 0 else stop + 1
        self.found.append((start, stop))
        self.last_end = max(self.last_end, stop - 1)

    def spans(self) -> list[tuple[int, int]]:
        found = self.found
        if any(found[i][0] < found[i - 1][1] for i in range(1, len(found))):  # out of order: merged
            merged: list[tuple[int, int]] = []
            for span in sorted(set(found)):
                if merged and span[0] < merged[-1][1]:
                    continue
                merged.append(span)
            found = merged
        return found


def _stop(*_match: object) -> bool:
    return True  # Hyperscan: stop scanning


class LineSelector:
    """Finds the lines of a buffer that hold a match of the compiled patterns. Patterns from
    ``fact_from`` on select lines a parser only reads a fact from (``select``), never stores; from
    ``single_from`` on (first match only, see ``compile_patterns``) they give where each first
    matched (``select_firsts``)."""

    def __init__(self, blob: bytes, fact_from: int | None = None, single_from: int | None = None) -> None:
        if _hs is None:
            raise PatternError(LOAD_ERROR or "hyperscan unavailable")
        self.db = _hs.loadb(blob, _hs.HS_MODE_BLOCK)
        self.db.scratch = _hs.Scratch(self.db)
        self.fact_from = fact_from
        self.single_from = single_from

    def spans(self, data: bytes) -> list[tuple[int, int]]:
        """(start, end) of every line to store, newline included, in order, each once."""
        return self.select(data)[0]

    def any(self, data: bytes | memoryview) -> bool:
        """Whether any pattern matches ``data`` (the scan stops at the first match)."""
        try:  # the binding takes any buffer; its stubs name only str and bytes
            self.db.scan(data, match_event_handler=_stop)  # type: ignore[type-var]
        except _hs.ScanTerminated:
            return True
        return False

    def select(self, data: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The lines to store and the lines a fact pattern matches (stored or not), as ``spans``."""
        store, facts, _firsts = self.select_firsts(data)
        return store, facts

    def select_firsts(self, data: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]], dict[int, int]]:
        """``select``, and the end of the first match of each first-match-only pattern that matched
        (by its id less ``single_from``)."""
        store, facts = _Lines(data), _Lines(data)
        first_fact = self.fact_from if self.fact_from is not None else 1 << 62  # no fact-only ids
        first_single = self.single_from if self.single_from is not None else 1 << 62
        firsts: dict[int, int] = {}

        def on_match(pattern: int, _start: int, end: int, _flags: int, _ctx: object) -> None:
            if pattern >= first_single:
                firsts[pattern - first_single] = end
                return
            lines = store if pattern < first_fact else facts
            if end > lines.last_end:  # else another match in a line already taken
                lines.add(end)

        self.db.scan(data, match_event_handler=on_match)
        return store.spans(), facts.spans(), firsts
