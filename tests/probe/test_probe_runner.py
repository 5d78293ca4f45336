"""The probe against the loopback fixture server: every profile classified, limits enforced."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from exhunt.errors import UsageError
from exhunt.probe.runner import GUARD_SECONDS, ProbeOptions, TokenBucket
from exhunt.probe.sweep import sweep
from exhunt.probe.targets import Target
from exhunt.probe.wire import DEFAULT_BODY_CAP, NOT_VULNERABLE, UNKNOWN, VULNERABLE
from tests.probe.fixture import EXPECTED, Running, start_fixture, stop_fixture

TIMEOUT = 2.0


def verdicts(result: dict[str, Any]) -> dict[str, str]:
    return {c["check"].removeprefix("probe."): c["verdict"] for c in result["checks"]}




@pytest.fixture(scope="module")
def tls_results(tls_fixture: Running) -> dict[str, dict[str, Any]]:
    targets = [Target("https", "localhost", port) for port in tls_fixture.ports.values()]
    started = time.monotonic()
    result = sweep(targets, ProbeOptions(timeout=TIMEOUT, ca_bundle=tls_fixture.ca_file, retries=1))
    elapsed = time.monotonic() - started
    by_port = {int(r["target"].rsplit(":", 1)[1]): r for r in result.results}
    out = {profile: by_port[port] for profile, port in tls_fixture.ports.items()}
    out["_elapsed"] = {"seconds": elapsed}
    return out


@pytest.mark.parametrize("profile", list(EXPECTED))
def test_profiles_classified_over_tls(tls_results: dict[str, dict[str, Any]], profile: str) -> None:
    exchange, build, confidence, source, pl, ps, pns = EXPECTED[profile]
    r = tls_results[profile]
    assert r["exchange"] is exchange
    fingerprint = r["fingerprint"]
    assert (fingerprint["build"], fingerprint["confidence"], fingerprint["source"]) == (build, confidence, source)
    assert verdicts(r) == {"proxylogon_ssrf": pl, "proxyshell_path": ps, "proxynotshell_mitigation": pns}
    for check in r["checks"]:
        assert check["reason"]


def test_requests_one_answer_serves_twice(tls_results: dict[str, dict[str, Any]]) -> None:
    """The MAPI page's Version line makes the export-tool request unnecessary, and the ProxyShell
    answer stands in for the ProxyNotShell baseline; a cut-off ProxyShell answer does not."""
    ps = tls_results["ps2016"]
    assert [r["request"] for r in ps["fingerprint"]["replies"]] == ["owa-logon"]
    pns = next(c for c in ps["checks"] if c["check"] == "probe.proxynotshell_mitigation")
    assert [r["request"] for r in pns["replies"]] == ["proxyshell-path", "proxynotshell-trigger"]
    cut = tls_results["pscut"]
    assert [r["request"] for r in cut["fingerprint"]["replies"]] == ["owa-logon", "ecp-exporttool"]
    pns = next(c for c in cut["checks"] if c["check"] == "probe.proxynotshell_mitigation")
    assert [r["request"] for r in pns["replies"]] == ["proxynotshell-baseline", "proxynotshell-trigger"]


def test_event_loop_is_uvloop_unless_asked_for_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    from exhunt.probe.runner import loop_factory

    monkeypatch.setenv("EXHUNT_PROBE_LOOP", "asyncio")
    assert loop_factory() is None
    monkeypatch.delenv("EXHUNT_PROBE_LOOP")
    fast = pytest.importorskip("winloop" if sys.platform == "win32" else "uvloop")
    assert loop_factory() is fast.new_event_loop


def test_asyncio_loop_gives_the_same_answers(tls_fixture: Running, tls_results: dict[str, dict[str, Any]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Every profile over TLS on asyncio's own loop: the verdicts, builds and requests of the default loop."""
    monkeypatch.setenv("EXHUNT_PROBE_LOOP", "asyncio")
    profiles = [p for p in tls_fixture.ports if p != "tarpit"]  # the tarpit only costs the timeout
    targets = [Target("https", "localhost", tls_fixture.ports[p]) for p in profiles]
    result = sweep(targets, ProbeOptions(timeout=TIMEOUT, ca_bundle=tls_fixture.ca_file, retries=1))
    by_port = {int(r["target"].rsplit(":", 1)[1]): r for r in result.results}

    def shape(r: dict[str, Any]) -> tuple[Any, ...]:
        return (verdicts(r), r["fingerprint"]["build"], r["fingerprint"]["source"], r["exchange"],
                [[rep["request"] for rep in c["replies"]] for c in r["checks"]])

    for profile in profiles:
        assert shape(by_port[tls_fixture.ports[profile]]) == shape(tls_results[profile]), profile


