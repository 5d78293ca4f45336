"""Mailbox audit log exports (``Search-MailboxAuditLog -ShowDetails | Export-Csv`` or the XML report
of ``New-MailboxAuditLogSearch``), read by ``exhunt.artifacts.mailbox_audit`` as ``mailbox_audit``
rows. An entry is listed when its logon comes from an attacker source (client IP or account), or
when a non-owner logon is an account that was granted FullAccess or impersonation in the evidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exhunt.detections.impact import mailbox
from exhunt.detections.impact.access import REF_COLUMNS, Access, ref, rows, to_int
from exhunt.detections.impact.sources import Sources

if TYPE_CHECKING:
    import duckdb

FIELDS = ("MailboxOwnerUPN", "MailboxResolvedOwnerName", "MailboxOwnerSid", "LogonType", "LogonUserSid",
          "LogonUserDisplayName", "Operation", "FolderPathName", "ClientInfoString", "SourceItemsCount")


def audit_accesses(con: duckdb.DuckDBPyConnection, src: Sources, grantees: set[str],
                   aliases: mailbox.Aliases) -> list[Access]:
    extract = ", ".join(f"json_extract_string(fields, '$.{f}') AS {f.lower()}" for f in FIELDS)
    found = rows(con.execute(f"""
        SELECT {REF_COLUMNS}, client_ip, "user", {extract} FROM events WHERE source = 'mailbox_audit'"""))
    out = []
    for row in found:
        owner = row["mailboxownerupn"] or row["mailboxresolvedownername"] or row["mailboxownersid"]
        aliases.pair(mailbox.key(row["mailboxownerupn"]), mailbox.key(row["mailboxownersid"]))
        if not owner:
            continue
        actor = row["user"] or row["logonusersid"]
        labels = src.label(row["client_ip"], None, actor) or src.label(None, None, row["logonusersid"])
        non_owner = (row["logontype"] or "").lower() not in ("owner", "")
        if labels:
            confidence = "high"
        elif non_owner and {mailbox.key(actor), mailbox.key(row["logonusersid"])} & grantees:
            confidence, labels = "medium", (f"granted account {actor}",)
        else:
            continue
        excerpt = (f"{row['operation']} {row['logontype']} logon by {actor} from {row['client_ip']} "
                   f"on {owner} {row['folderpathname'] or ''} {row['clientinfostring'] or ''}")
        out.append(Access(row["host"], owner, f"audit:{row['operation'] or 'access'}", confidence,
                          ref(row, excerpt), row["ts"], labels, items=to_int(row["sourceitemscount"]) or 1,
                          client_ip=row["client_ip"]))
    return out
