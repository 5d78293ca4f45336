""""What to do now": the few actions per host that matter most, drawn from the findings.

Each check carries its own remediation steps; a host with ten findings would repeat the same
advice ten times. Here the steps are deduplicated and ordered by the severity of the first finding
that asks for them, preceded by the update the build needs and followed by the indicators to hunt.
"""

from __future__ import annotations

from dataclasses import dataclass

from exhunt.detections.fleet import FleetPivots
from exhunt.findings.addresses import remote_address
from exhunt.findings.model import (
    EXPECTED_EVIDENCE,
    REQUIRED_FOR_CLEAN,
    AssessmentDocument,
    Finding,
    HostAssessment,
    severity_rank,
)

TOP_ACTIONS = 6
GENERIC_UPDATE_STEP = "Install the latest Exchange Cumulative Update"
TOP_INDICATORS = 8


@dataclass(frozen=True)
class Action:
    text: str
    why: str  # finding titles or CVEs the action answers


def vulnerable_cves(host: HostAssessment) -> list[str]:
    return [c.cve for c in (host.build.cves if host.build else ()) if c.status == "vulnerable"]


def update_to_install(host: HostAssessment) -> str | None:
    """The update the build needs: the host-level answer, else the newest per-CVE update named."""
    if host.build is None:
        return None
    if host.build.install:
        return host.build.install
    updates = [c.update for c in host.build.cves if c.status == "vulnerable" and c.update]
    return updates[-1] if updates else None


def missing_evidence(host: HostAssessment) -> list[str]:
    """What was expected in this host's evidence and not seen, in words (``coverage.missing``)."""
    return [EXPECTED_EVIDENCE.get(key, key) for key in host.coverage.missing]


def unread_evidence(host: HostAssessment, named: int = 2) -> str | None:
    """The evidence files not (fully) read, in words, the first ``named`` of them by path (None: all read)."""
    c = host.coverage
    if not c.unread:
        return None
    paths = [str(s.get("path")) for s in c.unread_samples[:named]]
    more = ", …" if c.unread > len(paths) else ""
    return (f"{c.unread} evidence file{'s' if c.unread != 1 else ''} could not be read in full"
            + (f" ({', '.join(paths)}{more})" if paths else ""))


def inconclusive_reasons(host: HostAssessment) -> list[str]:
    """Why nothing found is no all-clear for this host: what the evidence lacks, what of it was not read."""
    reasons = []
    if any(key in REQUIRED_FOR_CLEAN for key in host.coverage.missing):
        reasons.append("the evidence lacks " + "; ".join(missing_evidence(host)))
    unread = unread_evidence(host)
    if unread:
        reasons.append(unread)
    return reasons


def host_findings(doc: AssessmentDocument, host: str) -> list[Finding]:
    """The host's findings, a fleet pivot's (host ``a,b``: one indicator on several hosts) included."""
    return [f for f in doc.findings
            if f.host == host or (f.check == FleetPivots.id and host in f.host.split(","))]


def host_actions(doc: AssessmentDocument, host: HostAssessment, limit: int = TOP_ACTIONS) -> list[Action]:
    actions: list[Action] = []
    cves = vulnerable_cves(host)
    if cves:
        update = update_to_install(host) or "the latest Cumulative Update and Security Update"
        text = update if update.lower().startswith(("install", "upgrade")) else f"Install {update}"
        actions.append(Action(f"{text.rstrip('.')} on {host.host}.", "vulnerable to " + ", ".join(cves)))
    findings = sorted(host_findings(doc, host.host),
                      key=lambda f: (f.category == "hygiene", -severity_rank(f.severity)))
    seen: dict[str, list[str]] = {}
    for f in findings:
        if f.category == "exposure" and cves:
            continue  # the update line above answers the build's exposure; its per-CVE steps are in the finding
        for step in f.remediation:
            if cves and step.startswith(GENERIC_UPDATE_STEP):
                continue  # the exact update for this build is already the first action
            titles = seen.setdefault(step, [])
            if f.title not in titles:
                titles.append(f.title)
    for step, titles in seen.items():
        actions.append(Action(step, "; ".join(titles[:3]) + (" …" if len(titles) > 3 else "")))
    ips = list(dict.fromkeys(a for v in indicator_values(findings, "client_ip") if (a := remote_address(v))))
    if ips:
        shown = ", ".join(ips[:TOP_INDICATORS]) + (f" and {len(ips) - TOP_INDICATORS} more"
                                                    if len(ips) > TOP_INDICATORS else "")
        actions.append(Action(f"Block and hunt for the attacker client IPs across all servers: {shown}.",
                              "indicators of the findings"))
    if host.verdict == "inconclusive" and host.coverage.unread:
        actions.insert(0, Action(f"Read the warnings: {unread_evidence(host)}; repair, extract or collect them "
                                 "again and scan again: the attack may be in what was not read.",
                                 "verdict inconclusive"))
    if host.verdict == "inconclusive" and any(key in REQUIRED_FOR_CLEAN for key in host.coverage.missing):
        actions.insert(0, Action("Collect " + "; ".join(missing_evidence(host)) + f" of {host.host} and scan "
                                 "again: without them 'nothing found' does not mean clean.",
                                 "verdict inconclusive"))
    if not actions and host.verdict == "not assessed":
        actions.append(Action("Collect the Exchange and IIS logs of this server: nothing was read.",
                              "no evidence"))
    return _limit(actions, limit)


def _limit(actions: list[Action], limit: int) -> list[Action]:
    """Keep the update and the indicator hunt even when remediation steps are many."""
    if len(actions) <= limit:
        return actions
    tail = [a for a in actions[-1:] if a.why == "indicators of the findings"]
    return actions[: limit - len(tail)] + tail


def indicator_values(findings: list[Finding], name: str) -> list[str]:
    values: list[str] = []
    for f in findings:
        if f.category == "hygiene":
            continue
        for value in f.indicators.get(name, []):
            if value not in values:
                values.append(value)
    return values