def test_tarpit_never_hangs_past_timeout(tls_results: dict[str, dict[str, Any]]) -> None:
    r = tls_results["tarpit"]
    assert not r["reachable"] and r["error"].startswith("timeout")
    assert r["elapsed"] <= TIMEOUT + GUARD_SECONDS
    assert tls_results["_elapsed"]["seconds"] <= TIMEOUT + GUARD_SECONDS + 5  # hosts run in parallel


def test_malformed_is_reported_not_raised(tls_results: dict[str, dict[str, Any]]) -> None:
    r = tls_results["malformed"]
    assert not r["reachable"] and r["error"].startswith("malformed")
    assert all("malformed" in c["reason"] for c in r["checks"])


def test_huge_body_read_is_capped(tls_results: dict[str, dict[str, Any]], tls_fixture: Running) -> None:
    (logon,) = tls_results["hugebody"]["fingerprint"]["replies"]
    assert "truncated at cap" in logon["evidence"]
    read = int(logon["evidence"].rsplit("[body: ", 1)[1].split(" ", 1)[0])
    assert read == DEFAULT_BODY_CAP
    assert tls_results["hugebody"]["elapsed"] < TIMEOUT  # dropped at the cap, not read until the timeout


def test_sni_and_evidence(tls_results: dict[str, dict[str, Any]], tls_fixture: Running) -> None:
    assert "localhost" in tls_fixture.server.sni
    pl = next(c for c in tls_results["vuln2016"]["checks"] if c["check"] == "probe.proxylogon_ssrf")
    evidence = pl["replies"][0]["evidence"]
    assert evidence.startswith("GET /owa/auth/x.js HTTP/1.1\nHost: localhost:")
    assert "X-BEResource=localhost/owa/auth/logon.aspx?~3" in evidence
    assert "HTTP/1.1 500" in evidence and "X-CalculatedBETarget: localhost" in evidence


def test_untrusted_certificate_is_unknown_and_insecure_works(tls_fixture: Running) -> None:
    target = [Target("https", "localhost", tls_fixture.ports["vuln2016"])]
    strict = sweep(target, ProbeOptions(timeout=TIMEOUT)).results[0]
    assert not strict["reachable"] and strict["error"].startswith("tls")
    assert set(verdicts(strict).values()) == {UNKNOWN}
    loose = sweep(target, ProbeOptions(timeout=TIMEOUT, insecure=True)).results[0]
    assert verdicts(loose)["proxylogon_ssrf"] == VULNERABLE


def test_virtual_host_sni_with_resolve(tls_fixture: Running) -> None:
    name = "patched2019-7.exhunt.test"
    result = sweep([Target("https", name, tls_fixture.ports["iis"])],
                   ProbeOptions(timeout=TIMEOUT, ca_bundle=tls_fixture.ca_file, resolve={name: "127.0.0.1"}))
    assert name in tls_fixture.server.sni
    assert result.results[0]["fingerprint"]["build"] == "15.2.1118.25"  # profile chosen by Host header


def test_connection_refused_is_retried_then_unknown() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    r = sweep([Target("http", "127.0.0.1", port)], ProbeOptions(timeout=TIMEOUT, backoff=0.01)).results[0]
    assert r["error"].startswith("connect")
    assert r["fingerprint"]["replies"][0]["attempts"] == 3


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        running, thread = start_fixture(["vuln2016"], host="::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        target = Target("http", "::1", running.ports["vuln2016"])
        r = sweep([target], ProbeOptions(timeout=TIMEOUT)).results[0]
        assert r["target"].startswith("http://[::1]:") and verdicts(r)["proxylogon_ssrf"] == VULNERABLE
    finally:
        stop_fixture(running, thread)


@pytest.mark.slow
def test_thousand_targets_need_only_concurrency_sockets(plain_fixture: Running) -> None:
    port = plain_fixture.ports["vuln2016"]
    names = [f"vuln2016-{i}.exhunt.test" for i in range(1000)]
    result = sweep([Target("http", n, port) for n in names],
                   ProbeOptions(concurrency=20, timeout=30, resolve=dict.fromkeys(names, "127.0.0.1")))
    server = plain_fixture.server
    assert len(result.results) == 1000
    assert all(verdicts(r)["proxylogon_ssrf"] == VULNERABLE for r in result.results)
    assert server.connections >= 1000  # one connection per target, none shared between targets
    assert server.peak_open <= 20


def test_token_bucket_spaces_requests() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=10, burst=2, clock=lambda: now[0])
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3])
    now[0] += 10
    assert bucket.reserve() == 0.0
    assert TokenBucket(rate=0).reserve() == 0.0


def test_rate_limits_a_run(plain_fixture: Running) -> None:
    port = plain_fixture.ports["vuln2016"]
    started = time.monotonic()
    sweep([Target("http", "127.0.0.1", port)], ProbeOptions(rate=20, concurrency=1, timeout=TIMEOUT))
    assert time.monotonic() - started >= 3 / 20  # 4 requests at 20/s, burst 1: at least 3 intervals


