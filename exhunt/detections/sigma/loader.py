"""Load Sigma rules (exhunt's own pack plus user files/folders) and convert them once.

Every rule that fails to parse or convert is kept with its reason, never dropped silently:
YAML and Sigma errors are collected per file (``collect_errors=True``), conversion errors per
rule by the backend.

One scan needs the rules three times (the text-log prefilter, the EVTX chunk filter, the
detections): ``parsed`` and ``load_and_convert`` keep their result per process, keyed by the
digest of every rule file's path and bytes, so each rule set is parsed and converted once (an
edited file is a new key). pySigma's pipelines change rules in place while converting, so the
conversion works on a deep copy and ``parsed`` keeps the rules as written.

Across processes (every scan, text-log scans too, needs the rules before its workers have work):
the parsed rules and the converted set are pickled under ``$EXHUNT_CACHE/sigma`` (default
``~/.cache/exhunt/sigma``, like the YARA and Hyperscan caches), keyed by the rule set's digest, the
pySigma and exhunt versions and the bytes of the code and pipelines that convert them
(``exhunt.detections.sigma.cache``). Parse plus convert of the bundled and shared packs cost ~0.1-0.4 s per scan;
reading the pickle ~10 ms.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule

from exhunt.detections.sigma.backend import CompiledQuery, DuckDBBackend
from exhunt.detections.sigma.rulefiles import builtin_rules, digest, rule_files  # noqa: F401 - loader's API

PIPELINES = ("windows.yml", "webserver.yml")
# libyaml's loader builds the same objects as pySigma's ``yaml.safe_load_all`` (same constructor),
# about 5x faster: rule loading is a fixed cost of every scan.
SAFE_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Rule = SigmaRule | SigmaCorrelationRule


@dataclass
class RuleSet:
    """Converted queries plus the bookkeeping that goes into the document's ``rules`` section."""

    queries: list[CompiledQuery] = field(default_factory=list)
    loaded: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def fail(self, rule: Rule | None, path: str, reason: str) -> None:
        title = (rule.title if rule is not None else "") or ""
        rule_id = str(rule.id) if rule is not None and rule.id else ""
        entry = {"path": path, "id": rule_id, "title": title, "reason": reason}
        if entry not in self.failed:
            self.failed.append(entry)

    def report(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "converted": len({id(q.rule) for q in self.queries}),
            "failed": sorted(self.failed, key=lambda f: (f["path"], f["title"])),
            "sources": self.sources,
        }


def pipeline() -> ProcessingPipeline:
    folder = resources.files("exhunt").joinpath("data", "sigma", "pipelines")
    result = ProcessingPipeline()
    for name in PIPELINES:
        text = folder.joinpath(name).read_text(encoding="utf-8")  # libyaml's parser: ~10x pySigma's
        result = result + ProcessingPipeline.from_dict(yaml.load(text, Loader=SAFE_LOADER))
    return result


def rule_path(rule: Rule) -> str:
    source = rule.source
    return str(source.path) if source is not None and source.path is not None else ""


def _reason(exc: Exception) -> str:
    """One line, with the YAML position when the parser knows it."""
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{type(exc).__name__}: {exc}".splitlines()[0] + where


# What pySigma and PyYAML raise on hostile or mistyped input besides their own errors (an
# impossible date, ``id: 5``, ``condition: 5``): a rule file must never stop the scan.
BAD_RULE_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError)


def load(paths: Sequence[Path], include_builtin: bool = True) -> tuple[list[Rule], RuleSet]:
    """Parse every file; a file or rule that does not parse becomes a failure with its reason."""
    ruleset = RuleSet()
    inputs = ([builtin_rules()] if include_builtin else []) + list(paths)
    ruleset.sources = [str(p) for p in inputs]
    rules: list[Rule] = []
    for file in rule_files(inputs):
        try:
            documents = list(yaml.load_all(file.read_text(encoding="utf-8"), Loader=SAFE_LOADER))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, *BAD_RULE_ERRORS) as exc:
            ruleset.fail(None, str(file), _reason(exc))
            continue
        mappings = []
        for number, document in enumerate(documents, 1):
            if isinstance(document, dict):
                mappings.append(document)
            elif document is not None:
                kind = type(document).__name__
                ruleset.fail(None, str(file), f"not a Sigma rule: YAML document {number} is a {kind}, not a mapping")
        if not documents or not any(d is not None for d in documents):
            ruleset.fail(None, str(file), "no Sigma rule in the file")
        for collection in _collections(file, mappings, ruleset):
            _take(collection, file, rules, ruleset)
    return rules, ruleset


def _collections(file: Path, mappings: list[dict], ruleset: RuleSet) -> list[SigmaCollection]:
    """The file's documents as one collection (``action: global`` spans documents); when that
    raises, each document alone, so one bad document costs only itself."""
    def parse(documents: list[dict]) -> SigmaCollection:
        return SigmaCollection.from_dicts(documents, collect_errors=True, source=SigmaRuleLocation(file),
                                          resolve_references=False)
    if not mappings:
        return []
    try:
        return [parse(mappings)]
    except (SigmaError, *BAD_RULE_ERRORS):
        pass
    collections = []
    for document in mappings:
        try:
            collections.append(parse([document]))
        except (SigmaError, *BAD_RULE_ERRORS) as exc:
            title = str(document.get("title") or "")
            ruleset.fail(None, str(file), f"{title + ': ' if title else ''}{_reason(exc)}")
    return collections


