"""Cross-host pivots: an indicator behind compromise findings on two or more hosts of one scan.

Runs after every engine, over their findings (not the store): the same attacker client IP, the
same web-shell/file SHA-256 or the same user agent seen in compromise findings on several servers
is one finding of its own, with one evidence row per host. Its ``host`` is the comma-joined host
names, so per-host verdicts are not changed by it.
"""

from __future__ import annotations

from collections.abc import Sequence

from exhunt import utctime
from exhunt.detections.base import Check, Hit
from exhunt.findings.model import Finding
from exhunt.findings.triage import group_hits

PIVOTS = (("client_ip", "client IP"), ("sha256", "file SHA-256"), ("user_agent", "user agent"))


class FleetPivots(Check):
    """The same indicator behind compromise findings on 2+ hosts: one campaign across the fleet."""

    id = "fleet-pivot"
    title = "Same attacker indicator on several servers"
    severity = "high"
    category = "compromise"
    description = ("An indicator (client IP, file SHA-256 or user agent) appears in compromise findings on "
                   "two or more hosts of this scan: the same actor or tooling reached each of them.")
    attack = ("T1190",)
    remediation = ("Hunt for this indicator on every server of the organisation, not only those scanned.",
                   "Block the IP or remove the file everywhere it appears, then rotate credentials used "
                   "on those hosts.")


def pivots(findings: Sequence[Finding], hit_rows: list[dict] | None = None) -> list[Finding]:
    check = FleetPivots()
    seen: dict[tuple[str, str], dict[str, list[Finding]]] = {}
    for f in findings:
        if f.category != "compromise" or f.check == check.id:
            continue
        for name, _ in PIVOTS:
            for value in f.indicators.get(name, ()):
                seen.setdefault((name, value), {}).setdefault(f.host, []).append(f)
    hits, hosts_of = [], []
    for (name, value), by_host in sorted(item for item in seen.items() if len(item[1]) >= 2):
        hosts = ",".join(sorted(by_host))
        label = dict(PIVOTS)[name]
        for host, host_findings in sorted(by_host.items()):
            first = min(host_findings, key=lambda f: utctime.order(f.first_seen))
            ref = first.evidence[0] if first.evidence else None
            titles = "; ".join(sorted({f.title for f in host_findings}))
            hits.append(Hit(check=check.id, host=hosts, key=f"{name}={value}", path=ref.path if ref else "",
                            source=ref.source if ref else "", ts=utctime.parse_iso(first.first_seen),
                            line=ref.line if ref else None, record_id=ref.record_id if ref else None,
                            excerpt=f"{host}: {label} {value} in {len(host_findings)} finding(s): {titles}",
                            indicators={name: value, "hosts": hosts}))
            hosts_of.append(host)
    rows: list[dict] = []
    found = group_hits(check, hits, rows)
    if hit_rows is not None:  # each cited row under its own host: the hosts' rows had merged into one
        for row, host in zip(rows, hosts_of, strict=True):  # row of a made-up host "a,b" in every timeline
            hit_rows.append({**row, "host": host})
    return found
