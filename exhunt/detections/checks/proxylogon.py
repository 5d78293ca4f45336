"""The March 2021 ProxyLogon chain in HttpProxy, IIS, ECP Server and OABGenerator logs.

Logic follows Microsoft's Test-ProxyLogon.ps1 (CSS-Exchange), with its silent exclusions turned
into lower-confidence findings instead of being dropped.
"""

from __future__ import annotations

from exhunt.detections.base import SqlCheck
from exhunt.detections.checks.proxyshell import CMDLET, PARAMETERS
from exhunt.detections.patterns import literal, url_text

PROXYLOGON_CVES = ("CVE-2021-26855", "CVE-2021-26857", "CVE-2021-26858", "CVE-2021-27065")
MS_GUIDANCE = "https://www.microsoft.com/security/blog/2021/03/02/hafnium-targeting-exchange-servers/"
TEST_PROXYLOGON = "https://github.com/microsoft/CSS-Exchange/tree/main/Security"
UPDATE_STEPS = (
    "Install the latest Exchange Cumulative Update and Security Update for this server "
    "(see the build section for the exact update).",
    "Treat the server as compromised until the web-shell and post-exploitation checks are clean: "
    "isolate it, collect memory and disk, and run Microsoft's Exchange On-premises Mitigation Tool / "
    "Safety Scanner.",
)

EVENT_COLUMNS = "host, path, source, ts, line, record_id"


class SsrfAnchorMailbox(SqlCheck):
    id = "proxylogon.ssrf.anchormailbox"
    prefilter = (literal("ServerInfo~"),)  # AnchorMailbox is logged raw
    event_literals = ()
    title = "ProxyLogon SSRF (CVE-2021-26855) in HttpProxy logs"
    severity = "critical"
    description = (
        "HttpProxy rows whose AnchorMailbox is 'ServerInfo~<host>/<path>' or 'ServerInfo~<x>]@<server>' "
        "are the server-side request forgery that starts the ProxyLogon chain: the front end proxied "
        "an unauthenticated request to a back end URL chosen by the client. Rows aimed at autodiscover "
        "or localhost (which Microsoft's script hides) are reported at low confidence."
    )
    cves = ("CVE-2021-26855",)
    attack = ("T1190",)
    references = (MS_GUIDANCE, TEST_PROXYLOGON)
    remediation = UPDATE_STEPS + (
        "Review every request from the listed client IPs across all Exchange servers "
        "(exhunt query CASE \"SELECT * FROM events WHERE client_ip = '…'\").",
    )
    sql = f"""
        SELECT {EVENT_COLUMNS}, coalesce(client_ip, '') AS key,
               concat_ws(' ', method, uri, 'AnchorMailbox=' || anchor_mailbox, 'status=' || status,
                         'client=' || client_ip, 'UA=' || user_agent) AS excerpt,
               CASE WHEN lower(anchor_mailbox) LIKE 'serverinfo~%/autodiscover%'
                      OR lower(anchor_mailbox) LIKE 'serverinfo~localhost%/%' THEN 'low' ELSE 'high' END
                   AS confidence,
               client_ip AS ioc_client_ip, user_agent AS ioc_user_agent
        FROM events
        WHERE source = 'httpproxy'
          AND lower(anchor_mailbox) LIKE 'serverinfo~%'
          AND (anchor_mailbox LIKE '%/%' OR anchor_mailbox LIKE '%]@%')
    """


