"""A loopback fake of Exchange (and of things that are not Exchange) for the probe's tests and bench.

One raw asyncio HTTP/1.1 server (keep-alive, optional TLS with a ``trustme`` certificate) whose
behaviour is a *profile*, chosen per listening port or per virtual host (``Host: <profile>-<n>.exhunt.test``):

  vuln2016   Exchange 2016 CU19 (15.1.2176.2): ProxyLogon cookie honoured, ProxyShell path open, no mitigation
  ps2016     Exchange 2016 CU19 Mar21SU (15.1.2176.9) behind a proxy that strips X-OWA-Version: ProxyLogon
             fixed, ProxyShell open (the back end's /mapi/nspi/ page, Version line included)
  pstitle, psbody, psnover   the same server answering ProxyShell with only the page title, only the
             page body, or the page without its Version line
  pscut, psvercut   the same server whose ProxyShell answer breaks off before the page text, or inside
             the Version line (Content-Length promises more, then the socket closes)
  ps302      Exchange 2019 CU12 Feb23SU (patched) redirecting the path-confusion request (HTTP 302)
  patched2019  Exchange 2019 CU12 Feb23SU (15.2.1118.25): all fixed, no mitigation (not needed)
  mitigated  Exchange 2019 CU12 Aug22SU (15.2.1118.12): ProxyNotShell unpatched, URL-rewrite rule aborts
  cuonly     Exchange 2016 CU19 behind a proxy that strips X-OWA-Version; export tool blocked: CU-only path
  iis        a plain IIS 10 site: 404 everywhere
  tarpit     accepts the connection, never answers
  malformed  answers with a broken status line and headers
  hugebody   Exchange 2019 whose logon page body never ends
  waf403     vuln2016 behind a WAF answering 403 to the ProxyLogon cookie and Autodiscover '@' paths
  echo404    a Node.js (Express) app whose 404 page repeats the requested path
  stripproxy vuln2016 behind a proxy that strips every X-* header
  gzipproxy  vuln2016 behind a proxy that gzips every body, asked or not
  trailers   a chunked answer whose trailer lines never end
  ratelimit  Exchange 2019 CU12 Aug22SU without the mitigation, behind a limiter that aborts every request
             after the third since the logon page (IIS Dynamic IP Restrictions' "abort request")

``EXPECTED`` says what the probe must report for each profile (the tests and the bench check it).

The server counts open connections (``open_now``/``peak_open``), bytes streamed and SNI names seen.
It binds loopback only. Written raw (not aiohttp.web) so it can misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

# ("respond", status, reason, headers, body) | ("short", status, reason, headers, body, promised length)
# | ("abort",) | ("tarpit",) | ("raw", bytes) | ("stream", headers)
Action = tuple

# What a ProxyLogon-vulnerable front end answers when it cannot authenticate to the cookie's back end
# (the public nmap check looks for NegotiateSecurityContext in it).
SSRF_ERROR = b"NegotiateSecurityContext failed with for host 'localhost' with status 'TargetUnknown'"
HUGE_CHUNK = b"<!-- filler -->" * 4096  # ~60 KiB
STREAM_LIMIT = 1 << 30  # "endless" body: 1 GiB, far beyond any cap, so a client that reads it all is caught


def _logon_page(cu_path: str) -> bytes:
    return (f'<!DOCTYPE html><html><head><title>Outlook</title>'
            f'<link rel="shortcut icon" href="/owa/auth/{cu_path}/themes/resources/favicon.ico">'
            f'<link rel="stylesheet" href="/owa/auth/{cu_path}/themes/resources/logon.css"></head>'
            f'<body><form action="/owa/auth.owa" method="POST"></form></body></html>').encode()


def _manifest(build: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><asmv1:assembly manifestVersion="1.0" '
            f'xmlns:asmv1="urn:schemas-microsoft-com:asm.v1"><assemblyIdentity '
            f'name="microsoft.exchange.ediscovery.exporttool.application" version="{build}" '
            f'publicKeyToken="b03f5f7f11d50a3a" language="neutral" processorArchitecture="msil" />'
            f'<dependency><dependentAssembly>'
            f'<assemblyIdentity name="Microsoft.Exchange.EDiscovery.ExportTool" '
            f'version="1.2.3.4" /></dependentAssembly></dependency></asmv1:assembly>').encode()


MAPI_TITLE = "Exchange MAPI/HTTP Connectivity Endpoint"


def mapi_page(version: str | None, *, title: bool = True, body: bool = True) -> bytes:
    """The back end's /mapi/nspi/ information page in the shape Exchange's handler writes it (CRLF
    lines, the title, then one paragraph with the Version and Vdir Path lines, then who is asking)."""
    head = f"<html>\r\n<head>\r\n<title>{MAPI_TITLE}</title>\r\n</head>\r\n" if title else "<html>\r\n"
    version_line = f"Version: {version}<br>" if version else ""
    lines = f"<p>{MAPI_TITLE}<br><br>{version_line}Vdir Path: /mapi/nspi/<br><br></p>" if body else ""
    who = "<p><b>User:</b> NT AUTHORITY\\SYSTEM<br><b>UPN:</b> <br><b>SID:</b> S-1-5-18<br></p>"
    return f"{head}<body>\r\n{lines}{who}\r\n</body>\r\n</html>".encode()


def _proxyshell_answers(build: str) -> dict[str, Action]:
    """What a front end sends back for the path-confusion request, one entry per replayed shape."""
    html = [("Content-Type", "text/html"), ("X-CalculatedBETarget", "exch01.corp.local")]
    page = mapi_page(build)
    cut_at = page.index(b"Version: ") + len("Version: 15.1.21")
    return {
        "page": ("respond", 200, "OK", html, page),
        "title": ("respond", 200, "OK", html, mapi_page(build, body=False)),
        "body": ("respond", 200, "OK", html, mapi_page(build, title=False)),
        "nover": ("respond", 200, "OK", html, mapi_page(None)),
        "cut": ("short", 200, "OK", html, page[:40], len(page)),
        "vercut": ("short", 200, "OK", html, page[:cut_at], len(page)),
        "302": ("respond", 302, "Found", [("Location", "/owa/auth/errorFE.aspx?httpCode=500")], b""),
        "400": ("respond", 400, "Bad Request", [("Content-Type", "application/json")],
                b'{"ErrorCode":"InvalidRequest"}'),
    }


def _exchange(build: str, *, ssrf: bool, proxyshell: str, mitigated: bool, owa_header: bool = True,
              exporttool: bool = True) -> Callable[[str, dict[str, str]], Action]:
    """An Exchange front end; ``proxyshell`` names its answer to the path-confusion request."""
    cu = build.rsplit(".", 1)[0]
    base = [("Server", "Microsoft-IIS/10.0"), ("X-FEServer", "EXCH01"), ("X-Powered-By", "ASP.NET")]
    ps_answer = _proxyshell_answers(build)[proxyshell]

    def handle(path: str, headers: dict[str, str]) -> Action:
        decoded = unquote(path).lower()
        if mitigated and "autodiscover" in decoded and "powershell" in decoded:
            return ("abort",)
        if path.startswith("/owa/auth/logon.aspx"):
            extra = [("X-OWA-Version", build)] if owa_header else []
            return ("respond", 200, "OK", base + extra + [("Content-Type", "text/html")], _logon_page(cu))
        if path.startswith("/ecp/Current/exporttool/"):
            if exporttool:
                return ("respond", 200, "OK", base + [("Content-Type", "application/x-ms-application")],
                        _manifest(build))
            return ("respond", 404, "Not Found", base, b"")
        if path.startswith("/owa/auth/x.js"):
            if ssrf and "X-BEResource=localhost" in headers.get("cookie", ""):
                return ("respond", 500, "Internal Server Error",
                        base + [("X-CalculatedBETarget", "localhost"), ("X-BEServer", "EXCH01")],
                        SSRF_ERROR)
            return ("respond", 404, "Not Found", base, b"")
        if path.startswith("/autodiscover/autodiscover.json"):
            if "/mapi/nspi" in decoded and "email=autodiscover/autodiscover.json" in decoded:
                return (ps_answer[0], ps_answer[1], ps_answer[2], base + ps_answer[3], *ps_answer[4:])
            return ("respond", 400, "Bad Request", base + [("Content-Type", "application/json")],
                    b'{"ErrorCode":"InvalidRequest"}')
        return ("respond", 404, "Not Found", base, b"")

    return handle


def _iis(path: str, headers: dict[str, str]) -> Action:
    base = [("Server", "Microsoft-IIS/10.0"), ("X-Powered-By", "ASP.NET"), ("Content-Type", "text/html")]
    if path == "/":
        return ("respond", 200, "OK", base, b"<html><title>IIS Windows Server</title></html>")
    return ("respond", 404, "Not Found", base, b"<html>404 - File or directory not found.</html>")


def _huge(path: str, headers: dict[str, str]) -> Action:
    if path.startswith("/owa/auth/logon.aspx"):
        return ("stream", [("Server", "Microsoft-IIS/10.0"), ("X-OWA-Version", "15.2.1118.25"),
                           ("X-FEServer", "EXCH02"), ("Content-Type", "text/html")])
    return PROFILES["patched2019"](path, headers)


def _waf(inner: Callable[[str, dict[str, str]], Action]) -> Callable[[str, dict[str, str]], Action]:
    def handle(path: str, headers: dict[str, str]) -> Action:
        decoded = unquote(path).lower()
        if "x-beresource" in headers.get("cookie", "").lower() or ("autodiscover.json" in decoded and "@" in decoded):
            return ("respond", 403, "Forbidden", [("Server", "Microsoft-IIS/10.0"), ("Content-Type", "text/html")],
                    b"<html><body>403 - Forbidden: Access is denied.</body></html>")
        return inner(path, headers)
    return handle


def _rewritten(inner: Callable[[str, dict[str, str]], Action], headers_of: Callable[[list], list],
               body_of: Callable[[bytes], bytes] = lambda b: b) -> Callable[[str, dict[str, str]], Action]:
    """``inner``'s answers as a proxy in front of it rewrites them."""
    def handle(path: str, headers: dict[str, str]) -> Action:
        action = inner(path, headers)
        if action[0] != "respond":
            return action
        _, status, reason, head, body = action
        return ("respond", status, reason, headers_of(head), body_of(body))
    return handle


