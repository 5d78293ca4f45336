"""Probe many targets concurrently with bounded sockets, rate, time and body reads.

The HTTP client is ``http1.Connection`` (an asyncio protocol and llhttp), not aiohttp's
``ClientSession``: measured on 1,000 loopback hosts, a sweep takes ~0.4x the CPU with it
(http1.py says why and what it covers). httpx was never an option: its pool collapses under many
distinct hosts (6.6-41 s for 1,000 hosts x 4 requests, DESIGN.md).

Limits, each enforced here and nowhere else:

* concurrency: ``concurrency`` workers pull targets from one iterator; each worker owns one
  connection per target, closed when the target is done, so open sockets never exceed
  ``concurrency`` (no idle keep-alive sockets pile up);
* rate: one token bucket (GCRA) shared by all workers spaces every request, retries included;
* time: ``timeout`` is the whole budget for one host; every request gets what is left of it,
  and an outer ``asyncio.timeout`` guards the host as a whole;
* retries: connection failures and resets are retried with exponential back-off and jitter,
  inside the host budget; timeouts, TLS failures and malformed answers are not retried; nothing is
  ever resent behind the caller's back (a dropped request counts as an attempt);
* bodies: at most ``RequestSpec.body_cap`` bytes are kept, then the connection is dropped;
  ``Accept-Encoding: identity`` and no decompression, so a compressed bomb cannot expand in memory;
  redirects are never followed;
* DNS: one lookup per name for the whole run (``dns.SharedDnsCache``), none for IP literals;
* TLS: one handshake per host (its requests share the keep-alive connection; asyncio and uvloop
  offer no client session resumption for a new connection); SNI is the target's host name (also
  with ``--resolve``); ``--insecure`` skips verification, ``--ca-bundle`` trusts a private CA;
  ``--proxy`` sends everything through an HTTP proxy (CONNECT for https targets).
"""

from __future__ import annotations

import asyncio
import importlib
import math
import os
import random
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from exhunt import __version__
from exhunt.errors import UsageError
from exhunt.findings.model import HostBuild
from exhunt.probe import dns, http1
from exhunt.probe import fingerprint as fpmod
from exhunt.probe.checks import CHECKS, ProbeCheck
from exhunt.probe.http1 import Connection, HttpFailure
from exhunt.probe.targets import Target
from exhunt.probe.wire import (
    CONNECT,
    DISCONNECTED,
    MALFORMED,
    PROXY,
    TIMEOUT,
    TLS,
    UNKNOWN,
    Outcome,
    Reply,
    RequestSpec,
)
from exhunt.utctime import iso_utc

USER_AGENT = f"exhunt-probe/{__version__} (non-intrusive Exchange exposure check)"
REQUEST_HEADERS = (("User-Agent", USER_AGENT), ("Accept", "*/*"), ("Accept-Encoding", "identity"))
GUARD_SECONDS = 1.0  # the outer per-host guard fires this long after the budget, should requests overrun
# A first request failing like this means the host cannot be assessed: skip its other requests.
UNREACHABLE = (TIMEOUT, CONNECT, TLS, PROXY, MALFORMED, DISCONNECTED)


@dataclass
class ProbeOptions:
    concurrency: int = 50
    rate: float = 0.0  # requests per second over all hosts; 0 = unlimited
    timeout: float = 10.0  # seconds for everything sent to one host
    retries: int = 2
    backoff: float = 0.25  # seconds, doubled per retry, with jitter
    insecure: bool = False
    ca_bundle: Path | None = None
    proxy: str | None = None
    resolve: dict[str, str] = field(default_factory=dict)  # host name -> address (curl --resolve)
    checks: tuple[ProbeCheck, ...] = CHECKS

    def validate(self) -> None:
        if self.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if not (math.isfinite(self.rate) and math.isfinite(self.timeout)):
            raise UsageError("--rate and --timeout must be finite numbers")
        if self.rate < 0 or self.timeout <= 0 or self.retries < 0:
            raise UsageError("--rate must be >= 0, --timeout > 0 and --retries >= 0")
        if self.proxy is not None:
            proxy = urlsplit(self.proxy)
            if proxy.scheme not in ("http", "https") or not proxy.hostname:
                raise UsageError(f"--proxy {self.proxy!r}: give an http:// or https:// proxy URL with a host")
            if self.resolve:  # the proxy resolves the name itself: the pinned address would be ignored
                raise UsageError("--resolve cannot be used with --proxy (the proxy looks the name up itself)")
        if self.insecure and self.ca_bundle:
            raise UsageError("--insecure and --ca-bundle exclude each other")
        if self.ca_bundle and not self.ca_bundle.is_file():
            raise UsageError(f"--ca-bundle {self.ca_bundle} is not a file")


