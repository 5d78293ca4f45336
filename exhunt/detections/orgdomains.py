"""The organisation's own mail domains, to tell forwarding outside it from forwarding inside.

In order of trust: ``scan --org-domain`` (the responder knows); the accepted domains of a
``Get-AcceptedDomain`` export; the domains of the mailboxes' primary addresses in a ``Get-Mailbox``
export. Nothing known: the table is empty and the checks say so (lower confidence), never guess.
The evidence is one organisation's, so the domains hold for every host of the case.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

ADDRESS_RE = r"[a-z0-9._%+=-]+@[a-z0-9-]+(\.[a-z0-9-]+)+"

FROM_EVIDENCE = f"""
    WITH accepted AS (
        SELECT DISTINCT lower(trim(message)) AS domain, 'accepted domain' AS origin FROM events
        WHERE kind = 'accepted_domain' AND message LIKE '%.%'
    ), mailboxes AS (
        SELECT DISTINCT lower(split_part(regexp_extract(lower(anchor_mailbox), '{ADDRESS_RE}'), '@', 2)) AS domain,
               'mailbox address' AS origin
        FROM events WHERE kind = 'mailbox' AND anchor_mailbox LIKE '%@%'
    )
    SELECT * FROM accepted
    UNION ALL
    SELECT * FROM mailboxes WHERE domain <> '' AND NOT EXISTS (SELECT 1 FROM accepted)
"""


def fill_org_domains(con: duckdb.DuckDBPyConnection, override: Sequence[str] = ()) -> None:
    """Create table ``org_domains(domain, origin)``."""
    con.execute("CREATE OR REPLACE TABLE org_domains (domain VARCHAR, origin VARCHAR)")
    if override:
        con.executemany("INSERT INTO org_domains VALUES (?, '--org-domain')",
                        [[d.lower().lstrip("@")] for d in dict.fromkeys(override)])
        return
    con.execute(f"INSERT INTO org_domains {FROM_EVIDENCE}")


def outside_org(address: str) -> str:
    """SQL: the (lower-case) ``address`` is in no org domain nor a subdomain of one. True for every
    address when no domain is known: the checks lower their confidence then."""
    domain = f"split_part({address}, '@', 2)"
    return (f"NOT EXISTS (SELECT 1 FROM org_domains o WHERE {domain} = o.domain "
            f"OR {domain} LIKE '%.' || o.domain)")


ORG_KNOWN = "(SELECT count(*) > 0 FROM org_domains)"
