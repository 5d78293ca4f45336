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

from exhunt.detections.patterns import url_text

if TYPE_CHECKING:
    from sigma.rule import SigmaRule

    from exhunt.detections.prefilter import Prefilter

WEB_CATEGORIES = ("webserver", "proxy")
WEB_SOURCES = ("iis", "httpproxy")  # the text-log sources of the rows web rules read (kind 'http')


def is_web_rule(rule: Any) -> bool:
    from sigma.rule import SigmaRule  # pySigma: imported only where rules are parsed

    return isinstance(rule, SigmaRule) and (rule.logsource.category or "").lower() in WEB_CATEGORIES


def rule_patterns(rule: SigmaRule) -> tuple[list[str] | None, str]:
    """(patterns, why none): the rule's necessary texts (``literals.rule_literals``, shared with the
    EVTX chunk prefilter) spelled as a URL may encode them."""
    from exhunt.detections.sigma.literals import rule_literals

    texts, why = rule_literals(rule)
    return ([url_text(text) for text in texts] if texts is not None else None), why


def from_sigma(prefilter: Prefilter, paths: Sequence[Path]) -> None:
    """The builtin pack and ``paths``: each web rule's literals, or its log types parsed in full."""
    from exhunt.detections.sigma.summary import summary  # derived from the rules once, kept on disk

    for rule in summary(paths).web:
        if rule.patterns is None:
            for source in WEB_SOURCES:
                prefilter.parse_in_full(source, rule.name, rule.why)
        else:
            prefilter.add(rule.name, rule.patterns)
