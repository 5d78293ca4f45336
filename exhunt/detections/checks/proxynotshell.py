"""ProxyNotShell (September 2022): the ProxyShell-style autodiscover confusion, now needing valid
credentials, to reach remote PowerShell and run CVE-2022-41082."""

from __future__ import annotations

from exhunt.detections.base import SqlCheck
from exhunt.detections.checks.proxyshell import EVENT_COLUMNS, HTTP_EXCERPT, REQUEST, WEB_SOURCES, mentions
from exhunt.detections.patterns import url_text

MSRC_PROXYNOTSHELL = "https://msrc.microsoft.com/blog/2022/09/customer-guidance-for-reported-zero-day-vulnerabilities-in-microsoft-exchange-server/"
GTSC = "https://gteltsc.vn/blog/warning-new-attack-campaign-utilized-a-new-0day-rce-vulnerability-on-microsoft-exchange-server-12715.html"


class ProxyNotShellAutodiscover(SqlCheck):
    id = "proxynotshell.autodiscover_powershell"
    prefilter = (url_text("autodiscover.json"),)  # raw, query or decoded URL
    event_literals = ()
    title = "ProxyNotShell autodiscover SSRF to remote PowerShell (CVE-2022-41040)"
    severity = "critical"
    description = (
        "A request to autodiscover.json that names PowerShell after it (Microsoft's hunting pattern "
        "'autodiscover.json.*@.*Powershell', also as the published 'FooProtocol=Powershell' and the "
        "mitigation bypasses without '@'). From an authenticated user, with '@' or the confusion's "
        "'Email=autodiscover/autodiscover.json' (the bypasses drop the '@') and without ProxyShell's "
        "forged X-Rps-CAT token, it is the ProxyNotShell SSRF (high); otherwise the same shape may be "
        "ProxyShell's or a bypass probe, so it is medium and the server's build decides which applies."
    )
    cves = ("CVE-2022-41040", "CVE-2022-41082")
    attack = ("T1190", "T1059.001")
    references = (MSRC_PROXYNOTSHELL, GTSC)
    remediation = (
        "Install the November 2022 Exchange Security Update or later on every Exchange server "
        "(the URL Rewrite mitigation alone was bypassed several times).",
        "Treat the server as compromised: look for web shells, new scheduled tasks and services, and "
        "reset the credentials of the account used in the requests.",
    )
    sql = f"""
        SELECT {EVENT_COLUMNS}, coalesce(client_ip, '') AS key, {HTTP_EXCERPT} AS excerpt,
               CASE WHEN "user" IS NOT NULL AND "user" NOT IN ('-', '')
                         AND (contains({REQUEST}, '@') OR contains({REQUEST}, 'email=autodiscover/autodiscover.json'))
                         AND NOT contains({REQUEST}, 'x-rps-cat')
                    THEN 'high' ELSE 'medium' END AS confidence,
               client_ip AS ioc_client_ip, user_agent AS ioc_user_agent, "user" AS ioc_user
        FROM events
        WHERE source IN {WEB_SOURCES} AND {mentions('autodiscover.json')}
          AND regexp_matches({REQUEST}, 'autodiscover\\.json.*(/powershell([/?&#\\s]|$)|protocol=powershell)')
    """
