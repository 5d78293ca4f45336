"""Whose mail was taken: the mailbox impact of an intrusion, computed after the detections.

Attacker sources come from the high and critical compromise findings (``sources``); every log that
shows mailbox access is then read for rows from them or for changes that expose a mailbox whatever
their source (``web``, ``admin``, ``audit``), then MessageTracking for mail that left after a
forwarding change (``tracking``). Rows become one ``MailboxImpact`` per host and mailbox, with the
confidence of its strongest row and what to do (``remediation``).

``PREFILTER`` lists the raw-line regexes of the text-log rows needed whatever their source. The rows of
attacker sources come from the triage pivot pass (IPs, user agents), and so must those of
``pivot_indicators`` (forwarding addresses for MessageTracking, granted accounts for EWS).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from exhunt.detections.impact import admin, mailbox, remediation, tracking, web
from exhunt.detections.impact.access import CONFIDENCE_RANK, Access
from exhunt.detections.impact.audit import audit_accesses
from exhunt.detections.impact.sources import Sources, collect
from exhunt.evidence import manifest
from exhunt.findings.model import Finding, MailboxImpact
from exhunt.findings.triage import MAX_EVIDENCE, evidence_order, iso

if TYPE_CHECKING:
    import duckdb

PREFILTER = admin.PREFILTER + (
    r"/ecp/[^/]+@[^/]+/ruleseditor/inboxrules\.svc/newobject",  # ProxyToken (IIS and HttpProxy rows)
    r",(nt authority\\system|system|s-1-5-18|[^,@]*\\system|[^,@]*\$),",  # back-end rows authenticated as SYSTEM
)
FORWARDING = ("inbox-rule-forward", "mailbox-forwarding", "proxytoken-inbox-rule")
SAME_REQUEST = timedelta(seconds=5)


Accesses = tuple[Sources, mailbox.Aliases, list[Access]]


def assess_impact(con: duckdb.DuckDBPyConnection, findings: Sequence[Finding], hit_rows: Sequence[dict],
                  store: Path | None = None, read: Accesses | None = None) -> tuple[MailboxImpact, ...]:
    """``read``: ``read_accesses`` of these findings over the store as it stands, when the triage
    pivot pass's last round has just made it (the same queries, not run twice); used up here."""
    src, aliases, accesses = read if read is not None else read_accesses(con, findings, hit_rows)
    _pair_sids(con, accesses, aliases)
    keys = {k for a in accesses if (k := mailbox.key(a.mailbox))}
    aliases.by_local_part(keys)

    def canonical(raw: str | None) -> str | None:
        k = mailbox.key(raw)
        return aliases.canonical(k) if k else None

    domains = tracking.org_domains(con, {canonical(a.mailbox) or "" for a in accesses})
    changes = [a for a in accesses if a.how in FORWARDING and not _owner_internal(a, canonical, domains)]
    accesses = [a for a in accesses if a.how not in FORWARDING or a in changes]
    accesses += tracking.forwarded_mail(con, changes, domains, canonical)
    cited = {a.ref.path for a in accesses}
    inputs = manifest.input_ids(store, cited) if store is not None else {}
    return _entries(accesses, canonical, aliases, inputs)


def read_accesses(con: duckdb.DuckDBPyConnection, findings: Sequence[Finding], hit_rows: Sequence[dict]) -> Accesses:
    """The attacker sources and every access the store shows of them (before SIDs are paired)."""
    src = collect(con, findings, hit_rows)
    aliases = mailbox.Aliases()
    web_rows = web.attacker_web_rows(con, src)
    admin_rows, grantees = admin.admin_accesses(admin.cmdlet_rows(con), web_rows, src, aliases)
    accesses = [*web.frontend(web_rows, src), *web.backend_ews(con, src, grantees), *web.proxytoken(con, src),
                *admin_rows, *audit_accesses(con, src, grantees, aliases)]
    return src, aliases, accesses


def sids_of(accesses: Sequence[Access]) -> list[str]:
    """The SIDs that exposed mailboxes are logged as (``Sid~`` anchors): the rows that pair each
    with its account (``_pair_sids``) are needed too. Known only once the attacker's rows are stored,
    so the pivot pass searches them in a second round."""
    return sorted({k for a in accesses if (k := mailbox.key(a.mailbox)) and k.startswith("S-1-")})


