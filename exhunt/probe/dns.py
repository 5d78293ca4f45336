"""One DNS answer per name for a whole probe run.

Each host gets its own aiohttp connector (so its sockets close with it), and a connector's DNS cache
dies with it. Targets that share a name (``mail.example.org`` on 443 and 80, or listed twice with
different paths) would each ask the resolver again; this cache sits under every connector so a name
is looked up once per run, and concurrent lookups of one name wait for the same answer. Failures
are not kept: a retry asks again.
"""

from __future__ import annotations

import asyncio
import socket

from aiohttp.abc import AbstractResolver, ResolveResult


class SharedDnsCache(AbstractResolver):
    def __init__(self, inner: AbstractResolver) -> None:
        self.inner = inner
        self.lookups = 0  # questions passed to ``inner`` (for tests and the curious)
        self._answers: dict[tuple[str, int], asyncio.Future[list[ResolveResult]]] = {}

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        key = (host.lower(), int(family))
        answer = self._answers.get(key)
        if answer is None:
            self.lookups += 1
            answer = self._answers[key] = asyncio.ensure_future(self.inner.resolve(host, 0, family))
            answer.add_done_callback(lambda done: self._forget_failure(key, done))
        results = await asyncio.shield(answer)  # one waiter giving up must not cancel the others' lookup
        return [ResolveResult(hostname=r["hostname"], host=r["host"], port=port, family=r["family"],
                              proto=r["proto"], flags=r["flags"]) for r in results]

    def _forget_failure(self, key: tuple[str, int], done: asyncio.Future[list[ResolveResult]]) -> None:
        failed = done.cancelled() or done.exception() is not None  # retrieving it silences "never retrieved"
        if failed and self._answers.get(key) is done:
            del self._answers[key]

    async def close(self) -> None:
        await self.inner.close()
