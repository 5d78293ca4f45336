"""What to do for one exposed mailbox, with the Exchange Management Shell command for each step.

Mailbox names, rule names and paths come from the evidence (attacker-controlled): they are put in
single-quoted PowerShell strings with every quote character PowerShell accepts doubled, so a
command copied from the report cannot run anything the attacker wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

QUOTES_RE = re.compile("['\u2018\u2019\u201a\u201b]")


def q(text: str) -> str:
    """A PowerShell single-quoted literal of ``text``."""
    return "'" + QUOTES_RE.sub(lambda m: m.group(0) * 2, text.replace("\n", " ").replace("\r", " ")) + "'"


def steps(box: str, remedies: Iterable[tuple[str, str]], hows: Iterable[str], first: str | None,
          last: str | None) -> tuple[str, ...]:
    every = box == "*"
    m = q(box)
    out: list[str] = []
    for kind, detail in sorted(set(remedies)):
        if kind == "rule":
            pick = f" -Identity {q(detail)}" if detail else ""
            out.append(f"Remove the inbox rule after saving it: Get-InboxRule -Mailbox {m}{pick} | Format-List * ; "
                       f"Get-InboxRule -Mailbox {m}{pick} | Where-Object {{ $_.ForwardTo -or $_.RedirectTo -or "
                       "$_.ForwardAsAttachmentTo -or $_.DeleteMessage } | Remove-InboxRule -Confirm:$false")
        elif kind == "forwarding":
            out.append(f"Remove the mailbox forwarding: Set-Mailbox -Identity {m} -ForwardingSmtpAddress $null "
                       "-ForwardingAddress $null -DeliverToMailboxAndForward $false")
        elif kind == "permission":
            out.append(f"Remove the FullAccess permission: Remove-MailboxPermission -Identity {m} -User {q(detail)} "
                       "-AccessRights FullAccess -InheritanceType All -Confirm:$false")
        elif kind == "adpermission":
            out.append(f"Remove the AD permission: Remove-ADPermission -Identity {m} -User {q(detail)} "
                       "-ExtendedRights Receive-As,Send-As -Confirm:$false")
        elif kind == "folder":
            inbox = q(box + ":\\Inbox")
            out.append(f"Remove the folder permission: Get-MailboxFolderPermission -Identity {inbox} ; "
                       f"Remove-MailboxFolderPermission -Identity {inbox} -User {q(detail)}")
        elif kind == "role":
            out.append(f"Remove the role assignment: Get-ManagementRoleAssignment -RoleAssignee {q(detail)} | "
                       "Where-Object { $_.Role -in 'ApplicationImpersonation','Mailbox Import Export' } | "
                       "Remove-ManagementRoleAssignment -Confirm:$false")
        elif kind == "export":
            target = f" and the exported file {q(detail)} (hash and keep a copy first)" if detail else ""
            out.append(f"Remove the export request{target}: Get-MailboxExportRequest"
                       f"{'' if every else ' -Mailbox ' + m} | Remove-MailboxExportRequest -Confirm:$false")
        elif kind == "search":
            out.append(f"Remove the mailbox search and its results mailbox copy: Remove-MailboxSearch -Identity "
                       f"{q(detail)}" if detail else "Review the mailbox searches: Get-MailboxSearch")
        elif kind == "compliance":
            out.append(f"Remove the compliance search and its export: Remove-ComplianceSearch -Identity {q(detail)}")
    if every:
        out.append("Every mailbox the grant or export covered is exposed: list them (Get-Mailbox -ResultSize "
                   "Unlimited) and review the EWS and audit logs for each.")
        return tuple(out)
    out.append(f"Reset the credentials of {box} and sign out its sessions and devices: reset the AD password, "
               f"then Get-MobileDevice -Mailbox {m} | Remove-MobileDevice -Confirm:$false")
    out.append(f"Preserve the evidence before changing anything: keep the cited logs and place {box} on hold "
               f"(Set-Mailbox -Identity {m} -LitigationHoldEnabled $true)")
    window = f" between {first} and {last}" if first and last else ""
    out.append(f"Notify the owner of {box} (and your data-protection officer): mail was "
               f"{_verbs(hows)}{window}.")
    return tuple(out)


def _verbs(hows: Iterable[str]) -> str:
    found = set()
    for how in hows:
        if how.startswith(("export", "mailbox-search", "compliance-search:export", "mail-forwarded")):
            found.add("copied out")
        elif "forward" in how or how.startswith(("inbox-rule", "proxytoken")):
            found.add("set to be forwarded")
        elif "permission" in how or "role" in how:
            found.add("opened to another account")
        else:
            found.add("read")
    return " and ".join(sorted(found)) or "accessed"