def _rate_limited(inner: Callable[[str, dict[str, str]], Action],
                  allowed: int = 3) -> Callable[[str, dict[str, str]], Action]:
    """``inner`` behind a limiter that aborts every request after ``allowed`` since the last logon page
    (each probe of the host starts with it, so each sees the same limit)."""
    seen = [0]

    def handle(path: str, headers: dict[str, str]) -> Action:
        seen[0] = 1 if path.startswith("/owa/auth/logon.aspx") else seen[0] + 1
        return ("abort",) if seen[0] > allowed else inner(path, headers)
    return handle


def _echo404(path: str, headers: dict[str, str]) -> Action:
    return ("respond", 404, "Not Found", [("X-Powered-By", "Express"), ("Content-Type", "text/html")],
            f"<!DOCTYPE html><html><body><pre>Cannot GET {unquote(path)}</pre></body></html>".encode())


PROFILES: dict[str, Callable[[str, dict[str, str]], Action]] = {
    "vuln2016": _exchange("15.1.2176.2", ssrf=True, proxyshell="page", mitigated=False),
    "patched2019": _exchange("15.2.1118.25", ssrf=False, proxyshell="400", mitigated=False),
    "mitigated": _exchange("15.2.1118.12", ssrf=False, proxyshell="400", mitigated=True),
    "cuonly": _exchange("15.1.2176.2", ssrf=False, proxyshell="400", mitigated=False, owa_header=False,
                        exporttool=False),
    **{name: _exchange("15.1.2176.9", ssrf=False, proxyshell=answer, mitigated=False, owa_header=False)
       for name, answer in (("ps2016", "page"), ("pstitle", "title"), ("psbody", "body"), ("psnover", "nover"),
                            ("pscut", "cut"), ("psvercut", "vercut"))},
    "ps302": _exchange("15.2.1118.25", ssrf=False, proxyshell="302", mitigated=False),
    "iis": _iis,
    "tarpit": lambda p, h: ("tarpit",),
    "malformed": lambda p, h: ("raw", b"HTTP/1.1 2OO OK\r\nX-OWA-Version 15.1.2176.2\r\n"
                                      b"\x00\x01: \xff\r\n\r\n"),
    "hugebody": _huge,
    "waf403": _waf(_exchange("15.1.2176.2", ssrf=True, proxyshell="page", mitigated=False)),
    "echo404": _echo404,
    "stripproxy": _rewritten(_exchange("15.1.2176.2", ssrf=True, proxyshell="page", mitigated=False),
                             lambda head: [(k, v) for k, v in head if not k.lower().startswith("x-")]),
    "gzipproxy": _rewritten(_exchange("15.1.2176.2", ssrf=True, proxyshell="page", mitigated=False),
                            lambda head: [*head, ("Content-Encoding", "gzip")], gzip.compress),
    "trailers": lambda p, h: ("trailers",),
    "ratelimit": _rate_limited(_exchange("15.2.1118.12", ssrf=False, proxyshell="400", mitigated=False)),
}

