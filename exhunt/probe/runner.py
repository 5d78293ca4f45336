"""Probe many targets concurrently with bounded sockets, rate, time and body reads.

Why aiohttp and not httpx (which the issue named): measured on this project's machine, 1,000
loopback hosts x 4 requests took ~1 s with aiohttp at concurrency 50-200, and 6.6 s (at 50) to 41 s
(at 200) with ``httpx.AsyncClient``, whose connection pool collapses under many distinct hosts.
The fleet probe's whole point is throughput, so aiohttp it is (see DESIGN.md).

Limits, each enforced here and nowhere else:

* concurrency: ``concurrency`` workers pull targets from one iterator; each worker owns one
  ``ClientSession`` per target whose connector allows one socket and is closed when the target is
  done, so open sockets never exceed ``concurrency`` (no idle keep-alive sockets pile up);
* rate: one token bucket (GCRA) shared by all workers spaces every request, retries included;
* time: ``timeout`` is the whole budget for one host; every request gets what is left of it,
  and an outer ``asyncio.timeout`` guards the host as a whole;
* retries: connection failures and resets are retried with exponential back-off and jitter,
  inside the host budget; timeouts, TLS failures and malformed answers are not retried;
* bodies: at most ``RequestSpec.body_cap`` bytes are read (aiohttp's reader pauses the socket past
  its buffer), then the connection is dropped; ``Accept-Encoding: identity`` and no automatic
  decompression, so a compressed bomb cannot expand in memory; redirects are never followed;
* DNS: one lookup per name for the whole run (``dns.SharedDnsCache`` under every host's connector);
* TLS: one handshake per host (its requests share the keep-alive connection; asyncio and uvloop
  offer no client session resumption for a new connection); SNI is the target's host name (also
  with ``--resolve``); ``--insecure`` skips verification, ``--ca-bundle`` trusts a private CA;
  ``--proxy`` sends everything through an HTTP proxy.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import os
import random
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from exhunt import __version__
from exhunt.errors import UsageError
from exhunt.findings.model import HostBuild
from exhunt.probe import fingerprint as fpmod
from exhunt.probe.checks import CHECKS, ProbeCheck
from exhunt.probe.dns import SharedDnsCache
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
READ_CHUNK = 16 * 1024
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
            proxy = URL(self.proxy)
            if proxy.scheme not in ("http", "https") or not proxy.host:
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


class StaticResolver(AbstractResolver):
    """``--resolve NAME=ADDR``: connect to ADDR but keep NAME for Host and SNI; others via DNS."""

    def __init__(self, mapping: dict[str, str], fallback: AbstractResolver) -> None:
        self.mapping = {k.lower(): v for k, v in mapping.items()}
        self.fallback = fallback

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        addr = self.mapping.get(host.lower())
        if addr is None:
            return await self.fallback.resolve(host, port, family)
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        return [ResolveResult(hostname=host, host=addr, port=port, family=fam, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        await self.fallback.close()


def ssl_context(options: ProbeOptions) -> ssl.SSLContext | bool:
    """A context trusting ``--ca-bundle``; otherwise aiohttp's own verified (True) or unverified
    (False, ``--insecure``) context, built once at its import: building another one reads and parses
    the system CA store again (~50 ms, a tenth of a fleet's start-up)."""
    if options.ca_bundle is None:
        return not options.insecure
    return ssl.create_default_context(cafile=str(options.ca_bundle))


async def read_capped(stream: aiohttp.StreamReader, cap: int) -> tuple[bytes, bool, bool]:
    """At most ``cap`` bytes of body, whether more was left unread, and whether the body broke off
    (the bytes that did arrive are kept: a marker in them still counts, its absence proves nothing)."""
    chunks: list[bytes] = []
    size = 0
    while size < cap:
        try:
            chunk = await stream.read(min(READ_CHUNK, cap - size))
        except aiohttp.ClientPayloadError:
            return b"".join(chunks), True, True
        if not chunk:
            return b"".join(chunks), False, False
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), not stream.at_eof(), False


