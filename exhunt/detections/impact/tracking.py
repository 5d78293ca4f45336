"""MessageTracking after a forwarding change: mail from (or redirected for) a mailbox whose rule or
forwarding address was set, to recipients outside the organisation, from the change on.

Outside means a recipient domain that is none of the organisation's: the domains of the mailboxes
in the evidence and of the senders of mail that Exchange marked ``Originating``. One message is one
item however many tracking events it has; its bytes are ``total-bytes``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from exhunt.detections.impact import mailbox
from exhunt.detections.impact.access import REF_COLUMNS, Access, ref, rows, to_int

if TYPE_CHECKING:
    import duckdb

FIELDS = ("sender-address", "recipient-address", "related-recipient-address", "event-id", "message-id",
          "internal-message-id", "total-bytes", "message-subject", "directionality")


def org_domains(con: duckdb.DuckDBPyConnection, known: Iterable[str]) -> set[str]:
    """The organisation's domains: ``scan --org-domain`` alone when given, else what the detections
    found (``org_domains``: accepted domains, mailbox exports) plus the mailboxes' and the
    originating senders' domains."""
    given = _detected_domains(con)
    if any(origin == "--org-domain" for _, origin in given):
        return {d for d, _ in given}
    domains = {k.split("@", 1)[1] for k in known if mailbox.is_address(k)} | {d for d, _ in given}
    found = con.execute("""
        SELECT DISTINCT lower(split_part(json_extract_string(fields, '$."sender-address"'), '@', 2))
        FROM events WHERE source = 'message_tracking'
          AND json_extract_string(fields, '$.directionality') = 'Originating'""").fetchall()
    return domains | {d for (d,) in found if d}


def _detected_domains(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    present = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'org_domains'")
    if not (present.fetchone() or (0,))[0]:  # assessed without the detections' preparation (tests)
        return []
    return [(d, o) for d, o in con.execute("SELECT domain, origin FROM org_domains").fetchall() if d]


def forwarded_mail(con: duckdb.DuckDBPyConnection, changes: list[Access], domains: set[str],
                   canonical: Any) -> list[Access]:
    """One access per message that left after a forwarding change of its mailbox."""
    since: dict[str, tuple[datetime | None, Access]] = {}
    for change in changes:
        k = canonical(change.mailbox)
        if k and mailbox.is_address(k) and (k not in since or _before(change.ts, since[k][0])):
            since[k] = (change.ts, change)
    if not since:
        return []
    extract = ", ".join(f"json_extract_string(fields, '$.\"{f}\"') AS \"{f}\"" for f in FIELDS)
    found = rows(con.execute(f"""
        WITH t AS (SELECT {REF_COLUMNS}, {extract} FROM events WHERE source = 'message_tracking')
        SELECT * FROM t WHERE list_contains($boxes::VARCHAR[], lower("sender-address"))
           OR list_has_any($boxes::VARCHAR[], string_split(lower(coalesce("related-recipient-address", '')), ';'))
        ORDER BY ts, path, line""", {"boxes": sorted(since)}))
    out: list[Access] = []
    seen: set[tuple[str, str]] = set()
    for row in found:
        sender = (row["sender-address"] or "").lower()
        related = [a for a in (row["related-recipient-address"] or "").lower().split(";") if a]
        owner = sender if sender in since else next((a for a in related if a in since), None)
        if owner is None:
            continue
        ts, change = since[owner]
        if ts is not None and row["ts"] is not None and row["ts"] < ts:
            continue
        outside = [a for a in (row["recipient-address"] or "").lower().split(";")
                   if "@" in a and a.split("@", 1)[1] not in domains]
        if not outside:
            continue
        message = row["message-id"] or row["internal-message-id"] or f"{row['path']}:{row['line']}"
        if (owner, message) in seen:
            continue  # one message, many tracking events: counted once
        seen.add((owner, message))
        excerpt = (f"{row['event-id']} from {row['sender-address']} to {row['recipient-address']} "
                   f"bytes={row['total-bytes']} subject={row['message-subject'] or ''}")
        out.append(Access(row["host"], owner, "mail-forwarded-out", change.confidence, ref(row, excerpt),
                          row["ts"], (f"after {change.how} to {', '.join(change.targets) or 'outside'}",),
                          items=1, bytes=to_int(row["total-bytes"])))
    return out


def _before(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and (b is None or a < b)