ALL_PROFILES = list(PROFILES)

_V, _N, _U = "vulnerable", "not vulnerable", "unknown"
_MAPI, _EXPORT = "back-end MAPI page (ProxyShell answer)", "ECP export tool manifest"
EXPECTED: dict[str, tuple[bool, str | None, str | None, str | None, str, str, str]] = {
    # profile: (looks like Exchange, build, confidence, build source, proxylogon, proxyshell, proxynotshell)
    "vuln2016": (True, "15.1.2176.2", "high", "X-OWA-Version header", _V, _V, _V),
    "patched2019": (True, "15.2.1118.25", "high", "X-OWA-Version header", _N, _N, _N),
    "mitigated": (True, "15.2.1118.12", "high", "X-OWA-Version header", _N, _N, _N),
    "cuonly": (True, "15.1.2176", "low", "OWA resource path", _N, _N, _V),
    "iis": (False, None, None, None, _N, _N, _N),
    "tarpit": (False, None, None, None, _U, _U, _U),
    "malformed": (False, None, None, None, _U, _U, _U),
    "hugebody": (True, "15.2.1118.25", "high", "X-OWA-Version header", _N, _N, _N),
    "ps2016": (True, "15.1.2176.9", "high", _MAPI, _N, _V, _V),
    "pstitle": (True, "15.1.2176.9", "high", _EXPORT, _N, _V, _V),
    "psbody": (True, "15.1.2176.9", "high", _MAPI, _N, _V, _V),
    "psnover": (True, "15.1.2176.9", "high", _EXPORT, _N, _V, _V),
    "pscut": (True, "15.1.2176.9", "high", _EXPORT, _N, _U, _V),
    "psvercut": (True, "15.1.2176.9", "high", _EXPORT, _N, _V, _V),
    "ps302": (True, "15.2.1118.25", "high", "X-OWA-Version header", _N, _N, _N),
    # a block, a stripped header or an unreadable body decides nothing (each had read as "not vulnerable")
    "waf403": (True, "15.1.2176.2", "high", "X-OWA-Version header", _U, _U, _U),
    "echo404": (False, None, None, None, _N, _N, _N),  # its echo of the probe's paths had counted as Exchange
    "stripproxy": (True, "15.1.2176.2", "high", _MAPI, _U, _V, _V),
    "gzipproxy": (True, "15.1.2176.2", "high", "X-OWA-Version header", _V, _U, _V),
    "trailers": (False, None, None, None, _U, _U, _U),  # endless trailer lines had taken 3 GB
    # its limiter drops the trigger and everything after it: no rule to tell from the drop (had read as one)
    "ratelimit": (True, "15.2.1118.12", "high", "X-OWA-Version header", _N, _N, _U),
}


