"""What detection time reads of a Sigma rule, as plain data: no pySigma to unpickle or import.

The engine, the findings' checks (``meta``) and the failure report read a rule's title, id, name,
tags, level, status, description, references, file and logsource, nothing else. Unpickling
pySigma's rule objects for that imported pySigma and pyparsing (~0.15 CPU s) and rebuilt every
rule's objects (more with every rule of the pack), on the scan process while its workers parse. ``rule_info`` is taken
once per rule at conversion time (from the converted rule, as the engine read it before).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sigma.correlations import SigmaCorrelationRule
    from sigma.rule import SigmaRule


@dataclass(frozen=True)
class RuleInfo:
    """One rule's metadata, each field as detection time used it from the pySigma rule."""

    title: str
    id: str | None  # ``str(rule.id)``: the UUID's text
    name: str | None
    tags: tuple[str, ...]  # ``str(tag)``: "attack.t1505.003"
    level: str | None  # the level's name, lower-case ("high"); None when the rule sets none
    status: str | None  # likewise ("experimental")
    description: str | None
    references: tuple[str, ...]
    path: str | None  # the rule's file
    logsource: dict[str, str] | None  # ``rule.logsource.to_dict()``; None for a correlation rule
    correlation: bool


def rule_info(rule: SigmaRule | SigmaCorrelationRule) -> RuleInfo:
    """The plain description of a parsed (or converted) pySigma rule."""
    from sigma.correlations import SigmaCorrelationRule
    from sigma.rule import SigmaRule

    source = rule.source
    return RuleInfo(
        title=rule.title or "",
        id=str(rule.id) if rule.id else None,
        name=rule.name,
        tags=tuple(str(t) for t in rule.tags),
        level=rule.level.name.lower() if rule.level is not None else None,
        status=rule.status.name.lower() if rule.status is not None else None,
        description=rule.description,
        references=tuple(str(r) for r in rule.references),
        path=str(source.path) if source is not None and source.path is not None else None,
        logsource=rule.logsource.to_dict() if isinstance(rule, SigmaRule) else None,
        correlation=isinstance(rule, SigmaCorrelationRule),
    )
