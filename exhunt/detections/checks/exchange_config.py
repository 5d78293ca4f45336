"""Exchange configuration as cmdlet exports show it now: mailbox export requests, mailbox and AD
permissions, management role assignments (rows of ``artifacts.cmdlet_exports``; no text-log rows).

What an attacker leaves here outlives the logs: ProxyShell actors assigned themselves Mailbox Import
Export and left export requests; others grant FullAccess or ApplicationImpersonation to read mail.
Export requests into web folders and virtual directory URLs holding a script are the critical
traces and belong to the ProxyShell / ProxyLogon checks (``proxyshell``, ``proxylogon``).
"""

from __future__ import annotations

from exhunt.detections.base import SqlCheck
from exhunt.detections.checks.mailflow import COLUMNS, prop
from exhunt.detections.checks.proxyshell import (
    CMDLET,
    EXPORT_TO_WEB,
    FILE_PATH,
    MSRC_PROXYSHELL,
    PARAMETERS,
    PARAMS_TO_WEB,
)
from exhunt.detections.patterns import literal

MS_PERMISSIONS = "https://learn.microsoft.com/en-us/exchange/recipients/mailbox-permissions"
MS_IMPERSONATION = "https://learn.microsoft.com/en-us/exchange/applicationimpersonation-role-exchange-2013-help"
MS_EXPORT = "https://learn.microsoft.com/en-us/exchange/recipients/mailbox-import-and-export/mailbox-import-and-export"
# principals Exchange itself grants rights to (by the end of their name, lower case)
BUILT_IN = ("(^|\\\\)(self|system|network service|s-1-5-18|exchange servers|exchange trusted subsystem|"
            "exchange windows permissions|organization management|managed availability servers|"
            "exchange domain servers|exchange services|domain admins|enterprise admins|administrator|"
            "delegated setup|public folder management|exchange organization administrators|"
            "hygiene management|discovery management)$")
MASS_GRANT = 3  # a principal with rights on this many mailboxes is more than one delegate


def export_confidence(path: str) -> str:
    """SQL: an export's FilePath (``path``) that is no UNC share, a UNC path to this host or an admin
    share, or a file that is no .pst is unusual (medium); an ordinary .pst on a share low."""
    return (f"CASE WHEN NOT starts_with(coalesce({path}, ''), '\\\\')"
            f" OR regexp_matches({path}, '(?i)^\\\\\\\\(localhost|127\\.[0-9.]+|\\[?::1\\]?)\\\\')"
            f" OR regexp_matches({path}, '(?i)^\\\\\\\\[^\\\\]+\\\\[a-z]\\$')"
            f" OR NOT regexp_matches({path}, '(?i)\\.pst$') THEN 'medium' ELSE 'low' END")


class MailboxExportRequest(SqlCheck):
    id = "exchange_config.mailbox_export_request"
    event_literals = ()  # reads cmdlet-export rows, no Windows event
    title = "Mailbox export request"
    severity = "medium"
    description = (
        "A Get-MailboxExportRequest export lists a request (exports into web folders are the ProxyShell "
        "check). A path that is no UNC share, a UNC path to this host (localhost, 127.0.0.1) or an admin "
        "share (c$), or a file that is no .pst is unusual (medium); an ordinary .pst export to a share is "
        "listed at low confidence for review, since attackers also export mail to read it elsewhere."
    )
    attack = ("T1114.002",)
    references = (MS_EXPORT, MSRC_PROXYSHELL)
    remediation = (
        "Confirm with the Exchange administrators that the export was requested; otherwise preserve the "
        "file and the request (Get-MailboxExportRequestStatistics -IncludeReport), remove it, and find the "
        "account that created it.",
    )
    prefilter = ()
    gate = "kind = 'mailbox_export_request'"
    sql = f"""
        SELECT {COLUMNS}, coalesce(target_filename, '') AS key,
               concat_ws(' ', cmdlet, 'mailbox=' || anchor_mailbox, 'FilePath=' || target_filename,
                         'status=' || message, 'requested by=' || "user") AS excerpt,
               {export_confidence("target_filename")} AS confidence,
               target_filename AS ioc_file_path
        FROM events
        WHERE kind = 'mailbox_export_request' AND NOT coalesce({EXPORT_TO_WEB}, false)
    """


