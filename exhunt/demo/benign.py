"""Benign background traffic shaped like a real on-premises server: users on OWA, phones on EAS,
Outlook on MAPI/EWS/Autodiscover, Managed Availability probes and internet scanners."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from random import Random

from exhunt.demo.traffic import BUILD, Request

USERS = [f"CORP\\{n}" for n in ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")]
CLIENTS = [f"10.10.{s}.{h}" for s in (2, 3, 4) for h in range(10, 60, 7)]
OUTLOOK_UA = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.13801; Pro)"
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/89.0 Safari/537.36"
)
PHONE_UA = "Apple-iPhone12C1/1805.114"
PROBE_UA = "AMProbe/Local/ClientAccess"
SCANNERS = [("192.0.2.10", "Mozilla/5.0 zgrab/0.x"), ("192.0.2.11", "masscan/1.3 (https://github.com/robertdavidgraham/masscan)"),
            ("198.51.100.200", "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)")]
OWA_VERSION = ".".join(BUILD[:3])


def _owa(rng: Random, ts: datetime) -> Request:
    user, ip = rng.choice(USERS), rng.choice(CLIENTS)
    stem, method, query = rng.choice([
        ("/owa/", "GET", ""), ("/owa/service.svc", "POST", "?action=GetItem&app=Mail"),
        ("/owa/service.svc", "POST", "?action=FindConversation&app=Mail"),
        (f"/owa/auth/{OWA_VERSION}/themes/resources/favicon.ico", "GET", ""),
        (f"/owa/{OWA_VERSION}/scripts/boot.worker.js", "GET", ""), ("/owa/auth.owa", "POST", ""),
        ("/owa/auth/logon.aspx", "GET", "?url=https%3a%2f%2fmail.corp.example%2fowa%2f"),
        ("/ecp/", "GET", ""),
        ("/ecp/DDI/DDIService.svc/GetList", "POST", "?schema=MailboxFolderPermission&msExchEcpCanary=x"),
    ])
    return Request(ts, ip, method, stem, "Owa" if stem.startswith("/owa") else "Ecp", 200, query, user,
                   BROWSER_UA, f"SMTP:{user.split(chr(92))[1]}@corp.example")


def _eas(rng: Random, ts: datetime) -> Request:
    user = rng.choice(USERS)
    cmd = rng.choice(["Sync", "Ping", "FolderSync", "Sync", "Ping"])
    query = f"?Cmd={cmd}&User={user.split(chr(92))[1]}&DeviceId=ApplF2LXK0{rng.randint(10, 99)}&DeviceType=iPhone"
    return Request(ts, f"172.16.{rng.randint(0, 9)}.{rng.randint(2, 250)}", "POST",
                   "/Microsoft-Server-ActiveSync/default.eas", "Eas", 200, query, user, PHONE_UA)


def _outlook(rng: Random, ts: datetime) -> Request:
    user, ip = rng.choice(USERS), rng.choice(CLIENTS)
    stem, protocol = rng.choice([("/mapi/emsmdb/", "Mapi"), ("/mapi/nspi/", "Mapi"), ("/EWS/Exchange.asmx", "Ews"),
                                 ("/autodiscover/autodiscover.xml", "Autodiscover"), ("/OAB/", "Oab")])
    query = "?mailboxId=a1b2c3d4@corp.example" if protocol == "Mapi" else ""
    return Request(ts, ip, "POST" if protocol != "Oab" else "GET", stem, protocol, 200, query, user, OUTLOOK_UA,
                   f"MBX:{user.split(chr(92))[1]}@corp.example")


def _probe(rng: Random, ts: datetime) -> Request:
    stem, protocol = rng.choice([("/owa/healthcheck.htm", "Owa"), ("/ecp/healthcheck.htm", "Ecp"),
                                 ("/EWS/healthcheck.htm", "Ews"), ("/mapi/healthcheck.htm", "Mapi"),
                                 ("/Microsoft-Server-ActiveSync/healthcheck.htm", "Eas")])
    return Request(ts, "127.0.0.1", "GET", stem, protocol, 200, "", "", PROBE_UA)


def _scanner(rng: Random, ts: datetime) -> Request:
    ip, ua = rng.choice(SCANNERS)
    stem, status = rng.choice([("/", 302), ("/.env", 404), ("/wp-login.php", 404), ("/owa/auth/logon.aspx", 200),
                               ("/ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application", 200),
                               ("/robots.txt", 404), ("/remote/login", 404)])
    anchor = "ServerVersion~Version 15.0 (Build 0.0)" if "exporttool" in stem else ""
    return Request(ts, ip, "GET", stem, "Ecp" if stem.startswith("/ecp") else ("Owa" if "/owa" in stem else ""),
                   status, "", "", ua, anchor)


MIX = ((_owa, 0.30), (_eas, 0.30), (_outlook, 0.25), (_probe, 0.12), (_scanner, 0.03))


def benign_requests(rng: Random, start: datetime, days: int, per_day: int) -> Iterator[Request]:
    """Requests in time order over ``days`` days, busier in working hours."""
    makers = [m for m, _ in MIX]
    weights = [w for _, w in MIX]
    for day in range(days):
        base = start + timedelta(days=day)
        offsets = sorted(rng.random() ** 0.8 * 86400 for _ in range(per_day))
        for offset in offsets:
            maker = rng.choices(makers, weights)[0]
            yield maker(rng, base + timedelta(seconds=offset, microseconds=rng.randint(0, 999) * 1000))
