"""pySigma's side of the loader: rule files parsed into rules, rules converted into queries.

Every rule that fails to parse or convert is kept with its reason, never dropped silently:
YAML and Sigma errors are collected per file (``collect_errors=True``), conversion errors per
rule by the backend. Imported only when a rule set is not on disk (``loader``): pySigma and
pyparsing take ~0.15 CPU s to import with this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule

from exhunt.detections.sigma.backend import DuckDBBackend
from exhunt.detections.sigma.queries import CompiledQuery, RuleSet, rule_path
from exhunt.detections.sigma.rulefiles import builtin_rules, rule_files

PIPELINES = ("windows.yml", "webserver.yml")
# libyaml's loader builds the same objects as pySigma's ``yaml.safe_load_all`` (same constructor),
# about 5x faster: rule loading is a fixed cost of every scan.
SAFE_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Rule = SigmaRule | SigmaCorrelationRule


def pipeline() -> ProcessingPipeline:
    folder = resources.files("exhunt").joinpath("data", "sigma", "pipelines")
    result = ProcessingPipeline()
    for name in PIPELINES:
        text = folder.joinpath(name).read_text(encoding="utf-8")  # libyaml's parser: ~10x pySigma's
        result = result + ProcessingPipeline.from_dict(yaml.load(text, Loader=SAFE_LOADER))
    return result


def _reason(exc: Exception) -> str:
    """One line, with the YAML position when the parser knows it."""
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{type(exc).__name__}: {exc}".splitlines()[0] + where


def _conversion_reason(error: Exception) -> str:
    """pySigma's message alone, one line: its text appends the rule's location and, for a conversion
    error, the whole rule's repr (kilobytes on one line); the entry names the file and rule already."""
    text = ValueError.__str__(error) if isinstance(error, SigmaError) else str(error)
    return (text.splitlines() or [type(error).__name__])[0]


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


def convert(rules: list[Rule], ruleset: RuleSet) -> list[CompiledQuery[Rule]]:
    """Convert all rules in one collection (correlations resolve their references across files);
    the rules that fail go to ``ruleset.failed``. pySigma's pipelines change the rules in place."""
    try:
        return _convert(rules, ruleset)
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
            return _convert(good, ruleset)
        except BAD_RULE_ERRORS as exc:
            ruleset.fail(None, "", f"Sigma conversion stopped, no rule converted: {_reason(exc)}")
            return []


def _convert(rules: list[Rule], ruleset: RuleSet) -> list[CompiledQuery[Rule]]:
    try:
        collection = SigmaCollection(list(rules), resolve_references=True)  # type: ignore[arg-type]
    except SigmaError as exc:  # an unresolvable reference: convert without the correlations
        ruleset.fail(None, "", f"rule references: {exc}")
        collection = SigmaCollection([r for r in rules if isinstance(r, SigmaRule)])
    backend = DuckDBBackend(pipeline(), collect_errors=True)  # type: ignore[arg-type]
    queries = list(backend.convert(collection))
    for rule, error in backend.errors:
        ruleset.fail(rule, rule_path(rule), _conversion_reason(error))
    return queries
