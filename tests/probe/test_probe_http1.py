"""The probe's HTTP/1.1 client against scripted loopback servers: framing, keep-alive, caps, errors,
redirects left alone, and the proxy's two forms (absolute URL for http, CONNECT + TLS for https)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trustme

from exhunt.probe.http1 import Connection, HttpFailure, Response, system_lookup
from exhunt.probe.wire import CONNECT, DISCONNECTED, MALFORMED, PROXY

# One scripted answer per request: the bytes to write, then whether to close the connection.
Script = Callable[[int, bytes], tuple[bytes, bool]]


class Scripted:
    """A loopback server answering request N (counted over all connections) with ``script(N, head)``."""

    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script, self.tls = script, tls
        self.heads: list[bytes] = []
        self.connections = 0
        self.closed_by_client = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self.tls)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.closed_by_client += 1
                    return
                self.heads.append(head)
                answer, close = self.script(len(self.heads), head)
                writer.write(answer)
                await writer.drain()
                if close:
                    return
        except (ConnectionError, ssl.SSLError):
            self.closed_by_client += 1
        finally:
            writer.close()

    async def stop(self) -> None:
        self.server.close()


def run(script: Script, body: Callable[[Connection, Scripted], Awaitable[Any]], **conn: Any) -> Any:
    async def main() -> Any:
        server = Scripted(script)
        port = await server.start()
        c = Connection("http", "127.0.0.1", port, lookup=system_lookup, tls=None, **conn)
        try:
            return await body(c, server)
        finally:
            await c.close()
            await server.stop()

    return asyncio.run(main())


async def get(c: Connection, path: str = "/", cap: int = 1024, method: str = "GET",
              host: str = "127.0.0.1") -> Response:
    return await c.request(method, path, host, (), cap)


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def test_chunked_body_and_keep_alive() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"

    async def body(c: Connection, s: Scripted) -> None:
        first = await get(c)
        second = await get(c, "/two")
        assert (first.status, first.body, first.truncated, first.incomplete) == (200, b"hello world", False, False)
        assert ("X-A", "1") in first.headers and second.body == b"hello world"
        assert c.opened == 1 and s.connections == 1  # the second request reused the connection
        assert s.heads[1].startswith(b"GET /two HTTP/1.1\r\nHost: 127.0.0.1\r\n")

    run(lambda n, h: (chunked, False), body)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\n\r\nuntil the end",  # framed by the connection's end
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 13\r\n\r\nuntil the end",
    b"HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nuntil the end",  # HTTP/1.0 without keep-alive
])
def test_connection_not_reused_when_the_server_ends_it(answer: bytes) -> None:
    async def body(c: Connection, s: Scripted) -> None:
        for _ in range(2):
            r = await get(c)
            assert (r.status, r.body, r.incomplete) == (200, b"until the end", False)
        assert c.opened == 2 and s.connections == 2

    run(lambda n, h: (answer, True), body)


def test_body_capped_and_connection_dropped_not_drained() -> None:
    big = b"x" * (4 * 1024 * 1024)

    async def body(c: Connection, s: Scripted) -> None:
        r = await get(c, cap=1000)
        assert (len(r.body), r.truncated, r.incomplete) == (1000, True, False)
        again = await get(c, cap=1000)  # a fresh connection: the first was dropped mid-body
        assert again.truncated and c.opened == 2

    run(lambda n, h: (ok(big), False), body)


def test_exactly_the_cap_is_not_truncated() -> None:
    async def body(c: Connection, s: Scripted) -> None:
        r = await get(c, cap=10)
        assert (r.body, r.truncated) == (b"0123456789", False)

    run(lambda n, h: (ok(b"0123456789"), False), body)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n<html>partial",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n<html>partial",
])
def test_a_body_that_breaks_off_keeps_what_came(answer: bytes) -> None:
    async def body(c: Connection, s: Scripted) -> None:
        r = await get(c)
        assert (r.status, r.body, r.incomplete) == (200, b"<html>partial", True)

    run(lambda n, h: (answer, True), body)


def test_interim_answer_skipped_and_redirect_not_followed() -> None:
    answer = (b"HTTP/1.1 100 Continue\r\n\r\n"
              b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/\r\nContent-Length: 0\r\n\r\n")

    async def body(c: Connection, s: Scripted) -> None:
        r = await get(c)
        assert (r.status, r.reason, r.body) == (302, "Found", b"")
        assert ("Location", "http://elsewhere.invalid/") in r.headers and len(s.heads) == 1

    run(lambda n, h: (answer, False), body)


def test_no_body_answers() -> None:
    async def body(c: Connection, s: Scripted) -> None:
        assert (await get(c)).status == 204
        head = await get(c, method="HEAD")  # Content-Length announced, no body follows
        assert (head.status, head.body) == (200, b"")
        assert c.opened == 1

    def script(n: int, h: bytes) -> tuple[bytes, bool]:
        if n == 1:
            return b"HTTP/1.1 204 No Content\r\n\r\n", False
        return b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", False

    run(script, body)


@pytest.mark.parametrize(("answer", "kind"), [
    (b"HTTP/1.1 2OO OK\r\n\r\n", MALFORMED),
    (b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 200_000 + b"\r\n\r\n", MALFORMED),  # a head without end
    (b"HTTP/1.1 200 OK\r\n" + b"X-Many: 1\r\n" * 20_000 + b"\r\n", MALFORMED),
    (b"SSH-2.0-OpenSSH_9.6\r\n", MALFORMED),
    (b"", DISCONNECTED),
])
def test_failures_have_their_kind(answer: bytes, kind: str) -> None:
    async def body(c: Connection, s: Scripted) -> None:
        with pytest.raises(HttpFailure) as caught:
            await get(c)
        assert caught.value.kind == kind and caught.value.message

    run(lambda n, h: (answer, True), body)


def test_refused_is_a_connect_failure() -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        c = Connection("http", "127.0.0.1", port, lookup=system_lookup, tls=None)
        with pytest.raises(HttpFailure) as caught:
            await get(c)
        assert caught.value.kind == CONNECT

    asyncio.run(main())


def test_timeout_drops_the_connection() -> None:
    async def body(c: Connection, s: Scripted) -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await get(c)
        assert c.reader is not None and not c.reader.reusable

    run(lambda n, h: (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", False), body)


def test_http_target_through_proxy_uses_the_absolute_url() -> None:
    async def main() -> None:
        proxy = Scripted(lambda n, h: (ok(b"via proxy"), False))
        port = await proxy.start()
        c = Connection("http", "mail.example.org", 8080, lookup=system_lookup, tls=None,
                       proxy=f"http://127.0.0.1:{port}")
        r = await get(c, "/owa/auth/logon.aspx", host="mail.example.org:8080")
        await c.close()
        await proxy.stop()
        assert r.body == b"via proxy"
        assert proxy.heads[0].startswith(b"GET http://mail.example.org:8080/owa/auth/logon.aspx HTTP/1.1\r\n"
                                         b"Host: mail.example.org:8080\r\n")

    asyncio.run(main())


def test_https_target_through_proxy_tunnels_with_connect(tmp_path: Any) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mail.example.org").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def main() -> None:
        origin = Scripted(lambda n, h: (ok(b"inside the tunnel"), False), tls=server_ctx)
        origin_port = await origin.start()
        seen: list[bytes] = []

        async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(await reader.readuntil(b"\r\n\r\n"))
            up_r, up_w = await asyncio.open_connection("127.0.0.1", origin_port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
                dst.close()

            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer), return_exceptions=True)

        proxy = await asyncio.start_server(tunnel, "127.0.0.1", 0)
        proxy_port = proxy.sockets[0].getsockname()[1]
        c = Connection("https", "mail.example.org", 443, lookup=system_lookup, tls=client_ctx,
                       proxy=f"http://127.0.0.1:{proxy_port}")
        first = await get(c, "/a")
        second = await get(c, "/b")
        await c.close()
        proxy.close()
        await origin.stop()
        assert first.body == second.body == b"inside the tunnel" and c.opened == 1
        assert seen == [b"CONNECT mail.example.org:443 HTTP/1.1\r\nHost: mail.example.org:443\r\n\r\n"]
        assert [h.split(b"\r\n")[0] for h in origin.heads] == [b"GET /a HTTP/1.1", b"GET /b HTTP/1.1"]

    asyncio.run(main())


def test_proxy_refusing_connect_is_a_proxy_failure() -> None:
    async def main() -> None:
        proxy = Scripted(lambda n, h: (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", False))
        port = await proxy.start()
        c = Connection("https", "mail.example.org", 443, lookup=system_lookup, tls=ssl.create_default_context(),
                       proxy=f"http://127.0.0.1:{port}")
        with pytest.raises(HttpFailure) as caught:
            await get(c)
        await proxy.stop()
        assert caught.value.kind == PROXY and "403" in caught.value.message

    asyncio.run(main())


def test_a_dead_first_address_does_not_spend_the_budget() -> None:
    """Two addresses for a name, the first one never completing the handshake (a listener whose
    backlog is full drops the SYN): the second is tried 0.25 s later and wins (RFC 8305)."""
    import socket
    import time

    stuck = socket.socket()
    try:
        stuck.bind(("127.0.0.2", 0))
    except OSError as exc:
        stuck.close()
        pytest.skip(f"no second loopback address: {exc}")
    stuck.listen(0)
    port = stuck.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the accept queue: later SYNs go unanswered
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.2", port))
        fillers.append(f)

    async def lookup(host: str) -> list[str]:
        return ["127.0.0.2", "127.0.0.1"]

    async def main() -> float:
        server = await asyncio.start_server(_answer_once, "127.0.0.1", port)
        c = Connection("http", "dual.example.org", port, lookup=lookup, tls=None)
        started = time.monotonic()
        try:
            async with asyncio.timeout(5):
                r = await get(c)
        finally:
            await c.close()
            server.close()
        assert r.body == b"second address"
        return time.monotonic() - started

    try:
        assert asyncio.run(main()) < 3
    finally:
        for f in [stuck, *fillers]:
            f.close()


async def _answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(ok(b"second address"))
    await writer.drain()
    writer.close()


def test_addresses_interleaved_by_family() -> None:
    from exhunt.probe.http1 import _interleave

    assert _interleave(["::1", "::2", "10.0.0.1"]) == ["::1", "10.0.0.1", "::2"]
    assert _interleave(["10.0.0.1", "10.0.0.2", "::1"]) == ["10.0.0.1", "::1", "10.0.0.2"]
    assert _interleave(["10.0.0.1"]) == ["10.0.0.1"]
