"""One request seen twice, as Exchange logs it: an IIS W3SVC1 line and an HttpProxy line."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from random import Random
from urllib.parse import quote

from exhunt.demo.formats import exchange_iso

SERVER = "EXCH01"
FQDN = "exch01.corp.example"
SERVER_IP = "10.10.1.20"
BUILD = ("15", "1", "2176", "2")  # Exchange 2016 CU19, before the March 2021 security update


@dataclass
class Request:
    ts: datetime
    client_ip: str
    method: str
    stem: str
    protocol: str  # HttpProxy protocol folder, or "" when the front end serves it itself
    status: int = 200
    query: str = ""
    user: str = ""
    user_agent: str = ""
    anchor_mailbox: str = ""
    backend_status: int | None = None

    def iis(self, rng: Random) -> dict[str, str]:
        return {
            "date": f"{self.ts:%Y-%m-%d}", "time": f"{self.ts:%H:%M:%S}", "s-ip": SERVER_IP,
            "cs-method": self.method, "cs-uri-stem": quote(self.stem, safe="/.-_~"),
            "cs-uri-query": self.query.lstrip("?"), "s-port": "443",
            "cs-username": self.user, "c-ip": self.client_ip,
            "cs(User-Agent)": self.user_agent.replace(" ", "+"), "cs(Referer)": "",
            "sc-status": str(self.status), "sc-substatus": "0", "sc-win32-status": "0",
            "time-taken": str(rng.randint(3, 900)),
        }

    def httpproxy(self, rng: Random) -> dict[str, str]:
        return {
            "DateTime": exchange_iso(self.ts), "RequestId": str(uuid.UUID(int=rng.getrandbits(128))),
            "MajorVersion": BUILD[0], "MinorVersion": BUILD[1], "BuildVersion": BUILD[2],
            "RevisionVersion": BUILD[3], "Protocol": self.protocol, "UrlHost": FQDN, "UrlStem": self.stem,
            "AuthenticationType": "Negotiate" if self.user else "", "IsAuthenticated": str(bool(self.user)).lower(),
            "AuthenticatedUser": self.user, "AnchorMailbox": self.anchor_mailbox, "UserAgent": self.user_agent,
            "ClientIpAddress": self.client_ip, "ServerHostName": SERVER, "HttpStatus": str(self.status),
            "BackEndStatus": str(self.backend_status or self.status), "Method": self.method,
            "ProxyAction": "Proxy", "TargetServer": FQDN, "TargetServerVersion": "15.01.2176.002",
            "RoutingType": "IntraForest", "UrlQuery": self.query,
            "TotalRequestTime": str(rng.randint(3, 900)),
            "GenericInfo": f"BeginRequest={exchange_iso(self.ts)};",
        }
