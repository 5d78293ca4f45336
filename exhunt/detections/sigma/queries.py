"""Converted Sigma rules as the engine runs them: queries and bookkeeping, without pySigma.

pySigma's backend makes ``CompiledQuery`` objects holding its rule objects (the summary and the
prefilters read those); ``plain`` swaps each rule for its ``RuleInfo`` so the set the engine runs
(and the loader keeps on disk) unpickles without importing pySigma.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from exhunt.detections.sigma.ruleinfo import RuleInfo, rule_info

if TYPE_CHECKING:
    from sigma.correlations import SigmaCorrelationRule
    from sigma.rule import SigmaRule

    Rule = SigmaRule | SigmaCorrelationRule

R = TypeVar("R")


@dataclass(frozen=True)
class CompiledQuery(Generic[R]):
    """One converted condition of a rule: the logsource part and the detection part kept apart so
    the engine can evaluate many rules of one logsource in a single scan. ``rule`` is pySigma's
    rule at conversion time, its ``RuleInfo`` in the set the engine runs."""

    rule: R
    logsource: str
    predicate: str
    sql: str  # full predicate, or for a correlation rule a whole SELECT
    needs: tuple[str, ...] = ()  # logsource predicates of a correlation's referenced rules


@dataclass
class RuleSet:
    """Converted queries plus the bookkeeping that goes into the document's ``rules`` section."""

    queries: list[CompiledQuery[RuleInfo]] = field(default_factory=list)
    loaded: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def fail(self, rule: Rule | RuleInfo | None, path: str, reason: str) -> None:
        title = (rule.title if rule is not None else "") or ""
        rule_id = str(rule.id) if rule is not None and rule.id else ""
        entry = {"path": path, "id": rule_id, "title": title, "reason": reason}
        if entry not in self.failed:
            self.failed.append(entry)

    def report(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "converted": len({id(q.rule) for q in self.queries}),  # one RuleInfo per rule
            "failed": sorted(self.failed, key=lambda f: (f["path"], f["title"])),
            "sources": self.sources,
        }


def rule_path(rule: Rule | RuleInfo) -> str:
    if isinstance(rule, RuleInfo):
        return rule.path or ""
    source = rule.source
    return str(source.path) if source is not None and source.path is not None else ""


def plain(queries: list[CompiledQuery[Rule]]) -> list[CompiledQuery[RuleInfo]]:
    """``queries`` with each rule's ``RuleInfo``: one object per rule, shared by its queries (the
    engine groups a rule's matches by ``id(query.rule)``; pickle keeps shared objects shared)."""
    infos: dict[int, RuleInfo] = {}  # the queries keep their rules alive: ids stay unique
    result: list[CompiledQuery[RuleInfo]] = []
    for query in queries:
        info = infos.get(id(query.rule))
        if info is None:
            info = infos[id(query.rule)] = rule_info(query.rule)
        result.append(CompiledQuery(info, query.logsource, query.predicate, query.sql, query.needs))
    return result
