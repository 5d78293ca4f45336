"""Start the loopback fixture server in a background thread (its own event loop), since the probe
under test runs its own ``asyncio.run`` in the test thread."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import trustme

from tests.probe.fixture import ALL_PROFILES, Running, start_fixture, stop_fixture


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_fixture(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1", "*.exhunt.test")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    running, thread = start_fixture(ALL_PROFILES, ctx)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    running.ca_file = ca_file
    yield running
    stop_fixture(running, thread)


@pytest.fixture
def plain_fixture() -> Iterator[Running]:
    running, thread = start_fixture(["vuln2016"])
    yield running
    stop_fixture(running, thread)
