"""A loopback fake of Exchange (and of things that are not Exchange) for the probe's tests and bench.

One raw asyncio HTTP/1.1 server (keep-alive, optional TLS with a ``trustme`` certificate) whose
behaviour is a *profile*, chosen per listening port or per virtual host (``Host: <profile>-<n>.exhunt.test``):

  vuln2016   Exchange 2016 CU19 (15.1.2176.2): ProxyLogon cookie honoured, ProxyShell path open, no mitigation
  patched2019  Exchange 2019 CU12 Feb23SU (15.2.1118.25): all fixed, no mitigation (not needed)
  mitigated  Exchange 2019 CU12 Aug22SU (15.2.1118.12): ProxyNotShell unpatched, URL-rewrite rule aborts
  cuonly     Exchange 2016 CU19 behind a proxy that strips X-OWA-Version; export tool blocked: CU-only path
  iis        a plain IIS 10 site: 404 everywhere
  tarpit     accepts the connection, never answers
  malformed  answers with a broken status line and headers
  hugebody   Exchange 2019 whose logon page body never ends

The server counts open connections (``open_now``/``peak_open``), bytes streamed and SNI names seen.
It binds loopback only. Written raw (not aiohttp.web) so it can misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

# ("respond", status, reason, headers, body) | ("abort",) | ("tarpit",) | ("raw", bytes) | ("stream", headers)
Action = tuple

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


def _exchange(build: str, *, ssrf: bool, proxyshell: bool, mitigated: bool, owa_header: bool = True,
              exporttool: bool = True) -> Callable[[str, dict[str, str]], Action]:
    cu = build.rsplit(".", 1)[0]
    base = [("Server", "Microsoft-IIS/10.0"), ("X-FEServer", "EXCH01"), ("X-Powered-By", "ASP.NET")]

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
                        base + [("X-CalculatedBETarget", "localhost"), ("X-BEServer", "EXCH01")], b"")
            return ("respond", 404, "Not Found", base, b"")
        if path.startswith("/autodiscover/autodiscover.json"):
            if proxyshell and "/mapi/nspi" in decoded and "email=autodiscover/autodiscover.json" in decoded:
                return ("respond", 200, "OK", base + [("Content-Type", "text/html")],
                        b"<html><body>Exchange MAPI/HTTP Connector Endpoint<br/>"
                        b"Version: 15.1.2176.2</body></html>")
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


PROFILES: dict[str, Callable[[str, dict[str, str]], Action]] = {
    "vuln2016": _exchange("15.1.2176.2", ssrf=True, proxyshell=True, mitigated=False),
    "patched2019": _exchange("15.2.1118.25", ssrf=False, proxyshell=False, mitigated=False),
    "mitigated": _exchange("15.2.1118.12", ssrf=False, proxyshell=False, mitigated=True),
    "cuonly": _exchange("15.1.2176.2", ssrf=False, proxyshell=False, mitigated=False, owa_header=False,
                        exporttool=False),
    "iis": _iis,
    "tarpit": lambda p, h: ("tarpit",),
    "malformed": lambda p, h: ("raw", b"HTTP/1.1 2OO OK\r\nX-OWA-Version 15.1.2176.2\r\n"
                                      b"\x00\x01: \xff\r\n\r\n"),
    "hugebody": _huge,
}

ALL_PROFILES = list(PROFILES)


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


