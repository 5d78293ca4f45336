"""Mailbox audit log exports (``Search-MailboxAuditLog -ShowDetails | Export-Csv`` or the XML report
of ``New-MailboxAuditLogSearch``), read by ``exhunt.artifacts.mailbox_audit`` as ``mailbox_audit``
rows. An entry is listed when its logon comes from an attacker source (client IP or account), or
when a non-owner logon is an account that was granted FullAccess or impersonation in the evidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exhunt.detections.impact import mailbox
from exhunt.detections.impact.access import REF_COLUMNS, Access, ref, to_int
from exhunt.detections.impact.sources import Sources
from exhunt.sqltext import literal

if TYPE_CHECKING:
    import duckdb

FIELDS = ("MailboxOwnerUPN", "MailboxResolvedOwnerName", "MailboxOwnerSid", "LogonType", "LogonUserSid",
          "LogonUserDisplayName", "Operation", "FolderPathName", "ClientInfoString", "SourceItemsCount")


MAX_MATCHED = 256  # logons named in the query; more: every entry is read, in batches, and filtered here
BATCH = 10_000
LOGON = ("client_ip", '"user"', "json_extract_string(fields, '$.LogonUserSid')",
         "json_extract_string(fields, '$.LogonType')")  # what decides whether an entry is listed


def audit_accesses(con: duckdb.DuckDBPyConnection, src: Sources, grantees: set[str],
                   aliases: mailbox.Aliases) -> list[Access]:
    """The entries to list. Decided per distinct logon (address, account, SID, logon type), then only
    those logons' entries read: an export of 600,000 entries had been read into Python whole (6 s and
    1 GB for one scan's mailbox impact), when the attacker's logons are a handful of them."""
    audit = "FROM events WHERE source = 'mailbox_audit'"
    for upn, sid in con.execute(f"SELECT DISTINCT json_extract_string(fields, '$.MailboxOwnerUPN'), "
                                f"json_extract_string(fields, '$.MailboxOwnerSid') {audit}").fetchall():
        aliases.pair(mailbox.key(upn), mailbox.key(sid))  # the union's result does not depend on order
    decided = {}
    for logon in con.execute(f"SELECT DISTINCT {', '.join(LOGON)} {audit}").fetchall():
        verdict = _listed(src, grantees, *logon)
        if verdict is not None:
            decided[logon] = verdict
    if not decided:
        return []
    where = audit
    if len(decided) <= MAX_MATCHED:  # else the entries of every logon, kept or not below
        where += " AND (" + " OR ".join(
            "(" + " AND ".join(f"{column} IS NOT DISTINCT FROM {literal(value)}"
                               for column, value in zip(LOGON, logon, strict=True)) + ")"
            for logon in decided) + ")"
    extract = ", ".join(f"json_extract_string(fields, '$.{f}') AS {f.lower()}" for f in FIELDS)
    cursor = con.execute(f'SELECT {REF_COLUMNS}, client_ip, "user", {extract} {where}')
    names = [d[0] for d in cursor.description]
    out = []
    while batch := cursor.fetchmany(BATCH):
        for values in batch:
            row = dict(zip(names, values, strict=True))
            owner = row["mailboxownerupn"] or row["mailboxresolvedownername"] or row["mailboxownersid"]
            listed = decided.get((row["client_ip"], row["user"], row["logonusersid"], row["logontype"]))
            if not owner or listed is None:
                continue
            confidence, labels = listed
            actor = row["user"] or row["logonusersid"]
            excerpt = (f"{row['operation']} {row['logontype']} logon by {actor} from {row['client_ip']} "
                       f"on {owner} {row['folderpathname'] or ''} {row['clientinfostring'] or ''}")
            out.append(Access(row["host"], owner, f"audit:{row['operation'] or 'access'}", confidence,
                              ref(row, excerpt), row["ts"], labels, items=to_int(row["sourceitemscount"]) or 1,
                              client_ip=row["client_ip"]))
    return out


def _listed(src: Sources, grantees: set[str], client_ip: str | None, user: str | None, sid: str | None,
            logon_type: str | None) -> tuple[str, tuple[str, ...]] | None:
    """(confidence, labels) of a logon whose entries are listed: from an attacker source, or a non-owner
    logon of an account granted FullAccess or impersonation; None for the others."""
    actor = user or sid
    labels = src.label(client_ip, None, actor) or src.label(None, None, sid)
    if labels:
        return "high", labels
    non_owner = (logon_type or "").lower() not in ("owner", "")
    if non_owner and {mailbox.key(actor), mailbox.key(sid)} & grantees:
        return "medium", (f"granted account {actor}",)
    return None
