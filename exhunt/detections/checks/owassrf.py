"""OWASSRF (December 2022): ProxyNotShell's PowerShell step reached through OWA instead of
autodiscover, which bypassed the URL Rewrite mitigations."""

from __future__ import annotations

from exhunt.detections.base import SqlCheck
from exhunt.detections.checks.proxyshell import EVENT_COLUMNS, HTTP_EXCERPT, WEB_SOURCES
from exhunt.detections.patterns import url_text

CROWDSTRIKE_OWASSRF = "https://www.crowdstrike.com/blog/owassrf-exploit-analysis-and-recommendations/"
RAPID7_OWASSRF = "https://www.rapid7.com/blog/post/2022/12/21/cve-2022-41080-cve-2022-41082-rapid7-observed-exploitation-of-owassrf-in-exchange-for-rce/"


class OwaPowerShell(SqlCheck):
    id = "owassrf.owa_powershell"
    prefilter = (url_text("/owa/") + r"[^\r\n]*" + url_text("powershell"),)  # decoded or raw URL
    event_literals = ()
    title = "OWASSRF: remote PowerShell reached through OWA (CVE-2022-41080)"
    severity = "critical"
    description = (
        "OWA never serves /owa/<mailbox>/powershell. A request there that succeeded (200) is the OWASSRF "
        "exploit reaching remote PowerShell to run CVE-2022-41082; other statuses are attempts or scans "
        "(low confidence)."
    )
    cves = ("CVE-2022-41080", "CVE-2022-41082")
    attack = ("T1190", "T1059.001")
    references = (CROWDSTRIKE_OWASSRF, RAPID7_OWASSRF)
    remediation = (
        "Install the November 2022 Exchange Security Update or later; the ProxyNotShell URL Rewrite "
        "mitigation does not stop this path.",
        "Treat the server as compromised: review the remote PowerShell activity (Rps_Cmdlet logs, "
        "MSExchange Management event log), look for dropped tools (e.g. remote-access software) and reset "
        "the credentials of the account in the requests.",
    )
    sql = f"""
        SELECT {EVENT_COLUMNS}, coalesce(client_ip, '') AS key, {HTTP_EXCERPT} AS excerpt,
               CASE WHEN status = 200 THEN 'high' ELSE 'low' END AS confidence,
               client_ip AS ioc_client_ip, user_agent AS ioc_user_agent, "user" AS ioc_user
        FROM events
        WHERE source IN {WEB_SOURCES}
          AND regexp_matches(coalesce(uri_decoded, uri), '^/owa/[^/?]+/powershell([/?]|$)', 'i')
    """
