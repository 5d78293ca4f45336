"""An attacker address of one server's compromise findings, in another server's own logs.

The fleet pivots (``fleet.py``) link hosts whose findings name the same indicator; a host the
attacker reached with requests no check flags (an OWA sign-in, a plain GET) has no finding to
link, and was called clean although its logs hold the intruder's address. This runs after the
rows of the attacker's addresses are stored (triage: the pivot pass; ``--index full``: the rows
that pass would store, added to the selection), so both modes see the same rows.

Its finding is a compromise finding of medium confidence (the host is "suspicious", not
"compromised": a request alone does not show that it succeeded). Addresses a load balancer or
proxy shares among many accounts (``impact.sources`` sets them aside) and the servers' own
addresses are left out: they would name every host behind them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from exhunt.detections.base import EXCERPT_CHARS, Check, Hit
from exhunt.detections.fleet import FleetPivots
from exhunt.detections.impact.sources import LOOPBACK, ip, qualifies
from exhunt.detections.iocs.model import ip_key, ip_texts
from exhunt.findings.model import Finding
from exhunt.findings.triage import group_hits

if TYPE_CHECKING:
    import duckdb


class AttackerAddressElsewhere(Check):
    """Requests from an address behind compromise findings on another host of this scan."""

    id = "fleet-attacker-address"
    title = "Another server's attacker address in this server's logs"
    severity = "high"
    category = "compromise"
    description = ("A client address behind high or critical compromise findings on another server of this "
                   "scan sent requests to this server too. No check flagged those requests by themselves; "
                   "the same actor reached this host.")
    attack = ("T1190", "T1078")
    remediation = ("Read every request from this address on this server (exhunt query: the rows cited) and "
                   "check the accounts it signed in as: reset their passwords and revoke their sessions.",
                   "Scan this server's web folders and event logs for the artefacts found on the other server.")
    prefilter = ()  # reads the rows the pivot pass stores, never selects lines of its own
    event_literals = ()


def attacker_reach(con: duckdb.DuckDBPyConnection, findings: Sequence[Finding], hosts: Sequence[str],
                   shared_ips: Sequence[str] = ()) -> tuple[list[Finding], list[dict]]:
    """The findings (one per host and address) and their hit rows; none with fewer than two hosts."""
    if len(set(hosts)) < 2:
        return [], []
    named = _addresses_by_host(findings, {a for v in shared_ips if (a := _address(v))})
    if not named:
        return [], []
    servers = {a for (v,) in con.execute(
        "SELECT DISTINCT server_ip FROM events WHERE server_ip IS NOT NULL").fetchall() if (a := _address(v))}
    named = {a: h for a, h in named.items() if a not in servers}
    if not named:
        return [], []
    check = AttackerAddressElsewhere()
    hits = [hit for row in _rows(con, sorted(named), sorted(set(hosts)))
            if (hit := _hit(check, row, named)) is not None]
    rows: list[dict] = []
    return group_hits(check, hits, rows), rows


def _addresses_by_host(findings: Sequence[Finding], shared: set[str]) -> dict[str, set[str]]:
    """Attacker address -> the hosts whose qualifying findings name it (as the impact chooses them)."""
    named: dict[str, set[str]] = {}
    for f in findings:
        if not qualifies(f) or f.check in (FleetPivots.id, AttackerAddressElsewhere.id):
            continue
        for value in f.indicators.get("client_ip", ()):
            address = _address(value)
            if address and address not in LOOPBACK and not address.startswith("fe80:") and address not in shared:
                named.setdefault(address, set()).add(f.host)
    return named


def _rows(con: duckdb.DuckDBPyConnection, addresses: list[str], hosts: list[str]) -> list[tuple]:
    """Web rows of the hosts whose client address holds one of ``addresses`` (compared exactly after):
    an IPv4 address also as the IPv4-mapped form holds it, an IPv6 one compressed or in full."""
    texts = sorted({t.lower() for a in addresses for t in ip_texts(a)})
    holds = " OR ".join("contains(lower(client_ip), ?)" for _ in texts)
    return con.execute(
        f"""SELECT host, client_ip, path, source, ts, line, record_id,
                   coalesce(raw, concat_ws(' ', method, uri_decoded, CAST(status AS VARCHAR), user))
            FROM events WHERE kind = 'http' AND list_contains(?, host) AND ({holds})
            ORDER BY host, ts, path, line""",
        [hosts, *texts]).fetchall()


def _hit(check: Check, row: tuple, named: dict[str, set[str]]) -> Hit | None:
    host, client, path, source, ts, line, record_id, text = row
    address = _address(client)
    if address is None or address not in named or host in named[address]:
        return None
    others = ",".join(sorted(named[address]))
    return Hit(check=check.id, host=host, key=f"client_ip={address}", path=path, source=source or "", ts=ts,
               line=line, record_id=record_id, confidence="medium",
               excerpt=f"{address} (attacker address on {others}): {text or ''}"[:EXCERPT_CHARS],
               indicators={"client_ip": address})


def _address(value: str | None) -> str | None:
    """A client or server address in one form: ``ip``'s, and as ``iocs.model.ip_key`` reads it when it
    is one (an IPv4-mapped ``::ffff:a.b.c.d``, as dual-stack IIS and HttpProxy write IPv4 clients, is
    ``a.b.c.d``; IPv6 compressed), so one attacker is one address whichever way each server logged it."""
    key = ip_key(value)
    return str(key) if key is not None else ip(value)
