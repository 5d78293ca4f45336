"""Benchmark corpus: N GB of realistic Exchange/IIS logs for M hosts, with planted ProxyLogon chains.

``python bench/corpus.py OUT [--gb 2] [--hosts 4] [--quick]`` (``--quick``: 0.2 GB). Built from the
demo's pieces (exhunt.demo): the same benign traffic mix (OWA, EAS, Outlook over MAPI/EWS/
Autodiscover/OAB, Managed Availability probes, internet scanners), the same real header formats and
CRLF endings. Per host and day it writes IIS W3SVC1 (front end, :443) and W3SVC2 (back end, :444,
the proxied requests), HttpProxy per protocol, ECP Server and OABGenerator logs, plus the legitimate
owa/auth pages. The first and the last host carry the demo's whole attack chain (logs, web shells,
lsass dump, staged 7z) on 2021-03-03, so every benchmark run can assert that all of it is found.

Hosts are generated in parallel (one process each, up to the core count); a finished corpus is
kept (``.complete`` marker) and reused by later runs with the same size and host count.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from random import Random

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exhunt.demo import attack  # noqa: E402
from exhunt.demo.attack import EXCHANGE  # noqa: E402
from exhunt.demo.benign import benign_requests  # noqa: E402
from exhunt.demo.formats import (  # noqa: E402
    ECP_SERVER_FIELDS,
    HTTPPROXY_FIELDS,
    OABGEN_FIELDS,
    exchange_iso,
    exchange_log,
    iis_log,
)
from exhunt.demo.generator import ATTACK_AT, LEGIT_PAGES, START, VERSION, _legit_page, _plant, _write  # noqa: E402
from exhunt.demo.traffic import Request  # noqa: E402

BYTES_PER_REQUEST = 800  # W3SVC1 + W3SVC2 + HttpProxy bytes of one request, measured on this mix
MIN_DAYS = 4  # the attack is on day 3


def host_names(hosts: int) -> list[str]:
    return [f"EXCH{n:02d}" for n in range(1, hosts + 1)]


def attacked(hosts: int) -> list[str]:
    names = host_names(hosts)
    return sorted({names[0], names[-1]})


def _backend(request: Request, rng: Random) -> dict[str, str]:
    row = request.iis(rng)
    row["s-port"] = "444"
    row["cs(User-Agent)"] = request.user_agent.replace(" ", "+")
    return row


def _ecp_rows(rng: Random, day_requests: list[Request]) -> list[dict[str, str]]:
    rows = []
    for r in day_requests[:: max(1, len(day_requests) // 40)]:
        if r.protocol == "Ecp" and r.user:
            data = (f"S:TIME={rng.randint(5, 400)};S:SID=S-1-5-21-1004;S:CMD=Get-MailboxFolderPermission"
                    f".Identity='{r.user}';S:REQID=;S:URL=/ecp/DDI/DDIService.svc/GetList;S:RS=0;"
                    "S:BLD=15.1.2176.2")
            rows.append({"TimeStamp": exchange_iso(r.ts), "ServerName": "EXCH01", "EventId": "ECP.Request",
                         "EventData": data})
    return rows


def _oab_rows(day_requests: list[Request]) -> list[dict[str, str]]:
    ts = exchange_iso(day_requests[0].ts)
    return [{"DateTime": ts, "ThreadId": "12", "Level": "Info", "Organization": "",
             "Message": "OABGenerator assistant: generation of OAB 'Default Offline Address Book' completed"}]


def write_host(root: Path, seed: int, days: int, per_day: int, plant: bool) -> int:
    """One host's collection under ``root``; returns bytes written."""
    rng = Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for day in range(days):
        requests = list(benign_requests(rng, START + timedelta(days=day), 1, per_day))
        if plant and (START + timedelta(days=day)).date() == ATTACK_AT.date():
            requests.extend(attack.attack_requests(ATTACK_AT))
            requests.sort(key=lambda r: r.ts)
        tag = f"{requests[0].ts:%y%m%d}"
        first, last = requests[0].ts, requests[-1].ts
        _write(root, f"C/inetpub/logs/LogFiles/W3SVC1/u_ex{tag}.log", iis_log(first, (r.iis(rng) for r in requests)),
               last)
        proxied = [r for r in requests if r.protocol]
        _write(root, f"C/inetpub/logs/LogFiles/W3SVC2/u_ex{tag}.log",
               iis_log(first, (_backend(r, rng) for r in proxied)), last)
        per_protocol: dict[str, list[Request]] = defaultdict(list)
        for r in proxied:
            per_protocol[r.protocol].append(r)
        for protocol, rows in sorted(per_protocol.items()):
            rel = f"{EXCHANGE}/Logging/HttpProxy/{protocol}/HttpProxy_20{tag}00-1.LOG"
            _write(root, rel, exchange_log(VERSION, "HttpProxy Logs", HTTPPROXY_FIELDS, rows[0].ts,
                                           (r.httpproxy(rng) for r in rows)), rows[-1].ts)
        if not (plant and first.date() == ATTACK_AT.date()):  # the attack day's logs come from _plant
            _write(root, f"{EXCHANGE}/Logging/ECP/Server/ECPServer20{tag}-1.LOG",
                   exchange_log("15.0.0.0", "ECP Server Log", ECP_SERVER_FIELDS, first, _ecp_rows(rng, requests)),
                   last)
            _write(root, f"{EXCHANGE}/Logging/OABGeneratorLog/OABGenerator20{tag}-1.LOG",
                   exchange_log(VERSION, "OABGenerator Log", OABGEN_FIELDS, first, _oab_rows(requests)), last)
    for rel, name in LEGIT_PAGES.items():
        _write(root, rel, _legit_page(name), START - timedelta(days=200))
    if plant:
        _plant(root, rng)
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def generate(out: Path, gb: float, hosts: int, jobs: int | None = None) -> Path:
    """The corpus folder (one sub-folder per host), generated unless already complete."""
    target = out / f"scale-{gb:g}gb-{hosts}h"
    marker = target / ".complete"
    if marker.exists():
        return target
    if target.exists():
        shutil.rmtree(target)
    per_host = gb * (1 << 30) / hosts
    requests = max(1000, int(per_host / BYTES_PER_REQUEST))
    days = max(MIN_DAYS, min(60, requests // 20_000))
    per_day = requests // days
    plant = set(attacked(hosts))
    with ProcessPoolExecutor(min(hosts, os.cpu_count() or 1)) as pool:
        sizes = list(pool.map(write_host, [target / h for h in host_names(hosts)],
                              [1000 + i for i in range(hosts)], [days] * hosts, [per_day] * hosts,
                              [h in plant for h in host_names(hosts)]))
    marker.write_text(f"{sum(sizes)} bytes, {hosts} hosts, {days} days x {per_day} requests\n")
    return target


def corpus_bytes(target: Path) -> int:
    return sum(p.stat().st_size for p in target.rglob("*") if p.is_file() and p.name != ".complete")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=ROOT / "bench-out")
    parser.add_argument("--gb", type=float, default=2.0)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="0.2 GB")
    args = parser.parse_args()
    target = generate(args.out, 0.2 if args.quick else args.gb, args.hosts)
    print(f"{target}: {corpus_bytes(target) / 1e6:,.0f} MB, attacks planted on {', '.join(attacked(args.hosts))}")


if __name__ == "__main__":
    main()