class SsrfBackendCookie(SqlCheck):
    id = "proxylogon.ssrf.backend_cookie"
    # BackEndCookie 'Server~<x>/<y>~' (raw, as the regex reads it); IIS cookies searched raw in fields
    prefilter = (r"Server~[^~\r\n]*/[^~\r\n]*~", literal("X-BEResource="), literal("X-AnonResource-Backend="))
    event_literals = ()
    title = "ProxyLogon SSRF (CVE-2021-26855) in a back-end cookie"
    severity = "critical"
    description = (
        "The same server-side request forgery carried in a cookie instead of AnchorMailbox: an HttpProxy "
        "BackEndCookie 'Server~<x>/<path>~<n>' (Microsoft's Test-ProxyLogon filter 'Server~*/*~*') on an "
        "unauthenticated request, or an X-BEResource / X-AnonResource-Backend cookie in an IIS cs(Cookie) "
        "naming a back-end URL ('<x>]@<server>:444/ecp/...')."
    )
    cves = ("CVE-2021-26855",)
    attack = ("T1190",)
    references = (MS_GUIDANCE, TEST_PROXYLOGON)
    remediation = SsrfAnchorMailbox.remediation
    # HttpProxy's BackEndCookie is a column; an IIS cookie lives in the wide ``fields`` JSON: cheap
    # columns and substring tests of the line as logged (the spellings the exploits used; the store
    # derives ``fields`` from that line, ~5 us a row) first, the JSON read last
    BACKEND = "backend_cookie"
    IIS_COOKIE = "json_extract_string(fields, '$.\"cs(Cookie)\"')"
    COLUMNS = f"""{EVENT_COLUMNS}, coalesce(client_ip, '') AS key, 'high' AS confidence,
               client_ip AS ioc_client_ip, user_agent AS ioc_user_agent"""
    REQUEST = "concat_ws(' ', method, uri, 'status=' || status, 'client=' || client_ip, 'UA=' || user_agent)"
    # two selects, not one OR: each source's cheap filters then run before its cookie is read
    sql = f"""
        SELECT {COLUMNS}, {REQUEST} || ' BackEndCookie=' || {BACKEND} AS excerpt
        FROM events
        WHERE source = 'httpproxy' AND "user" IS NULL AND regexp_matches({BACKEND}, '^Server~[^~]*/[^~]*~', 'i')
        UNION ALL
        SELECT {COLUMNS}, {REQUEST} || ' cookie=' || {IIS_COOKIE} AS excerpt
        FROM events
        WHERE source = 'iis' AND "user" IS NULL
          AND (coalesce(raw, fields) ILIKE '%x-beresource=%'  -- cookie names in any case
               OR coalesce(raw, fields) ILIKE '%x-anonresource-backend=%')
          AND regexp_matches({IIS_COOKIE}, '(X-BEResource|X-AnonResource-Backend)=[^;]*(\\]@|/)', 'i')
    """


_SSRF_SCRIPT = r'(?:/owa/auth/[^\r\n]*\.js|/ecp/(?:auth/)?[^/\r\n]*\.js)(?:[ \t,"?\r]|$)'
_SSRF_SCRIPT_W3C = r"(?:/owa/auth/[^ \r\n]*\.js|/ecp/(?:auth/)?[^/ \r\n]*\.js)(?:[ \t?\r]|$)"


class SsrfStaticResourcePost(SqlCheck):
    id = "proxylogon.ssrf.static_post"
    # the raw uri (not decoded) as a field: the script paths end where the field ends (a space, the
    # CSV's comma or quote, the query's ``?``, the line's end). The method is left to the query: on
    # the same line in either order it cost Hyperscan as much as every other check together, and GETs
    # of static scripts under /owa/auth/ are a few lines per logon page. IIS's W3C stem never holds
    # a space (IIS writes ``+``): there the path ends at the first one (0.1 ns/B less on IIS lines)
    prefilter = (_SSRF_SCRIPT, _SSRF_SCRIPT_W3C,
                 r"/ecp/default\.flt|/ecp/main\.css|/owa/auth/current/themes/resources/")
    prefilter_scopes = {_SSRF_SCRIPT: "no-w3c-stem", _SSRF_SCRIPT_W3C: "w3c-stem"}
    event_literals = ()
    title = "POST to a static OWA/ECP resource (ProxyLogon SSRF, CVE-2021-26855)"
    severity = "high"
    description = (
        "Static files (.js, .css, default.flt, theme resources) are never the target of a legitimate "
        "POST. ProxyLogon exploits sent their SSRF as POSTs to such paths (e.g. /ecp/y.js, /ecp/auth/w.js, "
        "/owa/auth/x.js) with X-BEResource cookies."
    )
    cves = ("CVE-2021-26855",)
    attack = ("T1190",)
    references = (MS_GUIDANCE, TEST_PROXYLOGON)
    remediation = UPDATE_STEPS
    sql = f"""
        SELECT {EVENT_COLUMNS}, coalesce(client_ip, '') AS key,
               concat_ws(' ', method, uri, uri_query, 'status=' || status, 'client=' || client_ip,
                         'UA=' || user_agent) AS excerpt,
               client_ip AS ioc_client_ip, user_agent AS ioc_user_agent
        FROM events
        WHERE source IN ('iis', 'httpproxy') AND upper(method) = 'POST'
          AND regexp_matches(lower(uri),
              '^/(owa/auth/.*\\.js|ecp/(auth/)?[^/]*\\.js|ecp/default\\.flt|ecp/main\\.css|owa/auth/current/themes/resources/.*)$')
    """


