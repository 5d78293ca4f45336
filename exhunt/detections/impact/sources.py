"""Attacker sources of a case: the client IPs, user agents and accounts behind its high or critical
compromise findings, and the clients of SSRF-fed back-end calls (a back-end request authenticated
as SYSTEM, S-1-5-18 or the machine account from a client that is not an Exchange server).

A row from one of these sources is the attacker's; a mailbox it touched is exposed at high
confidence. User agents count only when they are distinctive: one that more than a few other
clients also send (a stock browser string) would turn the users' own traffic into the attacker's.
So do client addresses: one that many accounts sign in from is a load balancer, reverse proxy or
NAT in front of the server (IIS then logs its address for every client, the attacker's included),
and reading all of its traffic as the attacker's would expose every mailbox behind it; it is set
aside in ``shared_ips`` (the reports name it: log X-Forwarded-For to see the real clients).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from exhunt import utctime
from exhunt.detections.impact import mailbox
from exhunt.findings.model import SEVERITY_RANK, Finding, severity_rank

if TYPE_CHECKING:
    import duckdb

LOOPBACK = ("127.0.0.1", "::1", "localhost")
COMMON_UA_CLIENTS = 3  # a user agent also sent by this many other client IPs is not the attacker's mark
SHARED_IP_ACCOUNTS = 10  # a client address this many accounts sign in from is a balancer, proxy or NAT
SYSTEM_SQL = "(nt authority\\\\system|system|s-1-5-18|[^@]*\\\\system|[^@]*\\$)"
# Back-end logs where the SSRF's SYSTEM identity shows: EWS (Logging\Ews) and HttpProxy rows
BACKEND_SQL = "(lower(log_type) LIKE 'ews%' OR source = 'httpproxy')"


def ip(value: str | None) -> str | None:
    """A client address as comparable text: no brackets, port or IPv6 zone, lower case."""
    text = (value or "").strip().lower()
    if not text or text == "-":
        return None
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    return text.split("%", 1)[0] or None


@dataclass
class Sources:
    ips: set[str] = field(default_factory=set)
    user_agents: set[str] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)  # mailbox keys of accounts the attacker used
    servers: set[str] = field(default_factory=set)  # addresses of the Exchange servers themselves
    ssrf_ips: set[str] = field(default_factory=set)  # clients of SSRF-fed SYSTEM back-end calls
    shared_ips: dict[str, int] = field(default_factory=dict)  # set aside: address -> accounts seen from it
    since: datetime | None = None  # the first row of the findings behind these sources: the intrusion's start

    def label(self, client_ip: str | None, user_agent: str | None, user: str | None) -> tuple[str, ...]:
        """What ties a row to the attacker (empty: nothing does)."""
        out = []
        addr = ip(client_ip)
        if addr and addr in self.ips:
            out.append(addr)
        if user_agent and user_agent in self.user_agents:
            out.append(f"UA {user_agent}")
        k = mailbox.key(user)
        if k and k in self.accounts:
            out.append(f"account {user}")
        return tuple(out)

    def before_intrusion(self, ts: datetime | None) -> bool:
        """Whether a row is older than every row of the findings behind the sources."""
        if ts is None or self.since is None:
            return False
        return (ts if ts.tzinfo else ts.replace(tzinfo=self.since.tzinfo)) < self.since

    def is_server(self, client_ip: str | None) -> bool:
        addr = ip(client_ip)
        return addr is None or addr in LOOPBACK or addr in self.servers or addr.startswith("fe80:")


def qualifies(f: Finding) -> bool:
    return (f.category == "compromise" and severity_rank(f.severity) >= SEVERITY_RANK["high"]
            and f.confidence != "low")


def collect(con: duckdb.DuckDBPyConnection, findings: Sequence[Finding], hit_rows: Sequence[dict]) -> Sources:
    src = Sources()
    src.servers = {a for (v,) in con.execute(
        "SELECT DISTINCT server_ip FROM events WHERE server_ip IS NOT NULL").fetchall() if (a := ip(v))}
    chosen = [f for f in findings if qualifies(f)]
    src.since = min((t for f in chosen if (t := utctime.parse_iso(f.first_seen))), default=None)
    for f in chosen:
        src.ips.update(a for v in f.indicators.get("client_ip", ()) if (a := ip(v)) and not src.is_server(a))
        src.user_agents.update(v for v in f.indicators.get("user_agent", ()) if v and v != "-")
    _accounts_of_hits(con, {f.id for f in chosen}, hit_rows, src)
    _ssrf_clients(con, src)
    _drop_common_user_agents(con, src)
    _set_aside_shared_ips(con, src)
    return src


def _set_aside_shared_ips(con: duckdb.DuckDBPyConnection, src: Sources) -> None:
    """Attacker addresses that ``SHARED_IP_ACCOUNTS`` or more accounts sign in from (see the module)."""
    if not src.ips:
        return
    rows = con.execute("""
        SELECT client_ip, count(DISTINCT lower("user")) FROM events
        WHERE list_contains(?, client_ip) AND "user" IS NOT NULL AND "user" NOT IN ('-', '')
        GROUP BY client_ip""", [sorted(src.ips)]).fetchall()
    for value, accounts in rows:
        addr = ip(value)
        if addr and accounts >= SHARED_IP_ACCOUNTS:
            src.ips.discard(addr)
            src.ssrf_ips.discard(addr)
            src.shared_ips[addr] = max(src.shared_ips.get(addr, 0), int(accounts))


def _accounts_of_hits(con: duckdb.DuckDBPyConnection, ids: set[str], hit_rows: Sequence[dict],
                      src: Sources) -> None:
    """The accounts of the event rows those findings cite (not SYSTEM, not health mailboxes)."""
    rows = [r for r in hit_rows if r["finding_id"] in ids]
    if not rows:
        return
    # column by column, not a dict per row: a web root's findings cite thousands of pages
    table = pa.table({k: pa.array([r.get(k) for r in rows], type=t) for k, t in (
        ("host", pa.string()), ("path", pa.string()), ("source", pa.string()), ("line", pa.int64()),
        ("record_id", pa.int64()))})
    con.register("impact_cited", table)
    try:
        users = con.execute("""
            SELECT DISTINCT e."user" FROM events e JOIN impact_cited h
              ON e.host = h.host AND e.path = h.path AND e.source = h.source
             AND e.line IS NOT DISTINCT FROM h.line AND e.record_id IS NOT DISTINCT FROM h.record_id
            WHERE e."user" IS NOT NULL""").fetchall()
    finally:
        con.unregister("impact_cited")
    for (user,) in users:
        k = mailbox.key(user)
        if k and not mailbox.is_system(user) and not mailbox.is_service(k):
            src.accounts.add(k)


def _ssrf_clients(con: duckdb.DuckDBPyConnection, src: Sources) -> None:
    rows = con.execute(f"""
        SELECT DISTINCT client_ip FROM events
        WHERE {BACKEND_SQL} AND client_ip IS NOT NULL
          AND regexp_full_match(lower("user"), '{SYSTEM_SQL}')""").fetchall()
    for (value,) in rows:
        addr = ip(value)
        if addr and not src.is_server(addr):
            src.ssrf_ips.add(addr)
            src.ips.add(addr)


def _drop_common_user_agents(con: duckdb.DuckDBPyConnection, src: Sources) -> None:
    if not src.user_agents:
        return
    rows = con.execute("""
        SELECT user_agent, list(DISTINCT client_ip) FROM events
        WHERE list_contains(?, user_agent) AND client_ip IS NOT NULL GROUP BY user_agent""",
                       [sorted(src.user_agents)]).fetchall()
    for ua, clients in rows:
        others = {a for c in clients if (a := ip(c)) and a not in src.ips and not src.is_server(a)}
        if len(others) >= COMMON_UA_CLIENTS:
            src.user_agents.discard(ua)