def _take(collection: SigmaCollection, file: Path, rules: list[Rule], ruleset: RuleSet) -> None:
    for rule in collection.rules:
        if not isinstance(rule, (SigmaRule, SigmaCorrelationRule)):
            continue
        ruleset.loaded += 1
        if rule.errors:
            ruleset.fail(rule, str(file), "; ".join(str(e) for e in rule.errors))
        elif isinstance(rule, SigmaRule) and not all(isinstance(c, str) for c in rule.detection.condition):
            ruleset.fail(rule, str(file), "condition must be text (a string or a list of strings)")
        else:
            rules.append(rule)
    for error in collection.errors:
        if not any(error in (r.errors or []) for r in collection.rules):
            ruleset.fail(None, str(file), str(error))


def convert(rules: list[Rule], ruleset: RuleSet) -> RuleSet:
    """Convert all rules in one collection (correlations resolve their references across files)."""
    try:
        ruleset.queries = _convert(rules, ruleset)
    except BAD_RULE_ERRORS:  # a rule pySigma trips over: find it alone, then convert the others
        good = []
        for rule in rules:
            if isinstance(rule, SigmaRule):
                try:
                    DuckDBBackend(pipeline(), collect_errors=True).convert(SigmaCollection([rule]))  # type: ignore[arg-type]
                except BAD_RULE_ERRORS as exc:
                    ruleset.fail(rule, rule_path(rule), _reason(exc))
                    continue
            good.append(rule)
        try:
            ruleset.queries = _convert(good, ruleset)
        except BAD_RULE_ERRORS as exc:
            ruleset.fail(None, "", f"Sigma conversion stopped, no rule converted: {_reason(exc)}")
            ruleset.queries = []
    return ruleset


def _convert(rules: list[Rule], ruleset: RuleSet) -> list[CompiledQuery]:
    try:
        collection = SigmaCollection(list(rules), resolve_references=True)  # type: ignore[arg-type]
    except SigmaError as exc:  # an unresolvable reference: convert without the correlations
        ruleset.fail(None, "", f"rule references: {exc}")
        collection = SigmaCollection([r for r in rules if isinstance(r, SigmaRule)])
    backend = DuckDBBackend(pipeline(), collect_errors=True)  # type: ignore[arg-type]
    queries = list(backend.convert(collection))
    for rule, error in backend.errors:
        ruleset.fail(rule, rule_path(rule), str(error).splitlines()[0])
    return queries


CACHED_SETS = 4  # rule sets kept per process (a scan uses one; tests use many)
_PARSED: dict[str, tuple[list[Rule], RuleSet]] = {}
_CONVERTED: dict[str, RuleSet] = {}
_FILLING = threading.RLock()  # a scan loads its rules in a thread while its workers parse


def forget() -> None:
    """Drop this process's parsed and converted rule sets (a benchmark timing a cold scan)."""
    _PARSED.clear()
    _CONVERTED.clear()


def _remember(cache: dict, key: str, value: object) -> None:
    cache[key] = value
    while len(cache) > CACHED_SETS:
        cache.pop(next(iter(cache)))


def parsed(paths: Sequence[Path], include_builtin: bool = True) -> tuple[list[Rule], RuleSet]:
    """``load`` once per rule set and process: the rules as written (callers must not change them)."""
    key = digest(paths, include_builtin)
    with _FILLING:
        if key not in _PARSED:
            _from_disk_or_load(key, paths, include_builtin)
        rules, ruleset = _PARSED[key]
    return list(rules), replace(ruleset, failed=list(ruleset.failed), sources=list(ruleset.sources))


def load_and_convert(paths: Sequence[Path], include_builtin: bool = True) -> RuleSet:
    """Parsed and converted once per rule set and process; each caller gets its own RuleSet (the
    engine adds run-time failures to it), sharing the compiled queries."""
    key = digest(paths, include_builtin)
    with _FILLING:
        if key not in _CONVERTED:
            if key not in _PARSED:
                _from_disk_or_load(key, paths, include_builtin)
            if key not in _CONVERTED:  # parsed in this process before, never converted
                rules, ruleset = parsed(paths, include_builtin)
                _remember(_CONVERTED, key, convert(*copy.deepcopy((rules, ruleset))))
        ruleset = _CONVERTED[key]
    return replace(ruleset, queries=list(ruleset.queries), failed=list(ruleset.failed),
                   sources=list(ruleset.sources))


def _from_disk_or_load(key: str, paths: Sequence[Path], include_builtin: bool) -> None:
    """Fill this process's caches for ``key``: from the disk cache, else by parsing and converting
    (both: every scan needs both, and one pickle keeps converted rules apart from parsed ones)."""
    from exhunt.detections.sigma import cache

    entry = cache.read(key)
    if entry is None:
        rules, ruleset = load(paths, include_builtin)
        entry = (rules, ruleset, convert(*copy.deepcopy((rules, ruleset))))
        cache.write(key, entry)
    rules, ruleset, converted = entry
    _remember(_PARSED, key, (rules, ruleset))
    _remember(_CONVERTED, key, converted)
