"""The run-wide DNS cache: a name is looked up once per run, each caller keeps its port, failures are
asked again."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from exhunt.probe import runner
from exhunt.probe.dns import SharedDnsCache
from exhunt.probe.runner import ProbeOptions
from exhunt.probe.sweep import sweep
from exhunt.probe.targets import Target
from tests.probe.fixture import Running


class Counting(AbstractResolver):
    def __init__(self, failures: int = 0) -> None:
        self.calls: list[str] = []
        self.failures = failures

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        self.calls.append(host)
        await asyncio.sleep(0.01)
        if len(self.calls) <= self.failures:
            raise OSError("temporary failure in name resolution")
        return [ResolveResult(hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0,
                              flags=0)]

    async def close(self) -> None:
        pass


def test_one_lookup_per_name_each_caller_keeps_its_port() -> None:
    async def main() -> None:
        inner = Counting()
        cache = SharedDnsCache(inner)
        a, b, c = await asyncio.gather(cache.resolve("Mail.example.org", 443), cache.resolve("mail.example.org", 80),
                                       cache.resolve("other.example.org", 443))
        again = await cache.resolve("mail.example.org", 8443)
        assert inner.calls == ["Mail.example.org", "other.example.org"] and cache.lookups == 2
        assert [r["port"] for r in (*a, *b, *c, *again)] == [443, 80, 443, 8443]
        assert {r["host"] for r in (*a, *b)} == {"127.0.0.1"}

    asyncio.run(main())


def test_a_failed_lookup_is_asked_again() -> None:
    async def main() -> None:
        inner = Counting(failures=1)
        cache = SharedDnsCache(inner)
        with pytest.raises(OSError):
            await cache.resolve("mail.example.org", 443)
        assert (await cache.resolve("mail.example.org", 443))[0]["host"] == "127.0.0.1"
        assert len(inner.calls) == 2

    asyncio.run(main())


def test_a_sweep_looks_a_shared_name_up_once(plain_fixture: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two targets on one name (two ports, two connectors): one question to the system resolver."""
    made: list[Counting] = []

    def counting_resolver() -> Counting:
        made.append(Counting())
        return made[-1]

    monkeypatch.setattr(runner.aiohttp, "ThreadedResolver", counting_resolver)
    port = plain_fixture.ports["vuln2016"]
    result = sweep([Target("http", "fixture.exhunt.test", port), Target("http", "fixture.exhunt.test", port, "/x")],
                   ProbeOptions(timeout=2.0))
    assert [r["reachable"] for r in result.results] == [True, True]
    assert [c.calls for c in made] == [["fixture.exhunt.test"]]
