"""A finding's check from a rule's plain ``RuleInfo`` is the check pySigma's rule gave: every
attribute, for every rule of the builtin and the shared pack and a correlation rule, as written and
as converted (what the engine reads). The oracle below is ``meta.rule_check`` as it was when it read
pySigma's rule objects, kept verbatim."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule

from exhunt.detections.sigma import loader, meta
from exhunt.detections.sigma.queries import RuleSet, plain
from exhunt.detections.sigma.ruleinfo import RuleInfo, rule_info
from tests.conftest import SHARED
from tests.detections.sigma.test_sigma_correlation import BASE, OTHER, correlation

SHARED_SIGMA = SHARED / "rules" / "sigma"


def _legacy_family(rule: SigmaRule | SigmaCorrelationRule) -> dict[str, Any]:
    logsource = rule.logsource.to_dict() if isinstance(rule, SigmaRule) else {}
    path = str(rule.source.path) if rule.source is not None and rule.source.path is not None else ""
    haystack = " ".join(
        [
            rule.title or "",
            rule.description or "",
            " ".join(str(t) for t in rule.tags),
            path,
            " ".join(str(v) for v in logsource.values()),
        ]
    ).lower()
    for fam in meta.families():
        if any(word.lower() in haystack for word in fam.get("match", [])):
            return fam
    return meta.families()[-1]


def _legacy_check_id(rule: SigmaRule | SigmaCorrelationRule) -> str:
    name = rule.name or (str(rule.id) if rule.id else (rule.title or "untitled"))
    return f"sigma:{name}"


def _legacy_attrs(rule: SigmaRule | SigmaCorrelationRule) -> dict[str, Any]:
    tags = [str(t) for t in rule.tags]
    attack = sorted({m.group(1).upper() for t in tags if (m := meta._TECHNIQUE.match(t))})
    cves = sorted({f"CVE-{m.group(1)}-{m.group(2)}" for t in tags if (m := meta._CVE.match(t))})
    level = rule.level.name.lower() if rule.level is not None else "medium"
    status = rule.status.name.lower() if rule.status is not None else "experimental"
    fam = _legacy_family(rule)
    description = (rule.description or rule.title or "").strip()
    if rule.id:
        description += f" (Sigma rule {rule.id})"
    return {
        "id": _legacy_check_id(rule),
        "title": rule.title or _legacy_check_id(rule),
        "severity": meta.SEVERITY.get(level, "medium"),
        "category": "compromise" if level in ("medium", "high", "critical") else "hygiene",
        "description": description,
        "cves": tuple(cves),
        "attack": tuple(attack),
        "references": tuple(str(r) for r in rule.references),
        "remediation": tuple(fam.get("remediation", [])),
        "confidence": meta.CONFIDENCE.get(status, "medium"),
        "family": fam.get("name", "generic"),
    }


def _attrs(info: RuleInfo) -> dict[str, Any]:
    """Every attribute the check's class sets (not only the ones the oracle names)."""
    return {k: v for k, v in vars(type(meta.rule_check(info))).items() if not k.startswith("__")}


def _rules(paths: list[Path], include_builtin: bool) -> list[SigmaRule | SigmaCorrelationRule]:
    """The rules as written and as the conversion left them (the engine's findings read the latter)."""
    written, _ = loader.parsed(paths, include_builtin)
    return written + [q.rule for q in loader.converted_queries(paths, include_builtin)]


def _correlated() -> list[SigmaRule | SigmaCorrelationRule]:
    collection = SigmaCollection.from_yaml("\n---\n".join(
        [BASE, OTHER, correlation("temporal", "{gte: 2}", "[shell_by_worker, whoami_by_worker]",
                                  "level: high\ntags: [attack.t1505.003, cve.2021-26855]\nstatus: test")]),
        collect_errors=True, resolve_references=False)
    rules = list(collection.rules)
    queries, ruleset = loader.convert_rules(rules, RuleSet(loaded=len(rules)))
    assert ruleset.failed == []
    return rules + [q.rule for q in queries]


def _same_checks(rules: list[SigmaRule | SigmaCorrelationRule]) -> None:
    assert rules
    for rule in rules:
        assert _attrs(rule_info(rule)) == _legacy_attrs(rule), rule.title


def test_builtin_pack_checks_are_unchanged() -> None:
    _same_checks(_rules([], True))


@pytest.mark.skipif(not SHARED_SIGMA.is_dir(), reason=f"shared SigmaHQ rules not present: {SHARED_SIGMA}")
def test_shared_pack_checks_are_unchanged() -> None:
    _same_checks(_rules([SHARED_SIGMA], False))


def test_correlation_rule_checks_are_unchanged() -> None:
    rules = _correlated()
    correlations = [r for r in rules if isinstance(r, SigmaCorrelationRule)]
    assert len(correlations) == 2  # as written and as converted
    assert all(rule_info(r).correlation and rule_info(r).logsource is None for r in correlations)
    _same_checks(rules)


def test_one_rule_info_per_rule_through_pickle() -> None:
    """Queries of one rule share one RuleInfo (the engine groups matches by its id), also after the
    loader's disk cache round trip."""
    collection = SigmaCollection.from_yaml("""
title: two conditions
logsource: {category: process_creation, product: windows}
detection:
    a: {Image|endswith: '\\\\cmd.exe'}
    b: {Image|endswith: '\\\\whoami.exe'}
    condition: [a, b]
""", collect_errors=True, resolve_references=False)
    queries, ruleset = loader.convert_rules(list(collection.rules), RuleSet(loaded=1))
    assert len(queries) == 2 and queries[0].rule is queries[1].rule
    for converted in (ruleset, pickle.loads(pickle.dumps(ruleset))):
        assert converted.queries[0].rule is converted.queries[1].rule
        assert converted.report()["converted"] == 1
    assert plain(queries) == ruleset.queries
