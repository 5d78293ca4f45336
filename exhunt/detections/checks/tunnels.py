"""Web-shell tunnels (SOCKS or port forwarding over HTTP through a page on the server) in IIS and
HttpProxy logs: the request shapes the public tunnelling shells leave in the URL and user agent, and
the traffic every such tunnel makes — one client polling one page many times a second.

Request facts (read from the tools' public sources; the regexes are ours):

* reGeorg: ``POST page?cmd=connect&target=IP&port=N``, then ``?cmd=read``, ``?cmd=forward``,
  ``?cmd=disconnect`` (the ``X-CMD`` header repeats the command; IIS does not log request headers).
* Tunna: the query starts with ``proxy``: ``?proxy&port=N&ip=IP`` to open (``&socks`` appended in SOCKS
  mode), ``?proxy`` for each data POST (idle pings are GETs), ``?proxy&file&upload`` and ``?proxy&close``.
* Suo5: the client's default user agent claims ``Chrome/109.1.2.3``, a version Chrome never had.
* Neo-reGeorg (v3: commands in random header names, GET and POST; v5: everything in a base64 POST
  body with a shuffled alphabet), ABPTTS and pystinger (form fields in the POST body, names chosen
  at generation) put nothing the logs keep in the URL: only the traffic check sees them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from exhunt.detections.base import Hit, SqlCheck
from exhunt.detections.checks.proxyshell import EVENT_COLUMNS, HTTP_EXCERPT, WEB_SOURCES
from exhunt.detections.checks.webshells import KNOWN_URL_HOME_RE, SHELL_REMEDIATION
from exhunt.detections.patterns import not_ending_in, not_one_of

if TYPE_CHECKING:
    import duckdb

REGEORG = "https://github.com/sensepost/reGeorg"
NEO_REGEORG = "https://github.com/L-codes/Neo-reGeorg"
TUNNA = "https://github.com/SECFORCE/Tunna"
SUO5 = "https://github.com/zema1/suo5"
TUNNEL_REMEDIATION = SHELL_REMEDIATION + (
    "Block the client address at the perimeter and look for connections from the server to internal hosts "
    "(RDP, SMB, WinRM, LDAP) in the tunnel's time span: they are the attacker's pivot.",
)

# Query and user agent without the leading '?' some HttpProxy versions keep, lower-cased.
QUERY = "lower(ltrim(coalesce(uri_query, ''), '?'))"
REGEORG_RE = "^cmd=(read|forward|disconnect)$|^cmd=connect&target=[^&]+&port=[0-9]+$"
TUNNA_RE = "^proxy(&(port|ip)=[^&]*)*(&socks)?$|^proxy&(file|close)(&|$)"
SUO5_UA = "chrome/109.1.2.3"


class TunnelRequests(SqlCheck):
    id = "webshell.tunnel_requests"
    event_literals = ()
    title = "Web-shell tunnel requests (reGeorg, Tunna, Suo5)"
    severity = "high"
    description = (
        "A request carries the URL or user agent of a public web-shell tunnel: reGeorg's "
        "'cmd=connect&target=…&port=…', 'cmd=read|forward|disconnect' queries, Tunna's 'proxy&port=…&ip=…' "
        "queries, or Suo5's default user agent (Chrome/109.1.2.3). The page is a tunnel into the internal "
        "network. POSTs (how the tools send them) are high confidence; a GET of the same shape medium."
    )
    attack = ("T1090.001", "T1572", "T1505.003")
    references = (REGEORG, TUNNA, SUO5)
    remediation = TUNNEL_REMEDIATION
    prefilter = (
        "cmd=(connect|read|forward|disconnect)",
        " proxy(&|[ \\r\\n]|$)",  # IIS: the cs-uri-query field
        "[,\"]\\?proxy(&|[,\"])",  # HttpProxy: UrlQuery keeps its '?' (HttpProxy's ProxyAction is 'Proxy')
        "chrome/109\\.1\\.2\\.3",
    )
    # ActiveSync's 'Cmd=Sync' puts cmd= in a third of an Exchange server's queries: name the commands
    gate = (f"source IN {WEB_SOURCES} AND (" + " OR ".join(
        f"uri_query ILIKE '%cmd={c}%'" for c in ("connect", "read", "forward", "disconnect"))
        + f" OR uri_query ILIKE '%proxy%' OR user_agent ILIKE '%{SUO5_UA}%')")
    sql = f"""
        SELECT {EVENT_COLUMNS}, concat_ws(' ', coalesce(client_ip, ''), lower(uri)) AS key,
               left(concat_ws(' ', tool || ':', {HTTP_EXCERPT}), 400) AS excerpt,
               CASE WHEN upper(method) = 'POST' OR tool = 'Suo5'
                         OR regexp_matches({QUERY}, '&(port|ip|file|close|target)') THEN 'high'
                    ELSE 'medium' END AS confidence,
               client_ip AS ioc_client_ip, user_agent AS ioc_user_agent, uri AS ioc_url_path
        FROM (
            SELECT *, CASE WHEN regexp_matches({QUERY}, '{REGEORG_RE}') THEN 'reGeorg'
                           WHEN regexp_matches({QUERY}, '{TUNNA_RE}') THEN 'Tunna'
                           WHEN contains(lower(coalesce(user_agent, '')), '{SUO5_UA}') THEN 'Suo5' END AS tool
            FROM events WHERE {gate}
        )
        WHERE tool IS NOT NULL
    """


# Pages with server-side code (a tunnel needs one). .svc, .axd, .owa, .eas and extension-less routes are
# left out: Exchange's and ASP.NET's busiest endpoints use them and no public tunnel does.
DYNAMIC_EXTENSIONS = ("aspx", "ashx", "asmx", "asp", "php", "jsp", "jspx")
# Exchange's own dynamic pages that one client (or the front end, in back-end logs) legitimately asks
# many times a minute: EWS for every Outlook/mobile/sync client, OWA's per-session handlers, the logon
# pages (load-balancer monitors, password sprays: other checks' business).
BUSY_PAGES = (
    "/ews/exchange.asmx",
    "/owa/sessiondata.ashx",
    "/owa/userspecificresourceinjector.ashx",
    "/owa/plt1.ashx",
    "/owa/auth/logon.aspx",
    "/owa/auth/errorfe.aspx",
    "/ecp/auth/timeoutlogout.aspx",
)
# A tunnel polls with POSTs while a connection is open (their sources: reGeorg, Neo-reGeorg 5 and
# pystinger POST every command and read; Tunna POSTs data but pings with GET, its URL check covers it;
# ABPTTS sends form parameters in the body): reGeorg asks again 0.1 s after an empty answer (~10/s),
# Neo-reGeorg every 300 ms (~3/s), ABPTTS backs off to at most one second when idle
# (>= 300 in 5 minutes). Browsers and web apps POST to one page a few times a minute;
# load-balancer monitors GET every 5 s by default (60 in 5 minutes). 200 POSTs in any 5-minute window
# (0.67/s sustained) is above anything interactive and below the slowest tool's idle polling.
BURST_REQUESTS = 200
BURST_WINDOW_MINUTES = 5
def _page_pattern(end: str) -> str:
    """A stem with a dynamic extension that is not one of BUSY_PAGES, then ``end`` (the field's end)."""
    alternatives = []
    for ext in DYNAMIC_EXTENSIONS:
        busy = [p[1:-len(ext) - 1] for p in BUSY_PAGES if p.endswith("." + ext)]
        alternatives.append(f"{not_one_of(busy)}\\.{ext}")
    return f"/(?:{'|'.join(alternatives)}){end}"


def _page_before(end: str) -> str:
    """The same pages written back from their extension (anchored on the literal ``.aspx,``, not on
    the ``,/`` that starts every path of HttpProxy's CSV: 0.12 s against 0.49 s per 300 MB)."""
    alternatives = []
    for ext in DYNAMIC_EXTENSIONS:
        busy = [p[:-len(ext) - 1] for p in BUSY_PAGES if p.endswith("." + ext)]
        alternatives.append((not_ending_in(busy, ' ,"\r\n') if busy else "") + f"\\.{ext}")
    return f"(?:{'|'.join(alternatives)}){end}"


def page_first_pattern(backwards: bool = True) -> str:
    """HttpProxy's CSV line with the page before the POST. Read back from the extension for
    Hyperscan; ``backwards=False``: the same lines in the forward form, which Rust's regex (the
    benchmark's ripgrep) runs faster (3.3 against 4.6 CPU s on the 2 GB bench corpus)."""
    page = _page_before('[,"]') if backwards else '[,"]' + _page_pattern('[,"]')
    return page + '.*[,"]post[,"\\r\\n]'


def _post_prefilter() -> tuple[str, ...]:
    """POSTs of such a page: IIS writes ``cs-method cs-uri-stem`` side by side (its field order is
    fixed); HttpProxy's CSV has Method after UrlStem, accepted in either order."""
    last = _page_pattern('(?:[ ,"?\\r\\n]|$)')
    # POST first: the page may be the very next field (``,POST,/x.aspx``) or any later one
    return (f" post {last}", page_first_pattern(), f"[,\"]post[,\"](?:.*[,\"])?{last}")


PAGE_SQL = "(" + " OR ".join(f"uri ILIKE '%.{ext}'" for ext in DYNAMIC_EXTENSIONS) + ")"
BUSY_SQL = "(" + ", ".join(f"'{p}'" for p in BUSY_PAGES) + ")"


class TunnelTraffic(SqlCheck):
    id = "webshell.tunnel_traffic"
    event_literals = ()
    title = "One client POSTing to one page hundreds of times in minutes (web-shell tunnel traffic)"
    severity = "high"
    description = (
        f"One client sent at least {BURST_REQUESTS} POST requests within {BURST_WINDOW_MINUTES} minutes to one "
        "page with server-side code (.aspx, .ashx, .asmx, .asp, .php, .jsp) that is not one of Exchange's "
        "busy endpoints (EWS, OWA's session handlers, the logon pages), wherever the page lives: how every "
        "HTTP tunnel (reGeorg, Neo-reGeorg, ABPTTS, pystinger; Tunna while data flows) polls its page while a "
        "connection is open (with POST; GET floods are crawlers and monitors). Counts are exact, per log "
        "source, over a sliding window. High confidence when at least 90% of the answers are 2xx (a working "
        "tunnel); low otherwise (a scanner or a dead shell)."
    )
    attack = ("T1090.001", "T1572", "T1505.003")
    references = (REGEORG, NEO_REGEORG, TUNNA)
    remediation = TUNNEL_REMEDIATION
    prefilter = _post_prefilter()
    # the POST-first CSV form serves no log whose header puts UrlStem before Method (HttpProxy's
    # own order: page-first then selects every such line); 0.09 ns/B of HttpProxy lines
    prefilter_scopes = {prefilter[2]: "method-may-precede-stem"}
    gate = f"source IN {WEB_SOURCES} AND upper(method) = 'POST' AND {PAGE_SQL} AND lower(uri) NOT IN {BUSY_SQL}"
    # Reading every column of the candidate rows costs ~4x counting them: count first, on four columns.
    enough = f"""
        SELECT 1 FROM events WHERE {gate} AND client_ip IS NOT NULL
        GROUP BY host, source, client_ip, lower(uri) HAVING count(*) >= {BURST_REQUESTS} LIMIT 1
    """
    sql = f"""
        WITH candidates AS (
            SELECT {EVENT_COLUMNS}, client_ip, method, uri, uri_query, status, "user", user_agent,
                   lower(uri) AS page
            FROM events
            WHERE {gate} AND ts IS NOT NULL AND client_ip IS NOT NULL
              AND NOT (lower(regexp_extract(uri, '[^/]+$')) IN (SELECT name FROM known_web_files)
                       AND regexp_matches(lower(uri), '{KNOWN_URL_HOME_RE}'))
        ),
        many AS (
            SELECT host, source, client_ip, page FROM candidates GROUP BY ALL HAVING count(*) >= {BURST_REQUESTS}
        ),
        bursts AS (
            SELECT c.*, count(*) OVER (
                       PARTITION BY c.host, c.source, c.client_ip, c.page ORDER BY c.ts
                       RANGE BETWEEN CURRENT ROW AND INTERVAL {BURST_WINDOW_MINUTES} MINUTE FOLLOWING) AS burst
            FROM candidates c SEMI JOIN many USING (host, source, client_ip, page)
        ),
        pairs AS (
            SELECT host, source, client_ip, page, max(burst) AS peak, count(*) AS total,
                   avg(CASE WHEN status BETWEEN 200 AND 299 THEN 1 ELSE 0 END) AS ok_share
            FROM bursts GROUP BY ALL HAVING max(burst) >= {BURST_REQUESTS}
        )
        SELECT {EVENT_COLUMNS}, concat_ws(' ', client_ip, page) AS key,
               left(concat_ws(' ', {HTTP_EXCERPT}, '[peak ' || peak || ' requests in {BURST_WINDOW_MINUTES} min, '
                              || total || ' in all]'), 400) AS excerpt,
               CASE WHEN ok_share >= 0.9 THEN 'high' ELSE 'low' END AS confidence,
               client_ip AS ioc_client_ip, user_agent AS ioc_user_agent, uri AS ioc_url_path
        FROM bursts JOIN pairs USING (host, source, client_ip, page)
        ORDER BY host, ts, source, path, line, record_id  -- window queries come back in any order
    """

    def run(self, con: duckdb.DuckDBPyConnection) -> Iterator[Hit]:
        if con.execute(self.enough).fetchone() is None:
            return
        yield from super().run(con)
