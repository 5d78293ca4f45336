"""ProxyShell (August 2021): autodiscover path confusion to the PowerShell back end, then mailbox
export of a web shell. Traces in IIS/HttpProxy logs and in the cmdlet logs that recorded it.

The request text matched is the raw and the decoded path and query together (``%3F`` and ``?``
both occur in real logs), lower-cased.
"""

from __future__ import annotations

from exhunt.detections.base import SqlCheck
from exhunt.detections.patterns import either_order, literal, url_text

PROXYSHELL_CVES = ("CVE-2021-34473", "CVE-2021-34523", "CVE-2021-31207")
MSRC_PROXYSHELL = "https://techcommunity.microsoft.com/t5/exchange-team-blog/proxyshell-vulnerabilities-and-your-exchange-server/ba-p/2684705"
CISA_PROXYSHELL = "https://www.cisa.gov/news-events/alerts/2021/08/21/urgent-protect-against-active-exploitation-proxyshell-vulnerabilities"
EVENT_COLUMNS = "host, path, source, ts, line, record_id"
# Raw and decoded request text of an IIS or HttpProxy row, lower-cased.
REQUEST = "lower(concat_ws(' ', uri, uri_query, uri_decoded))"
HTTP_EXCERPT = ("concat_ws(' ', method, uri, uri_query, 'status=' || status, 'user=' || \"user\", "
                "'client=' || client_ip, 'UA=' || user_agent)")
WEB_SOURCES = "('iis', 'httpproxy')"
# Cmdlet name and parameters wherever a log recorded them (ECP Server, Rps_Cmdlet, MSExchange Management).
# IIS and HttpProxy rows never carry one (their fields are the products' fixed names), so
# the cmdlet checks filter them out first, which DuckDB does inside the Parquet scan and so never
# parses their fields JSON (measured: 660 -> 15 ms over 794k rows of the scale corpus).
NOT_WEB = f"source NOT IN {WEB_SOURCES}"
CMDLET = "coalesce(cmdlet, json_extract_string(fields, '$.Cmdlet'))"
PARAMETERS = "coalesce(parameters, json_extract_string(fields, '$.Parameters'), message)"
# Folders IIS serves on an Exchange server (a .pst written there can be fetched, a page can run).
WEB_FOLDERS = "(?i)(inetpub|aspnet_client|frontend.httpproxy|clientaccess|\\\\owa\\\\|\\\\ecp\\\\)"
# a New-MailboxExportRequest's -FilePath, from its parameters (SQL over ``params``)
FILE_PATH = """regexp_extract(params, '(?i)-FilePath[ :]+"?([^"]+)', 1)"""
# parameters exporting a mailbox as a page, or as a .pst into a web folder (SQL over ``params``)
PARAMS_TO_WEB = (f"(regexp_matches(params, '(?i)\\.(aspx|ashx|asmx|asp)\\b') "
                 f"OR (regexp_matches(params, '(?i)\\.pst\\b') AND regexp_matches(params, '{WEB_FOLDERS}')))")
# an export request's FilePath (artifacts.cmdlet_exports) that drops a page or a .pst into a web folder
EXPORT_TO_WEB = ("(regexp_matches(target_filename, '(?i)\\.(aspx|ashx|asmx|asp)$') OR "
                 f"regexp_matches(target_filename, '{WEB_FOLDERS}'))")
UPDATE_STEPS = (
    "Install the latest Exchange Cumulative Update and Security Update on every Exchange server; "
    "ProxyShell is fixed from the July 2021 updates (KB5004779 and later).",
    "Treat the server as compromised: look for web shells (.aspx) in the Exchange and IIS web folders, "
    "mailbox export requests (Get-MailboxExportRequest) and new role assignments, and remove what the "
    "attacker added after preserving it.",
)


