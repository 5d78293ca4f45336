"""CVE-2020-0688: ECP's static machine key lets a crafted __VIEWSTATE run code as SYSTEM."""

from __future__ import annotations

from exhunt.detections.base import SqlCheck
from exhunt.detections.checks.proxyshell import EVENT_COLUMNS, HTTP_EXCERPT, REQUEST, WEB_SOURCES
from exhunt.detections.patterns import url_text

MSRC_0688 = "https://msrc.microsoft.com/update-guide/vulnerability/CVE-2020-0688"
ZDI_0688 = "https://www.zerodayinitiative.com/blog/2020/2/24/cve-2020-0688-remote-code-execution-on-microsoft-exchange-server-through-fixed-cryptographic-keys"


class EcpViewState(SqlCheck):
    id = "cve_2020_0688.ecp_viewstate"
    prefilter = (url_text("__viewstategenerator"),)  # raw, query or decoded URL
    event_literals = ()
    title = "Serialized __VIEWSTATE sent to /ecp/default.aspx (CVE-2020-0688)"
    severity = "critical"
    description = (
        "ECP pages never take __VIEWSTATE and __VIEWSTATEGENERATOR in the query string. Such a request to "
        "/ecp/default.aspx is the CVE-2020-0688 deserialization exploit (it usually answers 500 even when "
        "the payload ran). Only the generator parameter, without a view state, is a scanner (low)."
    )
    cves = ("CVE-2020-0688",)
    attack = ("T1190", "T1059")
    references = (MSRC_0688, ZDI_0688)
    remediation = (
        "Install the February 2020 Exchange Security Update (or any later Cumulative Update) on every "
        "Exchange server.",
        "Treat the server as compromised if the request came from an authenticated account: reset that "
        "account, look for web shells and new accounts, and review what ran as SYSTEM around that time.",
    )
    sql = f"""
        SELECT {EVENT_COLUMNS}, coalesce(client_ip, '') AS key, left({HTTP_EXCERPT}, 400) AS excerpt,
               CASE WHEN contains({REQUEST}, '__viewstate=') THEN 'high' ELSE 'low' END AS confidence,
               client_ip AS ioc_client_ip, "user" AS ioc_user
        FROM events
        WHERE source IN {WEB_SOURCES} AND lower(uri) LIKE '/ecp/default.aspx%'
          AND contains({REQUEST}, '__viewstategenerator')
    """
