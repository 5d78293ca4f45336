from __future__ import annotations

import io
from collections import Counter

import stix2

from exhunt.reports import stix
from exhunt.reports.case import Case
from exhunt.reports.stix import pattern_for


def _bundle(case: Case) -> bytes:
    out = io.BytesIO()
    stix.render(case, out)
    return out.getvalue()


def test_bundle_parses_back_with_stix2(case: Case) -> None:
    data = _bundle(case)
    bundle = stix2.parse(data.decode(), allow_custom=False)
    kinds = Counter(o.type for o in bundle.objects)
    assert kinds["indicator"] >= 6 and kinds["observed-data"] >= 4
    assert kinds["ipv4-addr"] == 2 and kinds["file"] == 1 and kinds["vulnerability"] >= 2
    patterns = {o.pattern for o in bundle.objects if o.type == "indicator"}
    assert "[ipv4-addr:value = '203.0.113.9']" in patterns
    assert any("file:hashes.'SHA-256'" in p for p in patterns)
    assert any("file:name = 'shell.aspx' AND file:parent_directory_ref.path" in p for p in patterns)
    assert any("'User-Agent' = 'python-requests/2.25.1'" in p for p in patterns)
    ids = {o.id for o in bundle.objects}
    for rel in (o for o in bundle.objects if o.type == "relationship"):
        assert rel.source_ref in ids and rel.target_ref in ids
    assert _bundle(case) == data, "same document, same bundle"


def test_pattern_literals_are_escaped() -> None:
    assert stix.pattern_for("user_agent", "a'b\\c").endswith("= 'a\\'b\\\\c']")
    assert stix.pattern_for("client_ip", "2001:db8::1") == "[ipv6-addr:value = '2001:db8::1']"
    assert stix.pattern_for("client_ip", "not an ip") is None
    # as the block list writes them: a port (IIS c-ip behind some proxies) or an IPv6 zone had given
    # no indicator, or one no STIX consumer matches
    assert stix.pattern_for("client_ip", "203.0.113.78:4444") == "[ipv4-addr:value = '203.0.113.78']"
    assert stix.pattern_for("client_ip", "fe80::1%eth0") == "[ipv6-addr:value = 'fe80::1']"
    assert stix.pattern_for("client_ip", "[2001:db8::9]:443") == "[ipv6-addr:value = '2001:db8::9']"
    for own in ("127.0.0.1", "::1", "0.0.0.0", "::ffff:127.0.0.1"):  # the server itself: no indicator to share
        assert stix.pattern_for("client_ip", own) is None
    stix2.Indicator(pattern=stix.pattern_for("user_agent", "<script>'x'</script>"), pattern_type="stix",
                    valid_from="2021-03-03T00:00:00Z")


def test_file_indicators_name_the_hosts_path_once() -> None:
    """A collection's drive folder and a log's Windows path with '/' are one folder on the server, named
    as the server names it (an indicator matches no host at ``C/inetpub/...``)."""

    folder = "C:\\\\inetpub\\\\wwwroot\\\\aspnet_client\\\\system_web"  # as a STIX literal escapes it
    expected = f"[file:name = 's.aspx' AND file:parent_directory_ref.path = '{folder}']"
    for path in ("C/inetpub/wwwroot/aspnet_client/system_web/s.aspx",
                 "c:/inetpub/wwwroot/aspnet_client/system_web/s.aspx",
                 "C:\\inetpub\\wwwroot\\aspnet_client\\system_web\\s.aspx"):
        assert pattern_for("file_path", path) == expected
    assert pattern_for("file_path", "ProgramData/x.aspx") == (
        "[file:name = 'x.aspx' AND file:parent_directory_ref.path = 'ProgramData']")  # no drive: as it is


def test_one_indicator_per_pattern(case: Case) -> None:
    """A file named as the server's path by one log and as the evidence's by YARA had given two
    indicators with the same pattern."""
    import dataclasses

    doc = case.document
    f = next(f for f in doc.findings if any("shell.aspx" in p for p in f.indicators.get("file_path", ())))
    path = next(p for p in f.indicators["file_path"] if "shell.aspx" in p)
    twin = dataclasses.replace(f, id=f.id + "-twin", indicators={"file_path": [path.replace("/", "\\")]})
    bundle = stix2.parse(_bundle(Case(dataclasses.replace(doc, findings=(*doc.findings, twin)))).decode(),
                         allow_custom=False)
    patterns = [o.pattern for o in bundle.objects if o.type == "indicator"]
    assert len(patterns) == len(set(patterns))


def test_file_indicators_carry_the_real_name_not_the_escaped_one() -> None:
    """Evidence paths keep names as reports show them (``printable``): the pattern names the file the
    host has, its folder unsplit by an escape, ``'`` and ``\\`` quoted as STIX literals want."""
    assert pattern_for("file_path", "C/inetpub/wwwroot/aspnet_client/a\\x07b.aspx") == (
        "[file:name = 'a\x07b.aspx' AND file:parent_directory_ref.path = 'C:\\\\inetpub\\\\wwwroot\\\\aspnet_client']")
    assert pattern_for("file_path", "C/inetpub/x\\u202egpj.aspx/it's\\q.aspx") == (
        "[file:name = 'it\\'s\\\\q.aspx' AND file:parent_directory_ref.path = 'C:\\\\inetpub\\\\x\u202egpj.aspx']")
    assert pattern_for("file_path", "C/inet\\xffpub/s.aspx") == "[file:name = 's.aspx']"  # folder unsayable


def test_a_name_no_text_can_hold_keeps_only_its_hash(case: Case) -> None:
    """An undecodable byte in a name (shown ``\\xff``) is no Unicode text: no name indicator and no name
    on the file object, the SHA-256 indicator kept."""
    import dataclasses

    assert pattern_for("file_path", "C/inetpub/wwwroot/a\\xffb.aspx") is None
    doc = case.document
    sha = "ab" * 32
    odd = dataclasses.replace(doc.findings[0], id="odd-name", category="compromise", indicators={
        "file_path": ["C/inetpub/wwwroot/a\\xffb.aspx", "C/inetpub/wwwroot/c\\x07d.aspx"], "sha256": [sha]})
    bundle = stix2.parse(_bundle(Case(dataclasses.replace(doc, findings=(odd,)))).decode(), allow_custom=False)
    patterns = {o.pattern for o in bundle.objects if o.type == "indicator"}
    assert f"[file:hashes.'SHA-256' = '{sha}']" in patterns
    assert not any("\\x" in p or "a\udcffb" in p for p in patterns)
    assert {o.get("name") for o in bundle.objects if o.type == "file"} == {None, "c\x07d.aspx"}