class TokenBucket:
    """Generic cell rate algorithm: ``rate`` tokens/s with a burst of ``burst``; no lock needed
    because the bookkeeping runs without awaiting."""

    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.tolerance = self.interval * max(0.0, (burst if burst is not None else 1.0) - 1.0)
        self.clock = clock
        self.tat = 0.0  # theoretical arrival time of the next request

    def reserve(self) -> float:
        """Take a token; returns how long to wait before using it."""
        if self.interval == 0:
            return 0.0
        now = self.clock()
        tat = max(self.tat, now)
        self.tat = tat + self.interval
        return max(0.0, tat - now - self.tolerance)


@dataclass
class HostBudget:
    """One host's ``--timeout``: a deadline plus the outer guard, both pushed back by the time its
    requests wait for the shared rate (a capped rate must not turn reachable hosts into timeouts)."""

    deadline: float
    guard: asyncio.Timeout | None = None

    def extend(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self.deadline += seconds
        if self.guard is not None and (when := self.guard.when()) is not None:
            self.guard.reschedule(when + seconds)


def static_lookup(mapping: dict[str, str], fallback: http1.Lookup) -> http1.Lookup:
    """``--resolve NAME=ADDR``: connect to ADDR but keep NAME for Host and SNI; others via ``fallback``."""
    pinned = {k.lower(): v for k, v in mapping.items()}

    async def lookup(host: str) -> list[str]:
        addr = pinned.get(host.lower())
        return [addr] if addr is not None else await fallback(host)

    return lookup


def ssl_context(options: ProbeOptions) -> ssl.SSLContext:
    """Verified against the system store, ``--ca-bundle`` or (``--insecure``) not at all. Built once
    per run and only when an https target comes: loading the system CA store costs ~25-50 ms."""
    if options.insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=str(options.ca_bundle) if options.ca_bundle else None)