def pivot_indicators(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """What the triage pivot pass must store every text-log row of, besides the attacker sources:
    ``address``: mailboxes with a forwarding change and the forwarding targets (the MessageTracking
    rows ``tracking`` reads mention them); ``account``: accounts granted FullAccess or impersonation
    (their EWS rows show which mailboxes they opened). Read from the cmdlet rows, which ``PREFILTER``
    keeps."""
    src = collect(con, (), ())
    found, grantees = admin.admin_accesses(admin.cmdlet_rows(con), [], src, mailbox.Aliases())
    found += web.proxytoken(con, src)  # ProxyToken rules forward too (their rows are PREFILTER's)
    addresses = {mailbox.key(a.mailbox) or "" for a in found if a.how in FORWARDING}
    addresses |= {mailbox.key(t) or "" for a in found for t in a.targets}
    return {"address": sorted(k for k in addresses if mailbox.is_address(k)), "account": sorted(grantees)}


def _owner_internal(a: Access, canonical: object, domains: set[str]) -> bool:
    """A user's own rule forwarding inside the organisation, with no attacker source: ordinary."""
    if a.confidence == "high" or a.how != "inbox-rule-forward" or not a.actor:
        return False
    same = canonical(a.actor) == canonical(a.mailbox)  # type: ignore[operator]
    inside = all("@" not in t or t.lower().split("@", 1)[1].rstrip(">]") in domains for t in a.targets)
    return same and inside


def _pair_sids(con: duckdb.DuckDBPyConnection, accesses: list[Access], aliases: mailbox.Aliases) -> None:
    """SIDs the evidence pairs with an account: Rps ``ExecutingUserSid``, and HttpProxy ``Sid~``
    anchors routed by the caller's own Windows identity."""
    sids = sorted({k for a in accesses if (k := mailbox.key(a.mailbox)) and k.startswith("S-1-")})
    if not sids:
        return
    pairs = con.execute("""
        SELECT DISTINCT upper(json_extract_string(fields, '$.ExecutingUserSid')) AS sid, "user" FROM events
        WHERE source = 'rps_cmdlet'
          AND list_contains($sids::VARCHAR[], upper(json_extract_string(fields, '$.ExecutingUserSid')))
        UNION
        SELECT DISTINCT upper(substr(anchor_mailbox, 5)), "user" FROM events
        WHERE source = 'httpproxy' AND list_contains($sids::VARCHAR[], upper(substr(anchor_mailbox, 5)))
          AND lower(anchor_mailbox) LIKE 'sid~%'
          AND json_extract_string(fields, '$.RoutingHint') = 'WindowsIdentity'""", {"sids": sids}).fetchall()
    for sid, user in pairs:
        if user and not mailbox.is_system(user):
            aliases.pair(sid, mailbox.key(user))


def _entries(accesses: list[Access], canonical: object, aliases: mailbox.Aliases,
             inputs: dict[tuple[str, str], str]) -> tuple[MailboxImpact, ...]:
    groups: dict[tuple[str, str], list[Access]] = {}
    forms: dict[str, set[str]] = {}
    for a in accesses:
        k = canonical(a.mailbox)  # type: ignore[operator]
        if not k or mailbox.is_system(a.mailbox):
            continue
        groups.setdefault((a.host, k), []).append(a)
        forms.setdefault(k, set()).add(mailbox.clean(a.mailbox))
    out = []
    for (host, k), group in groups.items():
        if any(mailbox.is_service(f) for f in forms[k] | {k}):
            continue  # health, system and discovery mailboxes
        out.append(_entry(host, k, _dedupe(group), sorted(forms[k]), inputs))
    out.sort(key=lambda e: (-CONFIDENCE_RANK[e.confidence], -(e.bytes or 0), -(e.items or 0), -e.requests,
                            e.host, e.mailbox))
    return tuple(out)


def _dedupe(group: list[Access]) -> list[Access]:
    """An HttpProxy row and the EWS back-end row of the same request count once (the back-end one)."""
    backend: dict[str | None, list[datetime]] = {}
    for a in group:
        if a.how.startswith("ews:") and not a.frontend and a.ts is not None:
            backend.setdefault(a.client_ip, []).append(a.ts)
    if not backend:
        return group
    for times in backend.values():
        times.sort()
    keep = []
    for a in group:
        times = backend.get(a.client_ip, []) if a.frontend and a.how.startswith("ews") and a.ts else []
        i = bisect_left(times, a.ts - SAME_REQUEST) if times and a.ts else 0
        if not (times and a.ts and i < len(times) and times[i] <= a.ts + SAME_REQUEST):
            keep.append(a)
    return keep


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _entry(host: str, k: str, group: list[Access], forms: list[str],
           inputs: dict[tuple[str, str], str]) -> MailboxImpact:
    times = [a.ts for a in group if a.ts is not None]
    first, last = (iso(min(times)), iso(max(times))) if times else (None, None)
    confidence = max((a.confidence for a in group), key=CONFIDENCE_RANK.__getitem__)
    evidence = sorted({a.ref for a in group}, key=evidence_order)[:MAX_EVIDENCE]
    evidence = [replace(e, input=inputs.get((host, e.path))) for e in evidence]
    hows = sorted({a.how for a in group})
    return MailboxImpact(
        host=host, mailbox=k, how=tuple(hows), first_seen=first, last_seen=last,
        sources=tuple(sorted({s for a in group for s in a.sources})), requests=len(group),
        items=_sum([a.items for a in group]), bytes=_sum([a.bytes for a in group]), confidence=confidence,
        evidence=tuple(evidence), as_logged=tuple(forms),
        actions=remediation.steps(k, [a.remedy for a in group if a.remedy], hows, first, last),
    )
