"""Web shells by placement, OAB exports holding a script, and requests to unknown pages.

Legitimate page names come from CSS-Exchange known-good baselines (``data/known_web_files.txt``,
refreshed by ``tools/refresh_known_web_files.py``); anything else in these folders is suspect.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from exhunt.detections.base import SqlCheck
from exhunt.detections.checks.proxylogon import MS_GUIDANCE, TEST_PROXYLOGON
from exhunt.detections.patterns import not_one_of

# FrontEnd\HttpProxy\oab and \ews hold no page of Exchange's own: shells were found there (Microsoft's
# March 2021 IOC feed: ...\HttpProxy\OAB\log.aspx, ...\HttpProxy\ews\333.aspx)
WEB_FOLDER_RE = ("(^|/)(frontend/httpproxy/(owa|ecp)/auth|frontend/httpproxy/(oab|ews)|inetpub/wwwroot/aspnet_client|"
                 "clientaccess/oab)/")
# what IIS hands to ASP.NET or ASP in Exchange's configuration (WCF .svc and Razor .vbhtml too)
PAGE_RE = "\\.(aspx|ashx|asmx|asp|asax|cshtml|vbhtml|svc|rem|soap)$"
# not /ews/ (FrontEnd\HttpProxy\ews held a shell too, which the placement check finds): every EWS
# request names /ews/, and a prefilter for its pages cost 10% of the triage scan's Hyperscan time
URL_FOLDER_RE = "^/(owa/auth|ecp/auth|aspnet_client|oab)/(.*/)?[^/]+\\.(aspx|ashx|asmx|asp)$"
# a file's path from the install folder, as ``known_web_paths`` lists the legitimate ones: each known
# page in its own folder only (logon.aspx is owa\auth's: in ecp\auth, under themes\resources or in
# aspnet_client it is as unknown as any other name; global.asax is HttpProxy\oab's and \ews's)
INSTALL_PATH_SQL = "regexp_extract(lower(path), '(frontend/httpproxy/.*)$', 1)"
KNOWN_URL_HOME_RE = "^/(owa|ecp)/auth/[^/]+$"
SHELL_REMEDIATION = (
    "Preserve the file (hash, copy, timestamps) and then remove it; search every Exchange server for the "
    "same SHA-256 and name.",
    "Review IIS logs for requests to the page (client IPs, first use) and everything those clients did.",
    "Reset credentials that were usable on the server (machine account, service and admin accounts) and "
    "look for persistence (scheduled tasks, new accounts, transport agents).",
)


class WebShellByPlacement(SqlCheck):
    id = "webshell.placement"
    prefilter = ()  # files only
    event_literals = ()
    title = "Unknown page in an Exchange or IIS web folder"
    severity = "high"
    description = (
        "ProxyLogon web shells were dropped under FrontEnd\\HttpProxy\\owa\\auth, ...\\ecp\\auth, ...\\OAB, "
        "...\\ews, inetpub\\wwwroot\\aspnet_client and ClientAccess\\OAB. This page is not one of Exchange's "
        "known-good pages in its place (a known name elsewhere, e.g. logon.aspx in ecp\\auth or under "
        "themes\\resources, counts as unknown)."
    )
    attack = ("T1505.003",)
    references = (MS_GUIDANCE, TEST_PROXYLOGON)
    remediation = SHELL_REMEDIATION
    sql = f"""
        SELECT host, path, 'files' AS source, mtime AS ts, NULL::BIGINT AS line, NULL::BIGINT AS record_id,
               path AS key,
               concat_ws(' ', path, 'size=' || size, 'sha256=' || sha256) AS excerpt,
               sha256 AS ioc_sha256, path AS ioc_file_path
        FROM files
        WHERE regexp_matches(lower(path), '{WEB_FOLDER_RE}') AND regexp_matches(lower(path), '{PAGE_RE}')
          AND {INSTALL_PATH_SQL} NOT IN (SELECT path FROM known_web_paths)
    """


class OabExportWithScript(SqlCheck):
    id = "webshell.oab_export_script"
    prefilter = ()  # web-root file events only
    event_literals = ()
    title = "OAB virtual directory export with a script ExternalUrl (China Chopper drop)"
    severity = "critical"
    description = (
        "The file holds an exported OAB virtual directory whose ExternalUrl is a '<script runat=server>' "
        "block: the web shell written by the CVE-2021-27065 / CVE-2021-26858 file writes."
    )
    cves = ("CVE-2021-27065",)
    attack = ("T1505.003", "T1190")
    references = (MS_GUIDANCE, TEST_PROXYLOGON)
    remediation = SHELL_REMEDIATION + (
        "Reset the OAB virtual directory ExternalUrl (Set-OabVirtualDirectory -ExternalUrl …) to its "
        "legitimate value.",
    )
    sql = """
        SELECT e.host, e.path, e.source, coalesce(f.mtime, e.ts) AS ts, e.line, e.record_id, e.path AS key,
               e.message AS excerpt, f.sha256 AS ioc_sha256, e.path AS ioc_file_path
        FROM events e LEFT JOIN files f ON f.host = e.host AND f.path = e.path
        WHERE e.source = 'webroot' AND e.kind = 'file' AND e.log_type = 'oab_export_script'
    """


@cache
def known_web_files() -> tuple[str, ...]:
    """Names of legitimate pages in the web folders (the request checks' test: a URL names no folder)."""
    return _listed("known_web_files.txt")


@cache
def known_web_paths() -> tuple[str, ...]:
    """Paths from the install folder of the legitimate pages in the placement check's folders."""
    return _listed("known_web_paths.txt")


def _listed(name: str) -> tuple[str, ...]:
    text = resources.files("exhunt").joinpath("data", name).read_text(encoding="utf-8")
    return tuple(n.strip().lower() for n in text.splitlines() if n.strip() and not n.startswith("#"))


def _requests_prefilter() -> str:
    """Every line naming a page in these folders, unless the only such page is a known name
    directly in owa/auth or ecp/auth, which the query drops: the OWA logon page alone was 99% of
    the lines triage stored on the bench corpus. Kept: any page in aspnet_client or oab, any page
    in a subfolder, any other name (any case: the prefilter is caseless, the query lowers the uri).
    Costs less than the plain folder pattern it replaces (0.14 s against 0.16 s per 300 MB)."""
    segment = '[^ ?\\r\\n,"]'  # a URL path as IIS (space) and HttpProxy's CSV (comma, quote) end it
    stems = [n[:-len(".aspx")] for n in known_web_files() if n.endswith(".aspx")]
    unknown_name = not_one_of(stems, end=' ?\r\n,"/') + "\\.aspx"
    return "|".join((
        "/(?:aspnet_client|oab)/[^\\r\\n]*\\.as[phm]",
        f"/(?:owa|ecp)/auth/{segment}*/{segment}*\\.as[phm]",
        f"/(?:owa|ecp)/auth/(?:{unknown_name}|[^ ?\\r\\n,\"/]*\\.as(?:hx|mx|p))(?:[ ?,\"\\r\\n]|$)",
    ))


class WebShellRequests(SqlCheck):
    id = "webshell.requests"
    prefilter = (_requests_prefilter(),)
    event_literals = ()
    title = "Requests to an unknown page in an Exchange web folder (web-shell use)"
    severity = "high"
    description = (
        "IIS or HttpProxy logged requests to a page in a folder where ProxyLogon shells were placed and "
        "whose name is not a legitimate Exchange page. Successful (2xx) requests are web-shell use; "
        "failed ones are usually scanners looking for other actors' shells (low confidence)."
    )
    attack = ("T1505.003", "T1059")
    references = (MS_GUIDANCE,)
    remediation = SHELL_REMEDIATION
    sql = f"""
        SELECT host, path, source, ts, line, record_id, lower(uri) AS key,
               concat_ws(' ', method, uri, uri_query, 'status=' || status, 'client=' || client_ip,
                         'UA=' || user_agent) AS excerpt,
               CASE WHEN status BETWEEN 200 AND 299 THEN 'high' ELSE 'low' END AS confidence,
               client_ip AS ioc_client_ip, user_agent AS ioc_user_agent, uri AS ioc_url_path
        FROM events
        WHERE source IN ('iis', 'httpproxy') AND regexp_matches(lower(uri), '{URL_FOLDER_RE}')
          AND NOT (lower(regexp_extract(uri, '[^/]+$')) IN (SELECT name FROM known_web_files)
                   AND regexp_matches(lower(uri), '{KNOWN_URL_HOME_RE}'))
    """
