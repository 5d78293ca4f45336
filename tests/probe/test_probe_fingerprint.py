from __future__ import annotations

from exhunt.probe import fingerprint as fp
from exhunt.probe.wire import TIMEOUT, Reply, RequestSpec
from tests.probe.fixture import _logon_page, _manifest, mapi_page

SPEC = RequestSpec("t", "/")


def reply(status: int = 200, headers: tuple[tuple[str, str], ...] = (), body: bytes = b"") -> Reply:
    return Reply(SPEC, status, "OK", headers, body)


def test_header_gives_full_build_high() -> None:
    got = fp.from_header(reply(headers=(("x-owa-version", " 15.1.2176.2 "),)))
    assert got == fp.Fingerprint("15.1.2176.2", "X-OWA-Version header", "high")
    assert fp.from_header(reply(headers=(("X-OWA-Version", "15.1"),))) is None
    assert fp.from_header(Reply(SPEC, error=TIMEOUT)) is None


def test_exporttool_manifest_uses_the_application_identity_not_a_dependency() -> None:
    got = fp.from_exporttool(reply(body=_manifest("15.2.1118.25")))
    assert got is not None and got.build == "15.2.1118.25" and got.confidence == "high"
    assert fp.from_exporttool(reply(status=404, body=_manifest("15.2.1118.25"))) is None
    assert fp.from_exporttool(reply(body=b"<assemblyIdentity name=\"Other\" version=\"1.2.3.4\"/>")) is None


def test_logon_path_is_cu_only_and_says_so() -> None:
    got = fp.from_logon_paths(reply(body=_logon_page("15.1.2176")))
    assert got is not None and got.build == "15.1.2176" and got.confidence == "low" and got.cu_only
    assert "SU" in got.note
    got4 = fp.from_logon_paths(reply(body=b'<link href="/owa/14.3.496.0/themes/base/x.css">'))
    assert got4 is not None and got4.build == "14.3.496.0" and got4.confidence == "medium"


def test_mapi_page_version_line_is_an_exact_build() -> None:
    got = fp.from_mapi_page([reply(status=404), reply(body=mapi_page("15.1.2176.9"))])
    assert got == fp.Fingerprint("15.1.2176.9", fp.MAPI_SOURCE, "high")
    assert fp.from_mapi_page([reply(body=mapi_page("15.2.1118.7", title=False))]).build == "15.2.1118.7"  # type: ignore[union-attr]
    page = mapi_page("15.1.2176.9")
    cut_in_number = page[:page.index(b"Version: ") + len(b"Version: 15.1.217")]
    for no in (mapi_page("15.1.2176.9", body=False), mapi_page(None), cut_in_number,
               b"<p>Version: 15.1.2176.9<br>", page.replace(b"Connectivity", b"Connector")):
        assert fp.from_mapi_page([reply(body=no)]) is None, no
    assert fp.from_mapi_page([reply(status=500, body=page), Reply(SPEC, error=TIMEOUT)]) is None


def test_best_prefers_precise_sources() -> None:
    low = fp.Fingerprint("15.1.2176", "OWA resource path", "low")
    high = fp.Fingerprint("15.1.2176.2", "ECP export tool manifest", "high")
    assert fp.best([low, None, high]) == high
    assert fp.best([None]).build is None


def test_the_probes_own_paths_echoed_back_are_no_signal() -> None:
    """An Express or Spring 404 repeats the requested path: it had counted as Exchange."""
    asked = RequestSpec("owa-logon", "/owa/auth/logon.aspx?replaceCurrent=1")
    echo = Reply(asked, 404, "Not Found", (), b"<pre>Cannot GET /owa/auth/logon.aspx?replaceCurrent=1</pre>")
    assert fp.looks_like_exchange([echo]) == (False, ())
    page = Reply(asked, 200, "OK", (), b'<link href="/owa/auth/15.1.2176/themes/resources/owafont.css">')
    assert fp.looks_like_exchange([page]) == (True, ("/owa/auth/",))


def test_exchange_signals() -> None:
    yes, signals = fp.looks_like_exchange([reply(headers=(("X-FEServer", "EX1"),)),
                                           reply(body=b"/owa/auth/x")])
    assert yes and signals == ("X-FEServer", "/owa/auth/")
    assert fp.looks_like_exchange([reply(headers=(("Server", "Microsoft-IIS/10.0"),))]) == (False, ())


def test_full_build_maps_through_the_table() -> None:
    hb = fp.host_build(fp.Fingerprint("15.1.2176.2", "X-OWA-Version header", "high"))
    assert hb is not None and hb.product == "Exchange 2016" and hb.cu == "CU19"
    assert hb.source == "probe: X-OWA-Version header" and hb.confidence == "high"
    assert {c.cve: c.status for c in hb.cves}["CVE-2021-26855"] == "vulnerable"


def test_cu_only_build_leaves_su_level_fixes_unknown() -> None:
    hb = fp.host_build(fp.Fingerprint("15.1.2176", "OWA resource path", "low", "CU only"))
    assert hb is not None and hb.build == "15.1.2176" and hb.product == "Exchange 2016"
    status = {c.cve: c.status for c in hb.cves}
    assert status["CVE-2021-26855"] == "unknown"  # an SU on CU19 fixes it: cannot tell remotely
    assert status["CVE-2022-41040"] == "vulnerable"  # no fix on the CU19 line at all
    assert "CU only" in (hb.source or "")


def test_unparseable_build_is_reported_not_raised() -> None:
    hb = fp.host_build(fp.Fingerprint("99.99.99.99", "X-OWA-Version header", "high"))
    assert hb is not None and hb.build is not None
    assert fp.host_build(fp.Fingerprint(None)) is None
