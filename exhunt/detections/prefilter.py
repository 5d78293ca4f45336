"""The triage prefilter of a scan: which raw text-log lines are parsed and stored.

Gathered from every native check's ``prefilter``, the artifacts' own fact patterns (a build in an
OWA path), the loaded Sigma rules whose logsource is a web server or proxy log and the IOC values.
What cannot be turned into patterns makes its log type parsed in full, and the report (the
document's ``rules.triage``) says which rule or check forced that and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exhunt.artifacts import linefilter
from exhunt.artifacts.exchange_logs import ExchangeLog
from exhunt.artifacts.iis import IisLog
from exhunt.artifacts.linefilter import TriagePlan
from exhunt.artifacts.scopes import SCOPES
from exhunt.detections.base import Check

INDEX_MODES = ("triage", "full")
TEXT_LOG_ARTIFACTS = (IisLog, ExchangeLog)
ALL = "*"  # every text-log source


@dataclass
class Prefilter:
    """Patterns with where each came from, and the sources parsed in full with the reasons."""

    patterns: dict[str, str] = field(default_factory=dict)  # pattern -> first origin
    facts: dict[str, str] = field(default_factory=dict)  # an artifact's fact patterns: read, not stored
    full: list[dict[str, str]] = field(default_factory=list)  # {source, origin, reason}
    skipped: list[dict[str, str]] = field(default_factory=list)  # {origin, reason}: nothing to search
    scopes: dict[str, str] = field(default_factory=dict)  # pattern -> the scope it serves alone
    _origins: dict[str, list[str]] = field(default_factory=dict, repr=False)  # pattern -> every origin

    def add(self, origin: str, patterns: Sequence[str], fact: bool = False) -> None:
        """Checked in ``compile``: one by one only when the whole set is refused (they rarely are).
        ``fact``: lines a parser reads a fact from (``TriagePlan.fact_from``), stored only when a
        detection's pattern selects them too."""
        for pattern in patterns:
            (self.facts if fact else self.patterns).setdefault(pattern, origin)
            self._origins.setdefault(pattern, []).append(origin)

    def ordered(self) -> tuple[list[str], int | None]:
        """The database's patterns, stored ones first, and the id of the first fact-only pattern."""
        stored = list(self.patterns)
        facts = [p for p in self.facts if p not in self.patterns]
        return stored + facts, (len(stored) if facts else None)

    def compile(self) -> linefilter.Compiled | None:
        """The database of every pattern, from the disk cache when this set compiled before. When the
        set is refused, each pattern Hyperscan refuses alone is dropped and makes every source parsed
        in full, named with its origins; None then."""
        try:
            return linefilter.compile_patterns(self.ordered()[0], cache=linefilter.cache_dir())
        except linefilter.PatternError:
            pass
        for pattern in dict.fromkeys([*self.patterns, *self.facts]):
            why = linefilter.check_pattern(pattern)
            if why is not None:
                self.patterns.pop(pattern, None)
                self.facts.pop(pattern, None)
                for origin in dict.fromkeys(self._origins[pattern]):
                    self.parse_in_full(ALL, origin, f"pattern {pattern!r} does not compile: {why}")
        return None

    def origin_of(self, pattern: str) -> list[str]:
        return self._origins.get(pattern, [])

    def parse_in_full(self, source: str, origin: str, reason: str) -> None:
        self.full.append({"source": source, "origin": origin, "reason": reason})

    def full_sources(self) -> frozenset[str]:
        return frozenset(f["source"] for f in self.full)


def from_checks(prefilter: Prefilter, checks: Sequence[type[Check]]) -> None:
    for check in checks:
        if check.prefilter is None:
            prefilter.parse_in_full(ALL, f"check {check.id}", "the check states no prefilter: it reads every row")
        else:
            prefilter.add(f"check {check.id}", check.prefilter)
            for pattern, scope in check.prefilter_scopes.items():
                if pattern not in check.prefilter or scope not in SCOPES:
                    raise ValueError(f"check {check.id}: scope {scope!r} of a pattern not in its prefilter")
                prefilter.scopes[pattern] = scope


def from_artifacts(prefilter: Prefilter) -> None:
    for artifact in TEXT_LOG_ARTIFACTS:
        prefilter.add(f"artifact {artifact.name}", artifact.triage_patterns, fact=True)


def from_impact(prefilter: Prefilter) -> None:
    """The mailbox impact's own rows (cmdlets, ProxyToken, SYSTEM back-end calls). The rows of the
    attacker's sources are stored by the pivot pass after the detections (exhunt.parallel.pivot)."""
    from exhunt.detections.impact import PREFILTER

    prefilter.add("mailbox impact", PREFILTER)


def gather(checks: Sequence[type[Check]], sigma: Sequence[Path] = (), iocs: Sequence[Path] = ()) -> Prefilter:
    """Every pattern of the scan's detections (also what bench/bench_scale.py gives ripgrep)."""
    prefilter = Prefilter()
    from_checks(prefilter, checks)
    from_artifacts(prefilter)
    from_impact(prefilter)
    from exhunt.detections.sigma.prefilter import from_sigma  # pySigma: loaded only for a scan

    from_sigma(prefilter, sigma)  # exhunt's own pack too: a web rule there needs its lines
    if iocs:
        from exhunt.detections.iocs.prefilter import from_iocs

        from_iocs(prefilter, iocs)
    return prefilter


def build(index: str, checks: Sequence[type[Check]], sigma: Sequence[Path] = (),
          iocs: Sequence[Path] = ()) -> tuple[TriagePlan | None, dict[str, Any]]:
    """The plan shipped to the workers (None: ``--index full``) and the document's report of it."""
    if index == "full":
        return None, {"index": "full", "reason": "--index full: every line of every text log is parsed"}
    if not linefilter.available():  # loud: the report and the terminal say why nothing was skipped
        return None, {"index": "full", "reason": f"triage unavailable: {linefilter.LOAD_ERROR}"}
    prefilter = gather(checks, sigma, iocs)
    compiled = None if ALL in prefilter.full_sources() else prefilter.compile()
    full = prefilter.full_sources()
    patterns, fact_from = prefilter.ordered()
    report: dict[str, Any] = {"index": "triage", "patterns": len(patterns),
                              "full_parse": prefilter.full, "skipped": prefilter.skipped}
    if ALL in full:
        report["index"] = "full"
        return TriagePlan(None, full), report
    if compiled is None:  # every pattern compiles alone, the set does not (too large, say)
        report["index"] = "full"
        report["reason"] = "the prefilter does not compile as one database"
        return None, report
    # a pattern another origin adds too serves every log: it keeps no scope
    scoped = tuple((p, s) for p, s in prefilter.scopes.items() if len(set(prefilter.origin_of(p))) == 1)
    stored = patterns[:fact_from] if fact_from is not None or scoped else []
    return TriagePlan(compiled.blob, full, fact_from=fact_from, stored=tuple(stored),
                      facts=tuple(patterns[len(stored):]) if fact_from is not None else (), scoped=scoped), report
