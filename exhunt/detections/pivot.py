"""The attacker indicators of a case as raw-line patterns, for the triage pivot pass.

Triage stores only the text-log lines the detections need. After the detections, the indicators
of the high and critical compromise findings (the mailbox impact's attacker sources: client IPs,
distinctive user agents, accounts, SSRF-fed back-end clients; and the web-shell URL paths) plus
what the impact reads besides (``impact.pivot_indicators``: forwarding addresses, granted
accounts; ``impact.sids_of``: the SIDs exposed mailboxes are logged as, known only from the
attacker's rows, hence a second round) are searched in every text log, so the store holds every row of the intruder, as
``--index full`` does, and the mailbox impact reads complete rows.

Patterns are literals on the prefilter's engine (caseless, a superset of what the store queries
compare): an IP is bounded so that 10.0.0.1 never selects 10.0.0.12 or 110.0.0.1; accounts and
addresses are bounded by characters that cannot continue a name; user agents are written as IIS
(``+`` for spaces) and HttpProxy (CSV quotes doubled) log them; URL paths as written or %-encoded.
A user agent that the impact later finds common (sent by several other clients) is searched
anyway: only the rows after the pass can show that it is common.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from exhunt.detections.impact import Accesses, pivot_indicators, read_accesses, sids_of
from exhunt.detections.impact.sources import qualifies
from exhunt.detections.iocs.prefilter import user_agent_pattern
from exhunt.detections.patterns import url_text
from exhunt.findings.model import Finding

if TYPE_CHECKING:
    import duckdb

KINDS = ("client_ip", "user_agent", "account", "url_path", "address", "sid")
NAME_CHARS = r"a-z0-9._@\\$-"  # what may continue an account or address on either side
# MessageTracking rows of mail leaving the organisation are judged against the domains of the
# senders of ``Originating`` mail (impact.tracking.org_domains): needed once a forwarding is found
ORIGINATING = r"(^|[^a-z])originating([^a-z]|$)"


@dataclass
class Indicators:
    """Indicator values per kind (sorted, unique) and the patterns that find their lines."""

    values: dict[str, list[str]] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)  # whole-row patterns besides the values
    # the impact's reading of the store they were gathered from (``impact.assess_impact``'s ``read``)
    read: Accesses | None = field(default=None, compare=False, repr=False)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.values.items() if v}

    def __bool__(self) -> bool:
        return any(self.values.values())

    def patterns(self) -> list[str]:
        out = list(self.extra)
        for kind, values in self.values.items():
            out.extend(PATTERN[kind](v) for v in values)
        return list(dict.fromkeys(out))


def ip_pattern(value: str) -> str:
    """An address that no longer address contains: neither a digit (nor a dot, for IPv4 before it;
    a hex digit or colon for IPv6) may touch it."""
    lit = re.escape(value)
    if ":" in value:
        return rf"(^|[^0-9a-f:]){lit}([^0-9a-f:]|$)"
    return rf"(^|[^0-9.]){lit}([^0-9]|$)"


def name_pattern(value: str) -> str:
    return rf"(^|[^{NAME_CHARS}]){re.escape(value)}([^{NAME_CHARS}]|$)"


PATTERN = {
    "client_ip": ip_pattern,
    "user_agent": user_agent_pattern,
    "account": name_pattern,
    "address": name_pattern,
    "url_path": url_text,
    "sid": name_pattern,
}


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_name(value: str) -> bool:
    """An account or address as a log writes it (not ``mailboxguid:…``, not a bare short word)."""
    return len(value) >= 3 and ":" not in value and not value.isspace()


def gather(con: duckdb.DuckDBPyConnection, findings: Sequence[Finding], hit_rows: Sequence[dict],
           alongside: bool = False) -> Indicators:
    """The indicators of this case's findings and of the cmdlet rows the first pass stored.
    ``alongside``: the cmdlet rows' indicators are read on a cursor of their own while the
    findings' are (both are DuckDB queries, the GIL released: ~15 ms less of each round's serial
    time); only where ``con`` has no views of its own (TEMP), which a cursor would not see."""
    if alongside:
        cursor = con.cursor()
        with ThreadPoolExecutor(1, thread_name_prefix="exhunt-indicators") as side:
            extra_done = side.submit(pivot_indicators, cursor)
            try:
                read = read_accesses(con, findings, hit_rows)
            finally:
                extra = extra_done.result()
                cursor.close()
    else:
        read = read_accesses(con, findings, hit_rows)  # its sources are ``collect``'s; its SIDs below
        extra = pivot_indicators(con)
    src = read[0]
    paths = {p for f in findings if qualifies(f) for p in f.indicators.get("url_path", ()) if p.startswith("/")}
    values = {
        "client_ip": sorted(a for a in src.ips if _is_ip(a)),
        "user_agent": sorted(u.replace("+", " ").strip() for u in src.user_agents if u.strip()),
        "account": sorted(a for a in src.accounts | set(extra["account"]) if _is_name(a)),
        "url_path": sorted(p for p in paths if len(p) > 1),
        "address": sorted(a for a in extra["address"] if _is_name(a)),
        "sid": sids_of(read[2]),
    }
    values["user_agent"] = sorted(set(values["user_agent"]))
    return Indicators(values, [ORIGINATING] if values["address"] else [], read)