class Prober:
    """Holds what all hosts share (TLS context, resolver, rate bucket); one ``probe`` per target."""

    def __init__(self, options: ProbeOptions) -> None:
        options.validate()
        self.options = options
        self.ssl = ssl_context(options)
        self.bucket = TokenBucket(options.rate, burst=max(1.0, min(options.rate, options.concurrency)))
        self.resolver: AbstractResolver | None = None
        # A fleet runs few distinct builds: map and convert each fingerprint once per run.
        self._builds: dict[fpmod.Fingerprint, tuple[HostBuild | None, dict[str, Any] | None]] = {}

    async def __aenter__(self) -> Prober:
        fallback = SharedDnsCache(aiohttp.ThreadedResolver())
        self.resolver = StaticResolver(self.options.resolve, fallback) if self.options.resolve else fallback
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.resolver is not None:
            await self.resolver.close()

    def _session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=1, ssl=self.ssl, resolver=self.resolver, ttl_dns_cache=None)
        session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            timeout=aiohttp.ClientTimeout(total=None), trust_env=False,
        )
        # aiohttp silently resends an idempotent request once, without back-off, when the server drops
        # the connection. ``send`` owns retries (counted, backed off, within the host budget), so
        # that hidden resend doubled every dropped request (the ProxyNotShell trigger on a
        # mitigated server went out 4 times for "2 attempts"). aiohttp's own test client turns it off
        # the same way.
        session._retry_connection = False
        return session

    async def send(self, session: aiohttp.ClientSession, target: Target, spec: RequestSpec,
                   budget: HostBudget) -> Reply:
        retries = self.options.retries if spec.retries is None else spec.retries
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            reply = await self._attempt(session, target, spec, budget, attempt, started)
            if reply.error not in (CONNECT, DISCONNECTED, PROXY) or attempt > retries:
                return reply
            pause = self.options.backoff * 2 ** (attempt - 1) * (0.5 + random.random())
            if time.monotonic() + pause >= budget.deadline:
                return reply
            await asyncio.sleep(pause)

    async def _attempt(self, session: aiohttp.ClientSession, target: Target, spec: RequestSpec,
                       budget: HostBudget, attempt: int, started: float) -> Reply:
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
                async with session.request(spec.method, URL(target.url(spec.path), encoded=True),
                                           headers=dict(spec.headers), allow_redirects=False,
                                           proxy=self.options.proxy) as resp:
                    body, truncated, incomplete = await read_capped(resp.content, spec.body_cap)
                    if truncated:
                        resp.close()  # drop the socket: never drain an oversized body
                    headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers)
                    return Reply(spec, resp.status, resp.reason or "", headers, body, truncated,
                                 attempts=attempt, elapsed=time.monotonic() - started, incomplete=incomplete)
        except TimeoutError:
            return fail(TIMEOUT, f"no complete answer within the {self.options.timeout:g}s host budget")
        except aiohttp.ClientProxyConnectionError as exc:
            return fail(PROXY, str(exc))
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            return fail(TLS, _short(exc))
        except aiohttp.ClientConnectorError as exc:
            return fail(CONNECT, _short(exc))
        except aiohttp.ServerDisconnectedError as exc:
            return fail(DISCONNECTED, _short(exc) or "server closed the connection")
        except aiohttp.ClientResponseError as exc:
            return fail(MALFORMED, _short(exc))
        except aiohttp.ClientOSError as exc:
            return fail(DISCONNECTED, _short(exc))
        except aiohttp.ClientError as exc:  # any other protocol-level failure: report, never crash a sweep
            return fail(MALFORMED, f"{type(exc).__name__}: {_short(exc)}")

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
        async with self._session() as session:
            logon = await self.send(session, target, fpmod.LOGON, budget)
            if logon.error in UNREACHABLE:
                return _unreachable(target, self.options.checks, logon.describe(), (logon,))
            sent: dict[str, Reply] = {}
            answers: list[tuple[ProbeCheck, tuple[Reply, ...]]] = []
            for check in self.options.checks:
                replies = []
                for spec in check.requests:
                    reply = check.stand_in(spec, sent)
                    if reply is None:
                        reply = sent[spec.name] = await self.send(session, target, spec, budget)
                    replies.append(reply)
                answers.append((check, tuple(replies)))
            fp_replies = [logon]
            fp = fpmod.from_header(logon) or fpmod.from_mapi_page(sent.values())
            if fp is None:
                export = await self.send(session, target, fpmod.EXPORTTOOL, budget)
                fp_replies.append(export)
                fp = fpmod.best((fpmod.from_exporttool(export), fpmod.from_logon_paths(logon)))
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


def _short(exc: BaseException, limit: int = 200) -> str:
    """One line: aiohttp parser errors span several lines and repeat the URL."""
    text = getattr(exc, "message", None) if isinstance(exc, aiohttp.ClientResponseError) else None
    text = " ".join(str(text or exc).split()) or type(exc).__name__
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
