"""Exposure: the server's build is vulnerable to an exploited Exchange CVE.

Not evidence of compromise: it says which exploited CVEs the detected build leaves open and what to
install. The finding cites where the build was seen (log header, HttpProxy row, CLIXML, OWA path).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

from exhunt.detections.base import Check, Hit
from exhunt.detections.builds import assess_build, build_facts
from exhunt.findings.model import Finding, HostBuild

if TYPE_CHECKING:
    import duckdb

CRITICAL_NAMES = frozenset({"ProxyLogon", "ProxyShell", "ProxyNotShell", "OWASSRF"})


class VulnerableBuild(Check):
    """One finding per host whose best build fact (see ``builds.build_facts``) is vulnerable.

    Severity, CVEs and remediation differ per host, so ``refine`` fills them from the assessment
    made in ``run``; ``unknown`` statuses never raise a finding (they are in the host's build section).
    """

    id = "exposure.vulnerable_build"
    prefilter = ()  # host facts only (the parsers keep those from every line)
    event_literals = ()
    title = "Exchange build vulnerable to exploited CVEs"
    severity = "critical"  # per finding: critical for ProxyLogon/ProxyShell/ProxyNotShell/OWASSRF, else high
    category = "exposure"
    description = (
        "The Exchange build seen in the evidence is below the fix of one or more CVEs exploited in the "
        "wild (CISA KEV). A build cannot show mitigations (EOMT, URL rewrite rules, Extended Protection) "
        "and patching does not remove web shells already planted."
    )
    attack = ("T1190",)
    references = (
        "https://learn.microsoft.com/en-us/exchange/new-features/build-numbers-and-release-dates",
        "https://www.cisa.gov/known-exploited-vulnerabilities-catalog",
        "https://microsoft.github.io/CSS-Exchange/Diagnostics/HealthChecker/",
    )
    remediation = (
        "Hunt for compromise before and after patching: patching keeps any web shell already planted.",
    )

    def __init__(self) -> None:
        self.assessed: dict[str, HostBuild] = {}

    def run(self, con: duckdb.DuckDBPyConnection) -> Iterator[Hit]:
        hosts = [h for (h,) in con.execute("SELECT DISTINCT host FROM host_facts ORDER BY host").fetchall()]
        for host in hosts:
            facts = build_facts(con, host)
            if not facts:
                continue
            best = facts[0]
            hb = assess_build(str(best.build), best.source, best.confidence)
            vulnerable = [c for c in hb.cves if c.status == "vulnerable"]
            if not vulnerable:
                continue
            self.assessed[host] = hb
            names = ", ".join(f"{c.cve}{f' ({c.name})' if c.name else ''}" for c in vulnerable)
            summary = f"build {hb.build} = {hb.product} {hb.cu or ''} {hb.update or ''}".replace("  ", " ")
            rows = con.execute(
                "SELECT value, source, path, line FROM host_facts WHERE host = ? "
                "AND fact IN ('build', 'owa_build') AND confidence = ? ORDER BY path, line, value, source",
                [host, best.confidence]).fetchall()
            for value, source, path, line in rows:
                if _same_build(value, best.build):
                    yield Hit(check=self.id, host=host, key=f"build {hb.build}", path=path, source=source,
                              line=line, excerpt=f"{summary}; seen as {value!r}; vulnerable: {names}"[:400],
                              confidence="high" if best.confidence == "high" else "medium",
                              indicators={"build": str(hb.build)})

    def refine(self, finding: Finding) -> Finding:
        """Per-host CVEs, severity and the update to install (class metadata is the same for all)."""
        hb = self.assessed.get(finding.host)
        if hb is None:
            return finding
        vulnerable = [c for c in hb.cves if c.status == "vulnerable"]
        critical = any(c.name in CRITICAL_NAMES for c in vulnerable)
        steps: tuple[str, ...] = (hb.install,) if hb.install else ()
        steps += tuple(f"{c.cve}: install {c.update} ({c.fixed_in}) or later" for c in vulnerable
                       if c.fixed_in and c.update)
        return dataclasses.replace(
            finding,
            severity="critical" if critical else "high",
            title=f"{self.title}: {hb.product} {hb.cu or ''} ({hb.build})".replace("  ", " "),
            cves=tuple(c.cve for c in vulnerable),
            remediation=steps + self.remediation,
        )


def _same_build(value: str, build: object) -> bool:
    from exhunt.detections.buildtable import parse_build
    from exhunt.errors import UsageError

    try:
        return parse_build(value) == build
    except UsageError:
        return False
