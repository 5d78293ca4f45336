"""Writes the demo collection: Exchange/IIS logs (CRLF, real headers), web roots, droppings."""

from __future__ import annotations

import io
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random

from exhunt.demo import attack
from exhunt.demo.attack import ATTACKER_IP, EXCHANGE
from exhunt.demo.benign import benign_requests
from exhunt.demo.formats import ECP_SERVER_FIELDS, HTTPPROXY_FIELDS, OABGEN_FIELDS, exchange_log, iis_log
from exhunt.demo.traffic import Request

__all__ = ["ATTACKER_IP", "DemoSpec", "generate"]

VERSION = "15.01.2176.002"
START = datetime(2021, 3, 1, tzinfo=UTC)
ATTACK_AT = datetime(2021, 3, 3, 2, 10, 1, tzinfo=UTC)
LEGIT_PAGES = {
    f"{EXCHANGE}/FrontEnd/HttpProxy/owa/auth/{name}": name
    for name in ("logon.aspx", "logoff.aspx", "errorFE.aspx", "expiredpassword.aspx", "frowny.aspx",
                 "OutlookCN.aspx", "RedirSuiteServiceProxy.aspx", "signout.aspx")
} | {f"{EXCHANGE}/FrontEnd/HttpProxy/ecp/auth/TimeoutLogout.aspx": "TimeoutLogout.aspx"}


@dataclass(frozen=True)
class DemoSpec:
    seed: int = 2021
    days: int = 3
    per_day: int = 4000
    scale: float = 1.0
    attack: bool = True


def _write(root: Path, rel: str, data: bytes, when: datetime) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (when.timestamp(), when.timestamp()))


def _legit_page(name: str) -> bytes:
    return (f'<%@ Page Language="C#" AutoEventWireup="true" Inherits="Microsoft.Exchange.HttpProxy.{name[:-5]}" %>\r\n'
            "<!DOCTYPE html>\r\n<html><head><title>Outlook</title></head><body>\r\n"
            '<form action="/owa/auth.owa" method="POST"></form>\r\n</body></html>\r\n').encode()


def generate(root: Path, spec: DemoSpec = DemoSpec()) -> dict[str, int]:
    """Write the collection under ``root`` (created); returns counts of files and log lines."""
    rng = Random(spec.seed)
    root.mkdir(parents=True, exist_ok=True)
    requests = list(benign_requests(rng, START, spec.days, int(spec.per_day * spec.scale)))
    if spec.attack:
        requests.extend(attack.attack_requests(ATTACK_AT))
    requests.sort(key=lambda r: r.ts)
    files = 0
    lines = 0
    by_day: dict[str, list[Request]] = defaultdict(list)
    for request in requests:
        by_day[f"{request.ts:%y%m%d}"].append(request)
    for day, day_requests in sorted(by_day.items()):
        first = day_requests[0].ts
        _write(root, f"C/inetpub/logs/LogFiles/W3SVC1/u_ex{day}.log",
               iis_log(first, (r.iis(rng) for r in day_requests)), day_requests[-1].ts)
        files += 1
        lines += len(day_requests)
        per_protocol: dict[str, list[Request]] = defaultdict(list)
        for r in day_requests:
            if r.protocol:
                per_protocol[r.protocol].append(r)
        for protocol, rows in sorted(per_protocol.items()):
            rel = f"{EXCHANGE}/Logging/HttpProxy/{protocol}/HttpProxy_20{day}00-1.LOG"
            _write(root, rel, exchange_log(VERSION, "HttpProxy Logs", HTTPPROXY_FIELDS, rows[0].ts,
                                           (r.httpproxy(rng) for r in rows)), rows[-1].ts)
            files += 1
            lines += len(rows)
    for rel, name in LEGIT_PAGES.items():
        _write(root, rel, _legit_page(name), START - timedelta(days=200))
        files += 1
    _write(root, "C/inetpub/wwwroot/aspnet_client/system_web/4_0_30319/.keep", b"", START - timedelta(days=200))
    _write(root, "C/ProgramData/Microsoft/Exchange/settings.xml", b"<settings/>\r\n", START)
    files += 2
    if spec.attack:
        files += _plant(root, rng)
        lines += 2
    return {"files": files, "lines": lines}


def _plant(root: Path, rng: Random) -> int:
    t0 = ATTACK_AT
    ecp = attack.ecp_server_rows(t0)
    _write(root, f"{EXCHANGE}/Logging/ECP/Server/ECPServer{t0:%Y%m%d}-1.LOG",
           exchange_log("15.0.0.0", "ECP Server Log", ECP_SERVER_FIELDS, t0, ecp), t0)
    oab = attack.oabgen_rows(t0)
    _write(root, f"{EXCHANGE}/Logging/OABGeneratorLog/OABGenerator{t0:%Y%m%d}-1.LOG",
           exchange_log(VERSION, "OABGenerator Log", OABGEN_FIELDS, t0, oab), t0)
    _write(root, attack.SHELL_PATH, attack.shell_page(), t0 + timedelta(seconds=20))
    _write(root, attack.OAB_EXPORT_PATH, attack.oab_export_page(), t0 + timedelta(seconds=15))
    dump = b"MDMP\x93\xa7\x00\x00" + rng.randbytes(64 * 1024)
    _write(root, attack.LSASS_DUMP_PATH, dump, t0 + timedelta(minutes=25))
    _write(root, attack.STAGED_ARCHIVE_PATH, _staged_7z(rng), t0 + timedelta(minutes=40))
    return 6


def _staged_7z(rng: Random) -> bytes:
    """A real 7z archive (as HAFNIUM staged them), renamed to .dat: found by its magic bytes."""
    import py7zr

    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        archive.writestr(b"!BDN" + rng.randbytes(16 * 1024), "alice.pst")
        archive.writestr(b"!BDN" + rng.randbytes(16 * 1024), "bob.pst")
    return buffer.getvalue()
