"""Necessary literals of Sigma rules on web server and proxy logs, as triage prefilter patterns.

A row a rule matches holds, in its raw line, some literal of the rule: an AND needs one child's
literals, an OR every child's; a value is a literal run of a string (between wildcards, 3+
characters), spelled as a URL may encode it (values match the decoded and the raw columns). A
rule without such literals (only negations, numbers, regexes, CIDRs) makes IIS and HttpProxy logs
parsed in full; the report says which rule and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import SigmaString

from exhunt.detections.patterns import url_text
from exhunt.detections.sigma.loader import load

if TYPE_CHECKING:
    from exhunt.detections.prefilter import Prefilter

WEB_CATEGORIES = ("webserver", "proxy")
WEB_SOURCES = ("iis", "httpproxy")  # the text-log sources of the rows web rules read (kind 'http')
MIN_LITERAL = 3


def is_web_rule(rule: Any) -> bool:
    return isinstance(rule, SigmaRule) and (rule.logsource.category or "").lower() in WEB_CATEGORIES


def literals(node: Any) -> list[str] | None:
    """Texts one of which every matching line holds (decoded), or None when the node has none."""
    if isinstance(node, ConditionAND):  # any one child will do: the most selective (longest shortest text)
        found = [lit for lit in (literals(a) for a in node.args) if lit]
        return max(found, key=lambda texts: (min(map(len, texts)), -len(texts))) if found else None
    if isinstance(node, ConditionOR):
        parts = [literals(a) for a in node.args]
        if not parts or any(not p for p in parts):
            return None
        return [x for p in parts for x in (p or [])]
    if isinstance(node, ConditionNOT):
        return None
    if isinstance(node, ConditionFieldEqualsValueExpression | ConditionValueExpression):
        value = node.value
        if isinstance(value, SigmaString):
            runs = [part for part in value.s if isinstance(part, str)]
            best = max(runs, key=len, default="")
            return [best] if len(best) >= MIN_LITERAL else None
        return None
    return None


def rule_patterns(rule: SigmaRule) -> tuple[list[str] | None, str]:
    """(patterns, why none) over every condition of the rule (a rule of several conditions fires on any)."""
    patterns: list[str] = []
    for condition in rule.detection.parsed_condition:
        try:
            found = literals(condition.parsed)
        except Exception as exc:  # noqa: BLE001 - a condition pySigma cannot parse: the rule itself fails later
            return None, f"condition not parsed: {exc}"
        if not found:
            return None, "no literal every match must hold (negation, number, regex, CIDR or a short value)"
        patterns.extend(url_text(text) for text in found)
    return patterns, ""


def from_sigma(prefilter: Prefilter, paths: Sequence[Path]) -> None:
    """The builtin pack and ``paths``: each web rule's literals, or its log types parsed in full."""
    rules, _ = load(paths)
    for rule in rules:
        if not is_web_rule(rule):
            continue
        name = f"sigma {rule.title or rule.id}" + (f" ({rule.source.path})" if rule.source else "")
        assert isinstance(rule, SigmaRule)
        patterns, why = rule_patterns(rule)
        if patterns is None:
            for source in WEB_SOURCES:
                prefilter.parse_in_full(source, name, why)
        else:
            prefilter.add(name, patterns)
