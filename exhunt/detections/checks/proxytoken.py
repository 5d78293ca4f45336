"""ProxyToken (2021): an ECP request with an empty SecurityToken cookie skips authentication on the
back end, letting an outsider add a forwarding inbox rule to any mailbox."""

from __future__ import annotations

from exhunt.detections.base import SqlCheck
from exhunt.detections.checks.proxyshell import EVENT_COLUMNS, HTTP_EXCERPT, WEB_SOURCES
from exhunt.detections.patterns import url_text

ZDI_PROXYTOKEN = "https://www.zerodayinitiative.com/blog/2021/8/30/proxytoken-an-authentication-bypass-in-microsoft-exchange-server"
# IIS writes the cookie header only when cs(Cookie) logging is on; the parser keeps it in ``fields``.
COOKIE = ("lower(coalesce(json_extract_string(fields, '$.\"cs(Cookie)\"'), "
          "json_extract_string(fields, '$.Cookie'), ''))")


# the regex's own case-insensitive flag, not lower(): 0.47 -> 0.18 s over 8 M web rows
WHERE = (f"source IN {WEB_SOURCES} AND regexp_matches(coalesce(uri_decoded, uri), "
         "'^/ecp/[^/]+@[^/]+/ruleseditor/inboxrules\\.svc/newobject', 'i')")


class ProxyTokenInboxRule(SqlCheck):
    id = "proxytoken.inbox_rule"
    prefilter = (url_text("inboxrules.svc"),)  # decoded or raw URL
    event_literals = ()
    title = "ProxyToken: inbox rule created through ECP for another mailbox (CVE-2021-33766)"
    severity = "high"
    description = (
        "A POST to /ecp/<mailbox>/RulesEditor/InboxRules.svc/NewObject. With a SecurityToken cookie it is "
        "the ProxyToken bypass (high); unauthenticated without cookie logging it is medium; an "
        "authenticated user managing a delegated mailbox is usually legitimate (low)."
    )
    cves = ("CVE-2021-33766",)
    attack = ("T1114.003", "T1190")
    references = (ZDI_PROXYTOKEN,)
    remediation = (
        "Install the July 2021 Exchange Security Update or later.",
        "Review the inbox rules of the target mailbox (Get-InboxRule -Mailbox …) and remove forwarding "
        "rules that the owner did not create; treat the forwarded mail as disclosed.",
    )
    sql = f"""
        SELECT {EVENT_COLUMNS},
               coalesce(regexp_extract(lower(coalesce(uri_decoded, uri)), '^/ecp/([^/]+)/', 1), '') AS key,
               concat_ws(' ', {HTTP_EXCERPT}, 'cookie=' || nullif({COOKIE}, '')) AS excerpt,
               CASE WHEN contains({COOKIE}, 'securitytoken=') THEN 'high'
                    WHEN "user" IS NULL OR "user" IN ('-', '') THEN 'medium' ELSE 'low' END AS confidence,
               client_ip AS ioc_client_ip, user_agent AS ioc_user_agent
        FROM events
        WHERE {WHERE}
    """
    gate = WHERE
