"""Each check's verdict as a pure function of replies: one row per behaviour."""

from __future__ import annotations

import pytest

from exhunt.findings.model import CveStatus, HostBuild
from exhunt.probe.checks import CHECKS
from exhunt.probe.checks.proxylogon import ProxyLogonSsrf
from exhunt.probe.checks.proxynotshell import ProxyNotShellMitigation
from exhunt.probe.checks.proxyshell import ProxyShellPathConfusion
from exhunt.probe.wire import DISCONNECTED, NOT_VULNERABLE, TIMEOUT, UNKNOWN, VULNERABLE, Reply
from tests.probe.fixture import mapi_page

PL, PS, PNS = ProxyLogonSsrf(), ProxyShellPathConfusion(), ProxyNotShellMitigation()


def ok(status: int, headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> Reply:
    return Reply(PL.requests[0], status, "", headers, body)


def cut(body: bytes) -> Reply:
    return Reply(PL.requests[0], 200, "", (), body, incomplete=True)


def err(kind: str) -> Reply:
    return Reply(PL.requests[0], error=kind, message="x")


def build(status: str | None) -> HostBuild | None:
    if status is None:
        return None
    return HostBuild("15.2.1118.12", cves=(CveStatus("CVE-2022-41040", "ProxyNotShell", status),
                                           CveStatus("CVE-2022-41082", "ProxyNotShell", status)))


CASES = [
    # check, replies, build status, looks like Exchange, verdict, words in the reason
    (PL, [ok(500, (("X-CalculatedBETarget", "localhost"),))], None, True, VULNERABLE, "localhost"),
    (PL, [ok(500, (("X-CalculatedBETarget", "LocalHost:444"),))], None, False, VULNERABLE, "LocalHost"),
    (PL, [ok(500, (("X-CalculatedBETarget", "exch01.corp.local"),))], None, True, NOT_VULNERABLE, "exch01"),
    (PL, [ok(404)], None, True, NOT_VULNERABLE, "no X-CalculatedBETarget"),
    (PL, [ok(404)], None, False, NOT_VULNERABLE, "not an Exchange"),
    (PL, [err(TIMEOUT)], None, True, UNKNOWN, "timeout"),
    # the back end's /mapi/nspi/ page as Exchange writes it, and the shapes it is seen in
    (PS, [ok(200, body=mapi_page("15.1.2176.9"))], None, True, VULNERABLE, "mapi"),
    (PS, [ok(200, body=mapi_page("15.1.2176.9", body=False))], None, True, VULNERABLE, "mapi"),
    (PS, [ok(200, body=mapi_page("15.1.2176.9", title=False))], None, True, VULNERABLE, "mapi"),
    (PS, [ok(200, body=mapi_page(None))], None, True, VULNERABLE, "mapi"),
    (PS, [ok(200, body=mapi_page("15.1.2176.9").upper())], None, False, VULNERABLE, "mapi"),
    (PS, [cut(mapi_page("15.1.2176.9")[:120])], None, True, VULNERABLE, "mapi"),  # the text did arrive
    (PS, [cut(mapi_page("15.1.2176.9")[:40])], None, True, UNKNOWN, "broke off"),
    (PS, [ok(401, body=mapi_page("15.1.2176.9"))], None, True, NOT_VULNERABLE, "401"),
    (PS, [ok(400, body=b'{"ErrorCode":"InvalidRequest"}')], None, True, NOT_VULNERABLE, "400"),
    (PS, [ok(200, body=b"<html>something else</html>")], None, True, NOT_VULNERABLE, "rejected"),
    (PS, [ok(302)], None, True, NOT_VULNERABLE, "302"),
    (PS, [ok(404)], None, False, NOT_VULNERABLE, "not an Exchange"),
    (PS, [err(DISCONNECTED)], None, True, UNKNOWN, "disconnected"),
    (PNS, [ok(400), err(DISCONNECTED)], "vulnerable", True, NOT_VULNERABLE, "mitigation answers"),
    (PNS, [ok(401), ok(403)], "vulnerable", True, NOT_VULNERABLE, "403"),
    (PNS, [ok(403), ok(403)], "vulnerable", True, UNKNOWN, "baseline request was blocked"),  # a WAF: nothing to tell
    (PNS, [ok(400), ok(400)], "vulnerable", True, VULNERABLE, "lacks"),
    (PNS, [ok(400), ok(400)], "fixed", True, NOT_VULNERABLE, "has the ProxyNotShell fix"),
    (PNS, [ok(400), ok(400)], "unknown", True, UNKNOWN, "unknown"),
    (PNS, [ok(400), ok(400)], None, True, UNKNOWN, "unknown build"),
    (PNS, [ok(404), ok(404)], None, False, NOT_VULNERABLE, "not an Exchange"),
    (PNS, [err(TIMEOUT), err(DISCONNECTED)], "vulnerable", True, UNKNOWN, "baseline"),
    (PNS, [ok(400), err(TIMEOUT)], "vulnerable", True, UNKNOWN, "trigger"),
]


@pytest.mark.parametrize(("check", "replies", "status", "exchange", "verdict", "words"), CASES)
def test_classify(check, replies, status, exchange, verdict, words) -> None:  # type: ignore[no-untyped-def]
    outcome = check.classify(tuple(replies), build(status), exchange)
    assert (outcome.check, outcome.verdict) == (check.id, verdict)
    assert words.lower() in outcome.reason.lower()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_checks_are_documented_and_read_only(check) -> None:  # type: ignore[no-untyped-def]
    doc = type(check).__module__
    module = __import__(doc, fromlist=["x"])
    assert module.__doc__ and "safe" in module.__doc__.lower() and "send" in module.__doc__.lower()
    assert check.title and check.description and check.cves and check.remediation and check.severity
    for spec in check.requests:
        assert spec.method == "GET" and spec.path.startswith("/")
        assert spec.path in module.__doc__  # the docstring shows exactly what is sent


def test_proxyshell_answer_stands_in_for_the_proxynotshell_baseline() -> None:
    baseline, trigger = PNS.requests
    page = Reply(PS.requests[0], 200, "OK", (), mapi_page("15.1.2176.9"))
    assert PNS.stand_in(baseline, {"proxyshell-path": page}) is page
    rejected = Reply(PS.requests[0], 400, "Bad Request")
    assert PNS.stand_in(baseline, {"proxyshell-path": rejected}) is rejected
    assert PNS.stand_in(trigger, {"proxyshell-path": page}) is None  # the trigger is always sent
    assert PNS.stand_in(baseline, {}) is None  # ProxyShell not run
    for unusable in (Reply(PS.requests[0], 403, "Forbidden"), Reply(PS.requests[0], error=DISCONNECTED),
                     Reply(PS.requests[0], 200, "OK", (), b"<html>", incomplete=True)):
        assert PNS.stand_in(baseline, {"proxyshell-path": unusable}) is None
    assert all(c.stand_in(s, {"proxyshell-path": page}) is None for c in (PL, PS) for s in c.requests)