class EcpVirtualDirectoryScript(SqlCheck):
    id = "proxylogon.ecp.set_virtualdirectory_script"
    prefilter = (literal("<script"),)  # in the raw EventData the parameters come from
    event_literals = ()
    title = "Virtual directory URL set to a script (CVE-2021-27065)"
    severity = "critical"
    description = (
        "The ECP Server or remote PowerShell (Rps_Cmdlet) log records a Set-*VirtualDirectory cmdlet whose "
        "parameters hold '<script', or a "
        "Get-*VirtualDirectory export shows a URL holding one (the same trace in its current state): the "
        "arbitrary file write of CVE-2021-27065, used to plant a China Chopper shell in the OAB "
        "virtual directory's ExternalUrl and export it to a web folder."
    )
    cves = ("CVE-2021-27065",)
    attack = ("T1190", "T1505.003")
    references = (MS_GUIDANCE, TEST_PROXYLOGON)
    remediation = UPDATE_STEPS + (
        "Check every virtual directory (Get-OabVirtualDirectory | fl ExternalUrl, InternalUrl and the "
        "other *VirtualDirectory cmdlets) and reset any URL that holds a script.",
        "Find the exported file (a page holding the OAB settings) in the web folders and remove it after "
        "preserving it as evidence.",
    )
    sql = f"""
        SELECT {EVENT_COLUMNS}, coalesce({CMDLET}, '') AS key,
               coalesce(message, {CMDLET} || ' ' || {PARAMETERS}) AS excerpt
        FROM events
        WHERE source IN ('ecp_server', 'rps_cmdlet') AND {CMDLET} ILIKE 'Set-%VirtualDirectory'
          AND {PARAMETERS} ILIKE '%<script%'
        UNION ALL  -- Get-*VirtualDirectory exports (artifacts.cmdlet_exports): the URL as it is now
        SELECT {EVENT_COLUMNS}, regexp_replace(cmdlet, '^Get-', 'Set-') AS key,
               concat_ws(' ', cmdlet, message, 'ExternalUrl=' || uri, 'InternalUrl=' || uri_query) AS excerpt
        FROM events
        WHERE kind = 'virtual_directory' AND fields ILIKE '%<script%'
    """


class EcpResetVirtualDirectory(SqlCheck):
    id = "proxylogon.ecp.reset_virtualdirectory"
    # decoded URL or raw AnchorMailbox: every spelling of 'reset' ... 'virtualdirectory'
    prefilter = (url_text("reset") + r"[^\r\n]*" + url_text("virtualdirectory"),)
    event_literals = ()
    title = "Reset*VirtualDirectory request to ECP (CVE-2021-27065 file write)"
    severity = "high"
    description = (
        "A request to ECP's Reset*VirtualDirectory schema writes the virtual directory settings to a "
        "path the caller chooses: after a script was placed in ExternalUrl this drops a web shell."
    )
    cves = ("CVE-2021-27065",)
    attack = ("T1190", "T1505.003")
    references = (MS_GUIDANCE, TEST_PROXYLOGON)
    remediation = EcpVirtualDirectoryScript.remediation
    sql = f"""
        SELECT {EVENT_COLUMNS}, coalesce(client_ip, '') AS key,
               concat_ws(' ', method, uri, uri_query, 'AnchorMailbox=' || anchor_mailbox, 'status=' || status,
                         'client=' || client_ip, 'user=' || "user") AS excerpt,
               client_ip AS ioc_client_ip
        FROM events
        WHERE source IN ('httpproxy', 'iis') AND lower(uri) LIKE '/ecp/%'
          AND (regexp_matches(coalesce(uri_decoded, uri || coalesce(uri_query, '')),
                              '(?i)reset[a-z]*virtualdirectory')
               OR regexp_matches(coalesce(anchor_mailbox, ''), '(?i)reset[a-z]*virtualdirectory'))
    """


class OabGeneratorDownloadFailed(SqlCheck):
    id = "proxylogon.oabgenerator.file_write"
    prefilter = (literal("Download failed and temporary file"),)  # the raw line is the message
    event_literals = ()
    title = "OABGenerator wrote a file outside the OAB folder (CVE-2021-26858)"
    severity = "critical"
    description = (
        "OABGenerator's 'Download failed and temporary file' entries name the file it wrote. A path outside "
        "ClientAccess\\OAB is the post-authentication arbitrary file write of CVE-2021-26858."
    )
    cves = ("CVE-2021-26858",)
    attack = ("T1190", "T1505.003")
    references = (MS_GUIDANCE, TEST_PROXYLOGON)
    remediation = UPDATE_STEPS + ("Inspect and remove (after preserving) the file named in the entry.",)
    sql = f"""
        WITH rows AS (
            SELECT {EVENT_COLUMNS}, message,
                   regexp_extract(message, 'temporary file ''?([^'']+)', 1) AS written
            FROM events
            WHERE source = 'oab_generator' AND message ILIKE '%Download failed and temporary file%'
        )
        SELECT host, path, source, ts, line, record_id, written AS key, message AS excerpt,
               written AS ioc_file_path
        FROM rows
        WHERE replace(lower(written), '/', '\\') NOT LIKE '%\\clientaccess\\oab\\%'
    """