class Prober:
    """Holds what all hosts share (TLS context, resolver, rate bucket); one ``probe`` per target."""

    def __init__(self, options: ProbeOptions) -> None:
        options.validate()
        self.options = options
        self._tls: ssl.SSLContext | None = None
        self.bucket = TokenBucket(options.rate, burst=max(1.0, min(options.rate, options.concurrency)))
        self.dns = dns.SharedDnsCache(http1.system_lookup)
        self.lookup = static_lookup(options.resolve, self.dns.resolve) if options.resolve else self.dns.resolve
        # A fleet runs few distinct builds: map and convert each fingerprint once per run.
        self._builds: dict[fpmod.Fingerprint, tuple[HostBuild | None, dict[str, Any] | None]] = {}

    async def __aenter__(self) -> Prober:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    @property
    def tls(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl_context(self.options)
        return self._tls

    def _connection(self, target: Target) -> Connection:
        return Connection(target.scheme, target.host, target.port, lookup=self.lookup,
                          tls=self.tls if target.scheme == "https" else None, proxy=self.options.proxy)

    async def send(self, conn: Connection, target: Target, spec: RequestSpec, budget: HostBudget) -> Reply:
        retries = self.options.retries if spec.retries is None else spec.retries
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            reply = await self._attempt(conn, target, spec, budget, attempt, started)
            if reply.error not in (CONNECT, DISCONNECTED, PROXY) or attempt > retries:
                return reply
            backoff = self.options.backoff if spec.backoff is None else spec.backoff
            pause = backoff * 2 ** (attempt - 1) * (0.5 + random.random())
            if time.monotonic() + pause >= budget.deadline:
                return reply
            await asyncio.sleep(pause)

    async def _attempt(self, conn: Connection, target: Target, spec: RequestSpec, budget: HostBudget,
                       attempt: int, started: float) -> Reply:
        def fail(kind: str, message: str) -> Reply:
            return Reply(spec, error=kind, message=message, attempts=attempt,
                         elapsed=time.monotonic() - started)

        wait = self.bucket.reserve()
        budget.extend(wait)  # before the sleep: the guard must not fire while the host waits its turn
        if wait > 0:
            await asyncio.sleep(wait)
        remaining = budget.deadline - time.monotonic()
        if remaining <= 0:
            return fail(TIMEOUT, f"host time budget of {self.options.timeout:g}s spent")
        try:
            async with asyncio.timeout(remaining):
                resp = await conn.request(spec.method, target.base + spec.path, target.netloc,
                                          REQUEST_HEADERS + spec.headers, spec.body_cap)
        except TimeoutError:
            return fail(TIMEOUT, f"no complete answer within the {self.options.timeout:g}s host budget")
        except HttpFailure as exc:
            return fail(exc.kind, _short(exc.message))
        return Reply(spec, resp.status, resp.reason, resp.headers, resp.body, resp.truncated, attempts=attempt,
                     elapsed=time.monotonic() - started, incomplete=resp.incomplete)

    async def probe(self, target: Target) -> dict[str, Any]:
        started = datetime.now(UTC)
        t0 = time.monotonic()
        budget = HostBudget(t0 + self.options.timeout)
        try:
            async with asyncio.timeout(self.options.timeout + GUARD_SECONDS) as guard:
                budget.guard = guard
                result = await self._probe(target, budget)
        except TimeoutError:
            result = _unreachable(target, self.options.checks, f"{TIMEOUT}: host guard of "
                                  f"{self.options.timeout + GUARD_SECONDS:g}s fired", ())
        result["started"] = iso_utc(started)
        result["elapsed"] = round(time.monotonic() - t0, 4)
        return result

    async def _probe(self, target: Target, budget: HostBudget) -> dict[str, Any]:
        """The logon page first (it decides whether the host can be assessed), then each check's
        requests on the same keep-alive connection, an answer serving two checks where one can
        (``ProbeCheck.stand_in``), and the export-tool manifest only when no exact build came yet."""
        conn = self._connection(target)
        try:
            logon = await self.send(conn, target, fpmod.LOGON, budget)
            if logon.error in UNREACHABLE:
                return _unreachable(target, self.options.checks, logon.describe(), (logon,))
            sent: dict[str, Reply] = {}
            answers: list[tuple[ProbeCheck, tuple[Reply, ...]]] = []
            for check in self.options.checks:
                replies = []
                for spec in check.requests:
                    reply = check.stand_in(spec, sent)
                    if reply is None:
                        reply = sent[spec.name] = await self.send(conn, target, spec, budget)
                    replies.append(reply)
                extra = check.follow_up(tuple(replies))
                if extra is not None:
                    replies.append(await self.send(conn, target, extra, budget))
                answers.append((check, tuple(replies)))
            fp_replies = [logon]
            fp = fpmod.from_header(logon) or fpmod.from_mapi_page(sent.values())
            if fp is None:
                export = await self.send(conn, target, fpmod.EXPORTTOOL, budget)
                fp_replies.append(export)
                fp = fpmod.best((fpmod.from_exporttool(export), fpmod.from_logon_paths(logon)))
        finally:
            await conn.close()
        build, build_dict = self._build(fp)
        exchange, signals = fpmod.looks_like_exchange([*fp_replies, *sent.values()])
        outcomes = [check.classify(replies, build, exchange) for check, replies in answers]
        return _result(target, True, None, exchange, signals, fp, build_dict, outcomes, fp_replies)

    def _build(self, fp: fpmod.Fingerprint) -> tuple[HostBuild | None, dict[str, Any] | None]:
        known = self._builds.get(fp)
        if known is None:
            build = fpmod.host_build(fp)
            known = self._builds[fp] = (build, asdict(build) if build is not None else None)
        return known


def _short(exc: str, limit: int = 200) -> str:
    """One line, at most ``limit`` characters: parser errors can span several lines."""
    text = " ".join(exc.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _unreachable(target: Target, checks: Iterable[ProbeCheck], why: str, replies: tuple[Reply, ...]
                 ) -> dict[str, Any]:
    outcomes = [Outcome(c.id, UNKNOWN, f"no usable HTTP answer from the host ({why})", ()) for c in checks]
    return _result(target, False, why, False, (), fpmod.Fingerprint(None, note="host unreachable"), None,
                   outcomes, list(replies))


def _result(target: Target, reachable: bool, error: str | None, exchange: bool, signals: tuple[str, ...],
            fp: fpmod.Fingerprint, build: dict[str, Any] | None, outcomes: list[Outcome],
            fp_replies: list[Reply]) -> dict[str, Any]:
    host = target.netloc
    return {
        "target": target.origin,
        "reachable": reachable,
        "error": error,
        "exchange": exchange,
        "signals": list(signals),
        "fingerprint": {**fp.to_dict(), "replies": [r.to_dict(host) for r in fp_replies]},
        "build": build,
        "checks": [{"check": o.check, "verdict": o.verdict, "reason": o.reason,
                    "replies": [r.to_dict(host) for r in o.replies]} for o in outcomes],
    }


async def probe_all(targets: Iterable[Target], options: ProbeOptions,
                    on_result: Callable[[dict[str, Any]], None]) -> None:
    """Probe every target; ``on_result`` is called with each result as soon as it is complete."""
    async with Prober(options) as prober:
        it: Iterator[Target] = iter(targets)

        async def worker() -> None:
            for target in it:
                on_result(await prober.probe(target))

        pending = targets if isinstance(targets, list | tuple) else None
        slots = min(options.concurrency, len(pending)) if pending is not None else options.concurrency
        workers = [asyncio.create_task(worker()) for _ in range(max(1, slots))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop (winloop on Windows) when installed, else asyncio's own loop. The probe's CPU is mostly
    event-loop and socket work, which their C transports do in a fraction of the time.
    ``EXHUNT_PROBE_LOOP=asyncio`` keeps asyncio's loop (to compare, or to rule the loop out)."""
    if os.environ.get("EXHUNT_PROBE_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        module = importlib.import_module("winloop" if sys.platform == "win32" else "uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = module.new_event_loop
    return factory


def run(targets: Iterable[Target], options: ProbeOptions,
        on_result: Callable[[dict[str, Any]], None]) -> None:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(probe_all(targets, options, on_result))