def mentions(text: str) -> str:
    """``text`` (lower-case, no space, no LIKE wildcard) in the URI, query or decoded URI: a cheap
    condition implied by any regex over REQUEST that requires it, which lets DuckDB skip the lower(),
    concat and regex for nearly every row (measured 1.0 -> 0.3 s over 8 M web rows)."""
    return "(" + " OR ".join(f"{c} ILIKE '%{text}%'" for c in ("uri", "uri_query", "uri_decoded")) + ")"


class ProxyShellAutodiscover(SqlCheck):
    id = "proxyshell.autodiscover_ssrf"
    prefilter = (url_text("autodiscover.json"),)  # raw, query or decoded URL
    event_literals = ()
    title = "ProxyShell autodiscover path confusion (CVE-2021-34473)"
    severity = "critical"
    description = (
        "A request to /autodiscover/autodiscover.json carrying '@' and "
        "'Email=autodiscover/autodiscover.json' that reaches /powershell, /mapi/nspi or /EWS: the "
        "pre-authentication path confusion that opens "
        "ProxyShell. The same confusion reaching /owa/ is the published vulnerability check (a 302 answer "
        "means vulnerable), reported at medium confidence. Authenticated requests of the same shape are "
        "reported at medium confidence because ProxyNotShell (CVE-2022-41040) uses it with valid "
        "credentials. The same pattern without the "
        "Email= parameter is a variant or a scanner (medium)."
    )
    cves = PROXYSHELL_CVES
    attack = ("T1190",)
    references = (MSRC_PROXYSHELL, CISA_PROXYSHELL)
    remediation = UPDATE_STEPS + (
        "Review every request from the listed client IPs across all Exchange servers.",
    )
    sql = f"""
        SELECT {EVENT_COLUMNS}, coalesce(client_ip, '') AS key, {HTTP_EXCERPT} AS excerpt,
               CASE WHEN NOT contains({REQUEST}, 'email=autodiscover/autodiscover.json') THEN 'medium'
                    WHEN "user" IS NOT NULL AND "user" NOT IN ('-', '') THEN 'medium'
                    WHEN NOT regexp_matches({REQUEST}, '@.*/(powershell|mapi/nspi|ews)([/?&%. ]|$)') THEN 'medium'
                    ELSE 'high' END AS confidence,
               client_ip AS ioc_client_ip, user_agent AS ioc_user_agent
        FROM events
        WHERE source IN {WEB_SOURCES} AND {mentions('autodiscover.json')}
          AND regexp_matches({REQUEST},
              'autodiscover\\.json.*@.*/(powershell|mapi/nspi|ews|owa)([/?&%. ]|$)')
    """


class ProxyShellPowerShellSystem(SqlCheck):
    id = "proxyshell.powershell_system"
    # a raw /powershell path and a SYSTEM user on one line, in either field order
    prefilter = (either_order(literal("/powershell"), r"system|s-1-5-18"),)
    event_literals = ()
    title = "Remote PowerShell back-end session as SYSTEM (ProxyShell CVE-2021-34523)"
    severity = "high"
    description = (
        "ProxyShell's elevation step talks to the Exchange PowerShell back end with a forged X-Rps-CAT "
        "token, and the back end logs the session as NT AUTHORITY\\SYSTEM. Rows carrying X-Rps-CAT or the "
        "autodiscover confusion are high confidence; a bare SYSTEM session is medium."
    )
    cves = ("CVE-2021-34523",)
    attack = ("T1190", "T1068")
    references = (MSRC_PROXYSHELL,)
    remediation = UPDATE_STEPS
    sql = f"""
        SELECT {EVENT_COLUMNS}, coalesce(client_ip, '') AS key, {HTTP_EXCERPT} AS excerpt,
               CASE WHEN contains({REQUEST}, 'x-rps-cat') OR contains({REQUEST}, 'autodiscover.json')
                    THEN 'high' ELSE 'medium' END AS confidence,
               client_ip AS ioc_client_ip
        FROM events
        WHERE source IN {WEB_SOURCES} AND lower(uri) LIKE '/powershell%'
          AND regexp_matches(lower(coalesce("user", '')), '(^|\\\\)system$|^s-1-5-18$')
    """


