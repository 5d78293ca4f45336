"""The run-wide DNS cache: a name is looked up once per run, each caller keeps its port, failures are
asked again."""

from __future__ import annotations

import asyncio

import pytest

from exhunt.probe import http1
from exhunt.probe.dns import SharedDnsCache
from exhunt.probe.runner import ProbeOptions
from exhunt.probe.sweep import sweep
from exhunt.probe.targets import Target
from tests.probe.fixture import Running


class Counting:
    def __init__(self, failures: int = 0) -> None:
        self.calls: list[str] = []
        self.failures = failures

    async def __call__(self, host: str) -> list[str]:
        self.calls.append(host)
        await asyncio.sleep(0.01)
        if len(self.calls) <= self.failures:
            raise OSError("temporary failure in name resolution")
        return ["127.0.0.1"]


def test_one_lookup_per_name() -> None:
    async def main() -> None:
        inner = Counting()
        cache = SharedDnsCache(inner)
        a, b, c = await asyncio.gather(cache.resolve("Mail.example.org"), cache.resolve("mail.example.org"),
                                       cache.resolve("other.example.org"))
        again = await cache.resolve("mail.example.org")
        assert inner.calls == ["Mail.example.org", "other.example.org"] and cache.lookups == 2
        assert a == b == c == again == ["127.0.0.1"]
        a.append("10.0.0.1")  # a caller's list is its own
        assert await cache.resolve("mail.example.org") == ["127.0.0.1"]

    asyncio.run(main())


def test_a_failed_lookup_is_asked_again() -> None:
    async def main() -> None:
        inner = Counting(failures=1)
        cache = SharedDnsCache(inner)
        with pytest.raises(OSError):
            await cache.resolve("mail.example.org")
        assert await cache.resolve("mail.example.org") == ["127.0.0.1"]
        assert len(inner.calls) == 2

    asyncio.run(main())


def test_a_sweep_looks_a_shared_name_up_once(plain_fixture: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two targets on one name (two connections): one question to the system resolver."""
    counting = Counting()
    monkeypatch.setattr(http1, "system_lookup", counting)
    port = plain_fixture.ports["vuln2016"]
    result = sweep([Target("http", "fixture.exhunt.test", port), Target("http", "fixture.exhunt.test", port, "/x")],
                   ProbeOptions(timeout=2.0))
    assert [r["reachable"] for r in result.results] == [True, True]
    assert counting.calls == ["fixture.exhunt.test"]


def test_ip_literals_are_not_looked_up() -> None:
    assert asyncio.run(http1.system_lookup("127.0.0.1")) == ["127.0.0.1"]
    assert asyncio.run(http1.system_lookup("::1")) == ["::1"]


def test_system_lookup_of_a_name() -> None:
    addresses = asyncio.run(http1.system_lookup("localhost"))
    assert addresses and all(a == "::1" or a.startswith("127.") for a in addresses)
    assert len(addresses) == len(set(addresses))  # one entry per address, not per socket type
