"""Load Sigma rules (exhunt's own pack plus user files/folders) and convert them once.

Parsing and converting are pySigma's work (``parsing``, imported only when needed); this module
keeps their results. One scan needs the rules three times (the text-log prefilter, the EVTX chunk
filter, the detections): ``parsed``, ``converted_queries`` and ``load_and_convert`` keep their
result per process, keyed by the digest of every rule file's path and bytes, so each rule set is
parsed and converted once (an edited file is a new key). pySigma's pipelines change rules in place
while converting, so the conversion works on a deep copy and ``parsed`` keeps the rules as written.

Across processes (every scan, text-log scans too, needs the rules before its workers have work)
the results are pickled under ``$EXHUNT_CACHE/sigma`` (default ``~/.cache/exhunt/sigma``, like the
YARA and Hyperscan caches), keyed by the rule set's digest, the pySigma and exhunt versions and the
bytes of the code and pipelines that convert them (``exhunt.detections.sigma.cache``), twice: the
parsed and converted pySigma rules (what the summary's derivation needs), and the set the engine
runs, with each rule as plain ``RuleInfo``. A scan reads only the latter, so neither pySigma nor
pyparsing is imported (~0.15 CPU s with this module's former imports) and pySigma's rule objects
are not rebuilt (a cost that grows with the pack).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from exhunt.detections.sigma.queries import CompiledQuery, RuleSet, plain, rule_path  # noqa: F401 - loader's API
from exhunt.detections.sigma.rulefiles import builtin_rules, digest, rule_files  # noqa: F401 - loader's API

if TYPE_CHECKING:
    from exhunt.detections.sigma.parsing import Rule

    # what the pySigma pickle holds: the rules as written and their bookkeeping, the converted
    # queries (their rules changed by the pipelines) and the plain set the engine runs
    Full = tuple[list[Rule], RuleSet, list[CompiledQuery[Rule]], RuleSet]


def load(paths: Sequence[Path], include_builtin: bool = True) -> tuple[list[Rule], RuleSet]:
    """Parse every file; a file or rule that does not parse becomes a failure with its reason."""
    from exhunt.detections.sigma import parsing

    return parsing.load(paths, include_builtin)


def convert_rules(rules: list[Rule], ruleset: RuleSet) -> tuple[list[CompiledQuery[Rule]], RuleSet]:
    """pySigma's queries of ``rules`` (changed in place) and ``ruleset`` with their plain twins and
    the conversion's failures."""
    from exhunt.detections.sigma import parsing

    queries = parsing.convert(rules, ruleset)
    ruleset.queries = plain(queries)
    return queries, ruleset


def convert(rules: list[Rule], ruleset: RuleSet) -> RuleSet:
    """Convert all rules in one collection (correlations resolve their references across files)."""
    return convert_rules(rules, ruleset)[1]


CACHED_SETS = 4  # rule sets kept per process (a scan uses one; tests use many)
_FULL: dict[str, tuple[list[Rule], RuleSet, list[CompiledQuery[Rule]]]] = {}
_CONVERTED: dict[str, RuleSet] = {}
_FILLING = threading.RLock()  # a scan loads its rules in a thread while its workers parse


def forget() -> None:
    """Drop this process's parsed and converted rule sets (a benchmark timing a cold scan)."""
    _FULL.clear()
    _CONVERTED.clear()


def _remember(cache: dict, key: str, value: object) -> None:
    cache[key] = value
    while len(cache) > CACHED_SETS:
        cache.pop(next(iter(cache)))


def parsed(paths: Sequence[Path], include_builtin: bool = True) -> tuple[list[Rule], RuleSet]:
    """``load`` once per rule set and process: the rules as written (callers must not change them)."""
    key = digest(paths, include_builtin)
    with _FILLING:
        if key not in _FULL:
            _from_disk_or_load(key, paths, include_builtin)
        rules, ruleset, _ = _FULL[key]
    return list(rules), replace(ruleset, failed=list(ruleset.failed), sources=list(ruleset.sources))


def converted_queries(paths: Sequence[Path], include_builtin: bool = True) -> list[CompiledQuery[Rule]]:
    """pySigma's converted queries, their rules as the pipelines left them (the summary derives the
    prefilters from those; callers must not change them)."""
    key = digest(paths, include_builtin)
    with _FILLING:
        if key not in _FULL:
            _from_disk_or_load(key, paths, include_builtin)
        return list(_FULL[key][2])


def load_and_convert(paths: Sequence[Path], include_builtin: bool = True) -> RuleSet:
    """Parsed and converted once per rule set and process, each rule as ``RuleInfo`` (pySigma is
    not imported when the set is on disk); each caller gets its own RuleSet (the engine adds
    run-time failures to it), sharing the compiled queries."""
    from exhunt.detections.sigma import cache

    key = digest(paths, include_builtin)
    with _FILLING:
        if key not in _CONVERTED:
            stored = cache.read_plain(key)
            if stored is not None:
                _remember(_CONVERTED, key, stored)
            else:
                _from_disk_or_load(key, paths, include_builtin, store_plain=True)
        ruleset = _CONVERTED[key]
    return replace(ruleset, queries=list(ruleset.queries), failed=list(ruleset.failed),
                   sources=list(ruleset.sources))


def _from_disk_or_load(key: str, paths: Sequence[Path], include_builtin: bool, store_plain: bool = False) -> None:
    """Fill this process's caches for ``key``: from the pySigma pickle, else by parsing and
    converting (both: every scan needs both, and one pickle keeps converted rules apart from
    parsed ones). ``store_plain``: the plain set's file was absent or unusable, write it."""
    from exhunt.detections.sigma import cache

    entry: Full | None = cache.read(key)
    if entry is None:
        rules, ruleset = load(paths, include_builtin)
        entry = (rules, ruleset, *convert_rules(*copy.deepcopy((rules, ruleset))))
        cache.write(key, entry)
        store_plain = True
    rules, ruleset, queries, converted = entry
    if store_plain:
        cache.write_plain(key, converted)
    _remember(_FULL, key, (rules, ruleset, queries))
    if key not in _CONVERTED:  # a set already handed out stays the one this process runs
        _remember(_CONVERTED, key, converted)