class MailboxExportToWebFolder(SqlCheck):
    id = "proxyshell.mailbox_export_webshell"
    prefilter = (literal("New-MailboxExportRequest"),)  # the cmdlet name, raw in the log line
    event_literals = ("New-MailboxExportRequest",)  # MSExchange Management events
    title = "Mailbox exported to a page or into a web folder (web-shell drop)"
    severity = "critical"
    description = (
        "New-MailboxExportRequest whose -FilePath ends in .aspx/.ashx/.asmx, or writes a .pst under an IIS "
        "or Exchange web folder: ProxyShell actors saved a mailbox holding a script as a web page. Found "
        "in MSExchange Management event logs, Rps_Cmdlet and ECP Server logs, and in Get-MailboxExportRequest "
        "exports (the request's FilePath)."
    )
    cves = PROXYSHELL_CVES
    attack = ("T1505.003", "T1114.002")
    references = (MSRC_PROXYSHELL, CISA_PROXYSHELL)
    remediation = UPDATE_STEPS + (
        "Remove the export request (Remove-MailboxExportRequest) and the exported file after preserving "
        "it; find requests to it in the IIS logs.",
    )
    sql = f"""
        WITH c AS (
            SELECT {EVENT_COLUMNS}, "user", {CMDLET} AS name, {PARAMETERS} AS params FROM events
            WHERE {NOT_WEB} AND {CMDLET} IS NOT NULL
        )
        SELECT host, path, source, ts, line, record_id,
               coalesce({FILE_PATH}, params) AS key,
               concat_ws(' ', name, params, 'user=' || "user") AS excerpt,
               {FILE_PATH} AS ioc_file_path
        FROM c
        WHERE lower(name) = 'new-mailboxexportrequest' AND {PARAMS_TO_WEB}
        UNION ALL  -- Get-MailboxExportRequest(Statistics) exports: the request's FilePath as it is
        SELECT host, path, source, ts, line, record_id, target_filename AS key,
               concat_ws(' ', cmdlet, 'mailbox=' || anchor_mailbox, 'FilePath=' || target_filename,
                         'status=' || message, 'requested by=' || "user") AS excerpt,
               target_filename AS ioc_file_path
        FROM events
        WHERE kind = 'mailbox_export_request' AND {EXPORT_TO_WEB}
    """


class MailboxImportExportRole(SqlCheck):
    id = "proxyshell.mailbox_import_export_role"
    prefilter = (literal("New-ManagementRoleAssignment"),)  # the cmdlet name, raw in the log line
    event_literals = ("New-ManagementRoleAssignment",)  # MSExchange Management events
    title = "Mailbox Import Export role assigned"
    severity = "high"
    description = (
        "New-ManagementRoleAssignment granting 'Mailbox Import Export': ProxyShell actors gave themselves "
        "this role right before exporting a mailbox as a web shell. Administrators also grant it for "
        "legitimate exports, so it is medium confidence on its own."
    )
    cves = PROXYSHELL_CVES
    attack = ("T1098",)
    references = (MSRC_PROXYSHELL,)
    remediation = (
        "Confirm with the Exchange administrators that the assignment was intended; otherwise remove it "
        "(Remove-ManagementRoleAssignment) and investigate the account that made it.",
    )
    sql = f"""
        SELECT {EVENT_COLUMNS}, coalesce("user", '') AS key,
               concat_ws(' ', {CMDLET}, {PARAMETERS}, 'user=' || "user") AS excerpt, 'medium' AS confidence
        FROM events
        WHERE {NOT_WEB} AND lower({CMDLET}) = 'new-managementroleassignment'
          AND regexp_matches({PARAMETERS}, '(?i)mailbox ?import ?export')
    """
