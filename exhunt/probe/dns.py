"""One DNS answer per name for a whole probe run.

Each host gets its own connection, and targets that share a name (``mail.example.org`` on 443 and
80, or listed twice with different paths) would each ask the resolver again; this cache sits in front
of every connection so a name is looked up once per run, and concurrent lookups of one name wait for
the same answer. Failures are not kept: a retry asks again. IP literals never reach it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class SharedDnsCache:
    def __init__(self, inner: Callable[[str], Awaitable[list[str]]]) -> None:
        self.inner = inner
        self.lookups = 0  # questions passed to ``inner`` (for tests and the curious)
        self._answers: dict[str, asyncio.Future[list[str]]] = {}

    async def resolve(self, host: str) -> list[str]:
        """The addresses of ``host``, in the resolver's order."""
        key = host.lower()
        answer = self._answers.get(key)
        if answer is None:
            self.lookups += 1
            answer = self._answers[key] = asyncio.ensure_future(self.inner(host))
            answer.add_done_callback(lambda done: self._forget_failure(key, done))
        return list(await asyncio.shield(answer))  # one waiter giving up must not cancel the others' lookup

    def _forget_failure(self, key: str, done: asyncio.Future[list[str]]) -> None:
        failed = done.cancelled() or done.exception() is not None  # retrieving it silences "never retrieved"
        if failed and self._answers.get(key) is done:
            del self._answers[key]