class MailboxExportCmdlet(SqlCheck):
    id = "exchange_config.mailbox_export_cmdlet"
    prefilter = (literal("New-MailboxExportRequest"),)  # the cmdlet name, raw in the log line
    event_literals = ()  # MSExchange Management events: the Sigma rule exhunt_exchange_mailbox_export
    title = "Mailbox export request in the cmdlet logs"
    severity = "medium"
    description = (
        "New-MailboxExportRequest recorded by remote PowerShell (Rps_Cmdlet) or ECP (Server log): a mailbox "
        "copied to a PST, legitimate for migrations and eDiscovery, used to steal mail after ProxyShell and "
        "ProxyNotShell. Confidence as for export requests (medium for a local path, this host's or an admin "
        "share, or a file that is no .pst; low otherwise). Into a web folder or as a page it is the ProxyShell "
        "check; in the MSExchange Management event log, the Sigma rule exhunt_exchange_mailbox_export."
    )
    attack = ("T1114.002",)
    references = (MS_EXPORT, MSRC_PROXYSHELL)
    remediation = MailboxExportRequest.remediation
    sql = f"""
        WITH c AS (
            SELECT host, path, source, ts, line, record_id, "user", {CMDLET} AS name, {PARAMETERS} AS params
            FROM events WHERE source IN ('rps_cmdlet', 'ecp_server')
        ), e AS (SELECT *, {FILE_PATH} AS file FROM c)
        SELECT host, path, source, ts, line, record_id,
               coalesce(nullif(regexp_extract(params, '(?i)-Mailbox[ :]+"?([^" ]+)', 1), ''), params) AS key,
               concat_ws(' ', name, params, 'user=' || "user") AS excerpt,
               {export_confidence("file")} AS confidence, nullif(file, '') AS ioc_file_path
        FROM e
        WHERE lower(name) = 'new-mailboxexportrequest' AND NOT {PARAMS_TO_WEB}  -- those: the ProxyShell check
    """


class MailboxPermissionGrant(SqlCheck):
    id = "exchange_config.mailbox_permission"
    event_literals = ()  # reads cmdlet-export rows, no Windows event
    title = "FullAccess or SendAs granted on mailboxes to an unexpected principal"
    severity = "medium"
    description = (
        "A Get-MailboxPermission or Get-ADPermission export holds an explicit (not inherited, not deny) "
        "FullAccess, SendAs or ReceiveAs right for a principal that is not one Exchange grants itself: "
        "someone can read or send as the mailbox. Medium confidence when the principal holds such rights "
        f"on {MASS_GRANT} or more mailboxes, low for a single delegate (assistants have them)."
    )
    attack = ("T1098.002",)
    references = (MS_PERMISSIONS,)
    remediation = (
        "Confirm each grant with the mailbox owner; remove the ones nobody asked for (Remove-MailboxPermission, "
        "Remove-ADPermission) and review what the principal read or sent.",
    )
    prefilter = ()
    gate = "kind IN ('mailbox_permission', 'ad_permission')"
    sql = f"""
        WITH g AS (
            SELECT {COLUMNS}, anchor_mailbox, "user" AS grantee, parameters AS rights FROM events
            WHERE kind IN ('mailbox_permission', 'ad_permission')
              AND regexp_matches(coalesce(parameters, ''), '(?i)(fullaccess|send-?as|receive-?as)')
              AND lower(coalesce({prop('IsInherited')}, 'false')) <> 'true'
              AND lower(coalesce({prop('Deny')}, 'false')) <> 'true'
              AND NOT regexp_matches(lower(coalesce("user", '')), '{BUILT_IN}')
              AND coalesce("user", '') <> ''
        ), n AS (SELECT host, grantee, count(DISTINCT anchor_mailbox) AS mailboxes FROM g GROUP BY ALL)
        SELECT {', '.join('g.' + c.strip() for c in COLUMNS.split(','))}, g.grantee AS key,
               concat_ws(' ', 'mailbox=' || anchor_mailbox, 'grantee=' || g.grantee, 'rights=' || rights) AS excerpt,
               CASE WHEN n.mailboxes >= {MASS_GRANT} THEN 'medium' ELSE 'low' END AS confidence
        FROM g JOIN n USING (host, grantee)
    """


class ImpersonationRole(SqlCheck):
    id = "exchange_config.impersonation_role"
    event_literals = ()  # reads cmdlet-export rows, no Windows event
    title = "ApplicationImpersonation or Mailbox Import Export assigned to an unexpected assignee"
    severity = "high"
    description = (
        "A Get-ManagementRoleAssignment export shows ApplicationImpersonation (read every mailbox through "
        "EWS) or Mailbox Import Export (export any mailbox, ProxyShell's web-shell drop) assigned, not "
        "as a delegating assignment, to an assignee other than the built-in role groups. Administrators "
        "grant these for migrations and backup tools too: medium confidence."
    )
    attack = ("T1098",)
    references = (MS_IMPERSONATION, MSRC_PROXYSHELL)
    remediation = (
        "Confirm the assignment with the Exchange administrators; remove it (Remove-ManagementRoleAssignment) "
        "if nobody needs it, and review what the assignee accessed (EWS logs, export requests).",
    )
    prefilter = ()
    gate = "kind = 'role_assignment'"
    sql = f"""
        SELECT {COLUMNS}, coalesce("user", '?') || ': ' || parameters AS key,
               concat_ws(' ', 'role=' || parameters, 'assignee=' || "user", 'assignment=' || message,
                         'type=' || {prop('RoleAssigneeType')}) AS excerpt,
               'medium' AS confidence
        FROM events
        WHERE kind = 'role_assignment'
          AND regexp_matches(coalesce(parameters, ''), '(?i)^(applicationimpersonation|mailbox ?import ?export)$')
          AND NOT regexp_matches(coalesce({prop('RoleAssignmentDelegationType')}, '') || ' ' || coalesce(message, ''),
                                 '(?i)delegating')
          AND NOT regexp_matches(lower(coalesce("user", '')), '{BUILT_IN}')
    """