@dataclass
class FixtureServer:
    default_profile: str = "vuln2016"
    ssl_context: ssl.SSLContext | None = None
    port_profiles: dict[int, str] = field(default_factory=dict)
    open_now: int = 0
    peak_open: int = 0
    connections: int = 0
    requests: int = 0
    streamed: int = 0
    sni: list[str] = field(default_factory=list)
    _servers: list[asyncio.base_events.Server] = field(default_factory=list)
    _tasks: set[asyncio.Task] = field(default_factory=set)

    async def start(self, host: str = "127.0.0.1", profiles: list[str] | None = None) -> list[int]:
        """One listening socket per entry of ``profiles`` (default: one with the default profile)."""
        if self.ssl_context is not None:
            self.ssl_context.sni_callback = lambda obj, name, ctx: self.sni.append(name or "") and None
        ports = []
        for profile in profiles or [self.default_profile]:
            server = await asyncio.start_server(self._client, host, 0, ssl=self.ssl_context, backlog=1024)
            port = server.sockets[0].getsockname()[1]
            self.port_profiles[port] = profile
            self._servers.append(server)
            ports.append(port)
        return ports

    async def close(self) -> None:
        for s in self._servers:
            s.close()
        for t in list(self._tasks):
            t.cancel()
        for s in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.wait_closed(), 2)

    def _profile(self, port: int, headers: dict[str, str]) -> str:
        label = headers.get("host", "").split(".", 1)[0].split(":", 1)[0]
        name = label.split("-", 1)[0]
        return name if name in PROFILES else self.port_profiles.get(port, self.default_profile)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        self.open_now += 1
        self.peak_open = max(self.peak_open, self.open_now)
        port = writer.get_extra_info("sockname")[1]
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                _method, path, _version = (lines[0].split(" ") + ["", "", ""])[:3]
                headers = {}
                for line in lines[1:]:
                    k, sep, v = line.partition(":")
                    if sep:
                        headers[k.strip().lower()] = v.strip()
                self.requests += 1
                action = PROFILES[self._profile(port, headers)](path, headers)
                if not await self._act(action, reader, writer):
                    return
        except (ConnectionError, asyncio.CancelledError, ssl.SSLError):
            return
        finally:
            self.open_now -= 1
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _act(self, action: Action, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        kind = action[0]
        if kind == "respond":
            _, status, reason, headers, body = action
            head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
            head += f"Content-Length: {len(body)}\r\n\r\n"
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
            return True
        if kind == "short":  # promise more body than is sent, then close: an answer that breaks off
            _, status, reason, headers, body, promised = action
            head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
            writer.write(f"{head}Content-Length: {promised}\r\n\r\n".encode("latin-1") + body)
            await writer.drain()
            return False
        if kind == "abort":
            writer.transport.abort()
            return False
        if kind == "tarpit":
            await asyncio.sleep(3600)
            return False
        if kind == "raw":
            writer.write(action[1])
            await writer.drain()
            return False
        if kind == "trailers":  # a chunked body that ends, then trailer fields that never do
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n")
            line = b"X-Trailer-Field: " + b"a" * 4000 + b"\r\n"
            sent = 0
            while not writer.is_closing() and sent < STREAM_LIMIT:
                writer.write(line)
                sent += len(line)
                self.streamed += len(line)
                await writer.drain()
                await asyncio.sleep(0)
            return False
        # stream: an endless body, stopped only by the client going away
        head = "HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in action[1])
        head += "Connection: close\r\n\r\n"
        writer.write(head.encode("latin-1"))
        sent = 0
        while not writer.is_closing() and not reader.at_eof() and sent < STREAM_LIMIT:
            writer.write(HUGE_CHUNK)
            sent += len(HUGE_CHUNK)
            self.streamed += len(HUGE_CHUNK)
            await writer.drain()
            await asyncio.sleep(0)  # drain() does not yield on a dead TLS transport: let connection_lost run
        return False


@dataclass
class Running:
    server: FixtureServer
    ports: dict[str, int]  # profile -> port
    loop: asyncio.AbstractEventLoop
    ca_file: Path | None = None


def start_fixture(profiles: list[str], ssl_ctx: ssl.SSLContext | None = None,
                  host: str = "127.0.0.1") -> tuple[Running, threading.Thread]:
    """Run a FixtureServer in a daemon thread with its own loop; one port per profile."""
    loop = asyncio.new_event_loop()
    server = FixtureServer(ssl_context=ssl_ctx)
    ready = threading.Event()
    box: dict[str, list[int]] = {}

    def main() -> None:
        asyncio.set_event_loop(loop)
        box["ports"] = loop.run_until_complete(server.start(host, profiles))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10)
    return Running(server, dict(zip(profiles, box["ports"], strict=True)), loop), thread


def stop_fixture(running: Running, thread: threading.Thread) -> None:
    asyncio.run_coroutine_threadsafe(running.server.close(), running.loop).result(10)
    running.loop.call_soon_threadsafe(running.loop.stop)
    thread.join(10)


