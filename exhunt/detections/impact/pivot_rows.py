"""``--index full``: the rows the mailbox impact reads, as a triage store would hold them.

A full index's detections read the web rows triage's prefilter selects and every row of the other
logs (``events.selected``). The impact reads that selection too, plus what triage's pivot pass adds
for it: the web rows of the attacker's sources (client IPs, user agents, accounts), of the accounts
granted mailbox access and of the SIDs exposed mailboxes are logged as. With every row stored, that
pass is a query: in rounds, each reading the indicators from the selection so far, until a round
brings no new indicator or no new row (as ``parallel.pivot.run_rounds``). A row joins when one of
the columns the impact's queries compare holds an indicator, compared as those queries compare it:
the impact over the selection equals the impact over every row (the oracle tests run both ways,
``api.FULL_DETECTS_SELECTED``). On the 2 GB bench corpus's 8 M rows the impact read every row for
~2 s; the selection is ~3,000 rows, the query over every row's narrow columns ~0.2 s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from exhunt.detections.impact import Accesses, pivot_indicators, read_accesses, sids_of
from exhunt.events import selected
from exhunt.findings.model import Finding
from exhunt.sqltext import literal

if TYPE_CHECKING:
    import duckdb


def _listed(values: Sequence[str]) -> str:
    return "[" + ", ".join(literal(v) for v in values) + "]::VARCHAR[]"


def _ips(values: Sequence[str]) -> str:
    """``lower(split_part(client_ip, '%', 1))`` is one of ``values``; for an address without letters,
    as the column's own equality or prefix (case cannot matter), which DuckDB tests ~4x faster."""
    possible = [v for v in values if "%" not in v]  # no part before a '%' holds one
    plain = [v for v in possible if not any(c.isalpha() for c in v)]
    lettered = [v for v in possible if v not in plain]
    tests = []
    if plain:
        tests.append(f"client_ip IN ({', '.join(literal(v) for v in plain)})")
        tests.extend(f"starts_with(client_ip, {literal(v + '%')})" for v in plain)
    if lettered:
        tests.append(f"list_contains({_listed(lettered)}, lower(split_part(client_ip, '%', 1)))")
    return " OR ".join(tests) or "false"


# indicator kind -> the filter of the rows holding one: each column as the impact's queries compare it
# (``web.SOURCE_MATCH``, ``web.backend_ews``'s grantees, ``sources``' user agents, ``_pair_sids``)
FILTERS: dict[str, Callable[[Sequence[str]], str]] = {
    "ips": _ips,
    "user_agents": lambda values: f"list_contains({_listed(values)}, user_agent)",
    "accounts": lambda values: f'list_contains({_listed(values)}, lower("user"))',
    "sids": lambda values: f"list_contains({_listed(values)}, upper(substr(anchor_mailbox, 5)))",
}


def indicators(con: duckdb.DuckDBPyConnection, findings: Sequence[Finding],
               hit_rows: Sequence[dict]) -> tuple[dict[str, set[str]], Accesses]:
    """The impact's indicators, read from the rows ``events`` holds now (``detections.pivot.gather``
    without its filters for raw-line patterns: every value the impact compares), and that reading."""
    read = read_accesses(con, findings, hit_rows)
    src = read[0]
    granted = set(pivot_indicators(con)["account"])
    return {"ips": set(src.ips), "user_agents": set(src.user_agents), "accounts": src.accounts | granted,
            "sids": set(sids_of(read[2]))}, read


def add_attacker_rows(con: duckdb.DuckDBPyConnection, store: Path, findings: Sequence[Finding],
                      hit_rows: Sequence[dict]) -> Accesses:
    """After ``selected.use_selected``: add the attacker's web rows to the selection (see the module).
    Returns the impact's reading of the final selection (``assess_impact``'s ``read``)."""
    searched: dict[str, set[str]] = {kind: set() for kind in FILTERS}
    while True:
        found, read = indicators(con, findings, hit_rows)
        new = {k: sorted(v - searched[k]) for k, v in found.items() if v - searched[k]}
        if not new:
            return read
        for kind, values in new.items():
            searched[kind].update(values)
        if not selected.add_rows(con, store, [FILTERS[kind](values) for kind, values in new.items()]):
            return read  # the selection is as it was when read: so are the indicators