def test_waiting_for_the_rate_is_not_the_hosts_timeout(plain_fixture: Running) -> None:
    """Ten hosts at 4 requests/s need ~13 s of rate waits in all, far past a 2 s --timeout: each host
    is still assessed (the waits used to spend its budget, so all ten came out "unreachable")."""
    port = plain_fixture.ports["vuln2016"]
    names = [f"vuln2016-r{i}.exhunt.test" for i in range(10)]
    result = sweep([Target("http", n, port) for n in names],
                   ProbeOptions(rate=4, timeout=TIMEOUT, resolve=dict.fromkeys(names, "127.0.0.1")))
    assert [verdicts(r)["proxylogon_ssrf"] for r in result.results] == [VULNERABLE] * 10


def test_one_rate_wait_longer_than_the_whole_host_budget(plain_fixture: Running) -> None:
    """A single wait for the rate (2.5 s) longer than --timeout plus the guard (1 + 1 s) must not
    fire the host's guard: the budget moves before the host sleeps, not after."""
    from exhunt.probe.checks import CHECKS

    port = plain_fixture.ports["vuln2016"]
    result = sweep([Target("http", "127.0.0.1", port)],
                   ProbeOptions(rate=0.4, timeout=1.0, checks=CHECKS[:1]))
    r = result.results[0]
    assert r["error"] is None and verdicts(r) == {"proxylogon_ssrf": VULNERABLE}


@pytest.mark.parametrize("options", [
    ProbeOptions(concurrency=0), ProbeOptions(rate=-1), ProbeOptions(timeout=0),
    ProbeOptions(insecure=True, ca_bundle=Path(__file__)),
    ProbeOptions(timeout=float("nan")), ProbeOptions(timeout=float("inf")), ProbeOptions(rate=float("nan")),
    ProbeOptions(proxy=""), ProbeOptions(proxy="http://"), ProbeOptions(proxy="127.0.0.1:3128"),
    ProbeOptions(proxy="socks5://127.0.0.1:1080"),
    ProbeOptions(proxy="http://127.0.0.1:3128", resolve={"mail.example.org": "127.0.0.1"}),
])
def test_bad_options(options: ProbeOptions) -> None:
    with pytest.raises(UsageError):
        options.validate()


def test_dropped_trigger_is_sent_exactly_as_often_as_reported() -> None:
    """Nothing is resent behind the retry count: the mitigated server sees 2 trigger requests for 2 attempts."""
    running, thread = start_fixture(["mitigated"])
    try:
        r = sweep([Target("http", "127.0.0.1", running.ports["mitigated"])],
                  ProbeOptions(timeout=TIMEOUT, backoff=0.01)).results[0]
        pns = next(c for c in r["checks"] if c["check"] == "probe.proxynotshell_mitigation")
        assert pns["verdict"] == NOT_VULNERABLE and pns["replies"][1]["attempts"] == 2
        # logon, ProxyLogon, ProxyShell (whose answer is the ProxyNotShell baseline), trigger x2, and the
        # baseline's request again: answered, so the drop was the rule's (a rate limit drops it too)
        assert running.server.requests == 6
        assert [r["request"] for r in pns["replies"]] == ["proxyshell-path", "proxynotshell-trigger",
                                                          "proxynotshell-recheck"]
        assert running.server.connections == 3  # the retry and the recheck each need a fresh connection
    finally:
        stop_fixture(running, thread)


def test_a_body_that_breaks_off_is_unknown_not_patched() -> None:
    """A ProxyShell answer cut short (Content-Length larger than what came, then the socket closed)
    proves nothing: the marker may have been in the missing part."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from exhunt.probe.checks.proxyshell import MARKER

    class Short(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
            body = b"<html>" if "mapi" in self.path else b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 500))
            self.send_header("X-OWA-Version", "15.1.2176.2")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Short)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        r = sweep([Target("http", "127.0.0.1", server.server_address[1])],
                  ProbeOptions(timeout=TIMEOUT, backoff=0.01)).results[0]
    finally:
        server.shutdown()
        server.server_close()
    assert MARKER not in b"<html>"
    assert verdicts(r)["proxyshell_path"] == UNKNOWN


def test_endless_trailer_fields_end_as_a_malformed_answer(tls_results: dict[str, dict[str, Any]]) -> None:
    """A chunked answer's trailer lines were kept without limit (3 GB for one host in 10 s): they
    now count against the head's limit, and the answer ends as malformed long before the timeout."""
    reasons = [c["reason"] for c in tls_results["trailers"]["checks"]]
    assert reasons and all("trailer" in reason for reason in reasons), reasons
