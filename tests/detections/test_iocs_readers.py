"""IOC list readers, one small fixture per format, written here (data-driven: text in, indicators out)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from exhunt.detections.iocs import load_iocs
from tests.conftest import shared_path

SHA = "a" * 64
STIX = orjson.dumps(
    {
        "type": "bundle",
        "id": "bundle--1",
        "objects": [
            {
                "type": "indicator",
                "id": "indicator--1",
                "name": "shell",
                "pattern_type": "stix",
                "pattern": f"[file:hashes.'SHA-256' = '{SHA.upper()}']",
            },
            {
                "type": "indicator",
                "id": "indicator--2",
                "name": "c2",
                "pattern_type": "stix",
                "pattern": "[ipv4-addr:value = '198.51.100.7'] OR [domain-name:value = 'Evil.Example']",
            },
            {
                "type": "indicator",
                "id": "indicator--3",
                "name": "ua",
                "pattern_type": "stix",
                "pattern": "[network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'"
                " = 'ExchangeBot/1.0']",
            },
            {
                "type": "indicator",
                "id": "indicator--4",
                "name": "compound",
                "pattern_type": "stix",
                "pattern": "[file:name = 'a.aspx' AND file:size > 10]",
            },
            {"type": "malware", "id": "malware--1", "name": "ignored"},
        ],
    }
).decode()

CASES = {
    "plain hashes with comments": (
        "hashes.txt",
        f"# list\n{SHA}\n{'b' * 40} ; sample\n{'c' * 32}\nnot-a-hash\n",
        {("sha256", SHA), ("sha1", "b" * 40), ("md5", "c" * 32)},
        1,
    ),
    "plain ips and domains": (
        "c2.txt",
        "198.51.100.1\n2001:db8::1\nbad.example.com\n",
        {("ip", "198.51.100.1"), ("ip", "2001:db8::1"), ("domain", "bad.example.com")},
        0,
    ),
    "plain user agents": (
        "useragents.txt",
        "Mozilla/5.0+(compatible;+Bingbot/2.0)\n",
        {("user_agent", "Mozilla/5.0 (compatible; Bingbot/2.0)")},
        0,
    ),
    "plain file names": ("webshell_names.txt", "help.aspx\n", {("filename_regex", r"(?i)\\help\.aspx$")}, 0),
    "signature-base hashes": (
        "hash-iocs.txt",
        f"# APT x\n{SHA};APT x web shell\n{'d' * 32};tool\n",
        {("sha256", SHA), ("md5", "d" * 32)},
        0,
    ),
    "signature-base filenames": (
        "filename-iocs.txt",
        "# shells\n\\\\owa\\\\auth\\\\[a-z]{8}\\.aspx;80\n"
        "\\\\temp\\\\x\\.exe;60;\\\\good\\\\\n(unclosed;70\n",
        {("filename_regex", r"\\owa\\auth\\[a-z]{8}\.aspx"), ("filename_regex", r"\\temp\\x\.exe")},
        1,
    ),
    "microsoft csv": (
        "ms.csv",
        "DateAdded,FirstSeen,Indicator,IndicatorType,TLP\n"
        f"2021-03-10,,{SHA},sha256,White\n"
        "2021-03-09,,C:\\Program Files\\Microsoft\\Exchange Server\\V15\\FrontEnd\\HttpProxy\\owa\\auth"
        "\\bob.aspx,filepath,White\n2021-03-09,,Evil.Example,domainname,White\n"
        "2021-03-09,,x,weird,White\n",
        {
            ("sha256", SHA),
            (
                "path",
                "\\program files\\microsoft\\exchange server\\v15\\frontend\\httpproxy\\owa\\auth\\bob.aspx",
            ),
            ("domain", "evil.example"),
        },
        1,
    ),
    "chirp yaml": (
        "AA.yaml",
        "---\nname: ips\nioc_type: network\nindicator:\n  ips: |\n    203.0.113.5\n"
        "    203.0.113.6\n---\nname: rule\nioc_type: yara\nindicator:\n  files: x\n  rule: |\n"
        '    rule r { strings: $a = "zz" condition: $a }\n---\nname: ev\nioc_type: events\n'
        "indicator:\n  event_type: Application\n",
        {("ip", "203.0.113.5"), ("ip", "203.0.113.6")},
        1,
    ),
    "stix bundle": (
        "bundle.json",
        STIX,
        {
            ("sha256", SHA),
            ("ip", "198.51.100.7"),
            ("domain", "evil.example"),
            ("user_agent", "ExchangeBot/1.0"),
        },
        1,
    ),
}


# IOC lists as people write them: (file name, text, {(kind, value)}, {(line, comment) of skipped lines}).
# Every line of a case names the form it tests; each case fails on the line-per-value reader.
MD5, SHA1 = "0" * 31 + "f", "e" * 40
AS_WRITTEN = {
    "sha256sum output": ("hashes.txt", f"{SHA}  dropped loader\n{MD5}  x.aspx\n", {("sha256", SHA), ("md5", MD5)}),
    "sha256sum binary mode": ("hashes.txt", f"{SHA} *loader.exe\n", {("sha256", SHA)}),
    "sha256sum escaped name": ("hashes.txt", f"\\{SHA}  C:\\\\x.exe\n", {("sha256", SHA)}),
    "hash comma comment": ("h.txt", f"{SHA},web shell, seen 2021\n", {("sha256", SHA)}),
    "hash semicolon comment": ("h.txt", f"{SHA1};tool\n", {("sha1", SHA1)}),
    "hash hash-mark comment": ("h.txt", f"{SHA} # from the IR report\n{MD5}#tight\n", {("sha256", SHA), ("md5", MD5)}),
    "hash tab comment": ("h.txt", f"{SHA}\tChina Chopper\n", {("sha256", SHA)}),
    "leading and trailing spaces": ("h.txt", f"   {SHA.upper()}   \n\t{MD5} \n", {("sha256", SHA), ("md5", MD5)}),
    "crlf": ("h.txt", f"{SHA}  a\r\n198.51.100.9\r\n", {("sha256", SHA), ("ip", "198.51.100.9")}),
    "ip with comment": (
        "c2.txt", "198.51.100.3  # scanner\n203.0.113.4,C2\n", {("ip", "198.51.100.3"), ("ip", "203.0.113.4")}
    ),
    "defanged ip": ("c2.txt", "198.51.100[.]3\n203[.]0[.]113(.)4\n", {("ip", "198.51.100.3"), ("ip", "203.0.113.4")}),
    "defanged domains": (
        "c2.txt",
        "evil[.]example\nbad{.}example[.]org\nc2[dot]example  # dot\n",
        {("domain", "evil.example"), ("domain", "bad.example.org"), ("domain", "c2.example")},
    ),
    "defanged urls": (
        "urls.txt",
        "hxxps://evil[.]example/owa/x.aspx\nhxxp[:]//198.51.100[.]3:8080/a\nhXXps[://]c2(.)example\n",
        {
            ("url", "https://evil.example/owa/x.aspx"),
            ("url", "http://198.51.100.3:8080/a"),
            ("url", "https://c2.example"),
        },
    ),
    "paths keep their spaces": (
        "paths.txt",
        "C:\\Program Files\\Microsoft\\x.aspx;shell\n",
        {("path", "\\program files\\microsoft\\x.aspx")},
    ),
    "file name lists keep [.] as written": (
        "shell_names.txt", "help[.]aspx\n", {("filename_regex", r"(?i)\\help\[\.\]aspx$")}
    ),
    "hashes with their algorithm's name": (
        "h.txt",
        f"sha256:{SHA.upper()}\nSHA1: {SHA1}  tool\nMD5={MD5}\n",
        {("sha256", SHA), ("sha1", SHA1), ("md5", MD5)},
    ),
    "file names in a list of any name": (
        "iocs.txt",
        "shell2.aspx\nProcDump64.EXE # tool\nevil.example\n",
        {("filename_regex", r"(?i)\\shell2\.aspx$"), ("filename_regex", r"(?i)\\ProcDump64\.EXE$"),
         ("domain", "evil.example")},
    ),
    "signature-base list with sha256sum lines": (
        "hash-iocs.txt", f"{SHA};a\n{MD5}  b\n", {("sha256", SHA), ("md5", MD5)}
    ),
}
UNREADABLE = "h.txt", f"{SHA}\nnot an indicator at all\n{SHA[:60]}  short hash\nwscript.exe /b /E:jscript\n"


@pytest.mark.parametrize("case", sorted(CASES))
def test_reader(tmp_path: Path, case: str) -> None:
    name, text, expected, skipped = CASES[case]
    (tmp_path / name).write_text(text, encoding="utf-8")
    iocs = load_iocs([tmp_path / name])
    assert {(i.kind, i.value) for i in iocs.indicators} == expected
    assert len(iocs.skipped) == skipped, iocs.skipped
    assert all(s["reason"] for s in iocs.skipped)


@pytest.mark.parametrize("case", sorted(AS_WRITTEN))
def test_lists_as_people_write_them(tmp_path: Path, case: str) -> None:
    name, text, expected = AS_WRITTEN[case]
    (tmp_path / name).write_bytes(text.encode())
    iocs = load_iocs([tmp_path / name])
    assert {(i.kind, i.value) for i in iocs.indicators} == expected
    assert iocs.skipped == []


def test_comment_after_a_hash_becomes_the_indicator_name(tmp_path: Path) -> None:
    (tmp_path / "h.txt").write_text(f"{SHA}  dropped loader\n{MD5} # from the IR report\n")
    assert {i.value: i.name for i in load_iocs([tmp_path / "h.txt"]).indicators} == {
        SHA: "dropped loader",
        MD5: "from the IR report",
    }


@pytest.mark.parametrize(
    "encoding,bom",
    [("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-16-le", b"")],
)
def test_bom_and_utf16_lists(tmp_path: Path, encoding: str, bom: bytes) -> None:
    text = f"{SHA}  dropped loader\r\nevil[.]example\r\n"
    (tmp_path / "h.txt").write_bytes(bom + text.encode(encoding))
    iocs = load_iocs([tmp_path / "h.txt"])
    assert {(i.kind, i.value) for i in iocs.indicators} == {("sha256", SHA), ("domain", "evil.example")}
    assert iocs.skipped == []


def test_csv_feed_lists_every_row_it_cannot_use(tmp_path: Path) -> None:
    text = (
        "Indicator,IndicatorType,Notes\n"
        f"{SHA},sha256,\"shell, seen 2021\"\n"
        "evil_c2.example,DomainName,underscore\n"
        "not-a-hash,FileHash,\n"
        "198.51.100.0/33,IPAddress,bad range\n"
        "203.0.113.5\n"
        ",,\n"
    )
    (tmp_path / "feed.csv").write_text(text)
    iocs = load_iocs([tmp_path / "feed.csv"])
    assert [(i.kind, i.value, i.name) for i in iocs.indicators] == [("sha256", SHA, "shell, seen 2021")]
    assert [s["line"] for s in iocs.skipped] == [3, 4, 5, 6]


def test_stix_revoked_and_superseded_indicators_are_not_used(tmp_path: Path) -> None:
    def indicator(n: int, pattern: str, modified: str, **more: object) -> dict:
        return {"type": "indicator", "id": f"indicator--{n}", "pattern_type": "stix", "pattern": pattern,
                "modified": modified, **more}

    objects = [
        indicator(1, "[ipv4-addr:value = '198.51.100.1']", "2021-03-01T00:00:00Z"),
        indicator(1, "[ipv4-addr:value = '198.51.100.1']", "2021-03-09T00:00:00Z", revoked=True),
        indicator(2, "[ipv4-addr:value = '198.51.100.2']", "2021-03-01T00:00:00Z"),
        indicator(2, "[ipv4-addr:value = '198.51.100.22']", "2021-03-02T00:00:00Z"),
        indicator(3, "[file:hashes.'SHA1' = '" + "B" * 40 + "']", "2021-03-01T00:00:00Z",
                  valid_until="2021-04-01T00:00:00Z"),
    ]
    # keys sorted, as json.dumps(sort_keys=True) writes them: "type": "bundle" after every object
    text = orjson.dumps({"id": "bundle--9", "objects": objects + [{"type": "note", "id": "note--1",
                         "content": "x" * 70000}], "type": "bundle"}, option=orjson.OPT_SORT_KEYS)
    (tmp_path / "bundle.json").write_bytes(text)
    iocs = load_iocs([tmp_path / "bundle.json"])
    assert {(i.kind, i.value) for i in iocs.indicators} == {("ip", "198.51.100.22"), ("sha1", "b" * 40)}
    assert [s["reason"].startswith("indicator--1: revoked") for s in iocs.skipped] == [True]


def test_path_lists_skip_descriptions_of_paths(tmp_path: Path) -> None:
    (tmp_path / "webshell_paths.txt").write_text(
        "C:\\inetpub\\wwwroot\\aspnet_client\\x.aspx\n"
        "\\inetpub\\wwwroot\\aspnet_client\\ (any .aspx file under this folder or sub folders)\n"
        "\\<exchange install path>\\FrontEnd\\HttpProxy\\owa\\auth\\Current\\<any aspx file in this folder>\n"
    )
    iocs = load_iocs([tmp_path / "webshell_paths.txt"])
    assert [i.value for i in iocs.indicators] == ["\\inetpub\\wwwroot\\aspnet_client\\x.aspx"]
    assert [(s["line"], "folder" in s["reason"] or "description" in s["reason"]) for s in iocs.skipped] == [
        (2, True), (3, True)]


def test_ranges_too_broad_to_be_indicators_are_skipped_with_the_reason(tmp_path: Path) -> None:
    """A /0 or a /4 (a feed's bogon list, a slip) had made every client an attacker and the host
    suspicious; /8 and a single /32 are still used."""
    (tmp_path / "ips.txt").write_text("0.0.0.0/0\n10.0.0.0/8\n192.0.0.0/4\n2001::/3\n2001:db8::/32\n198.51.100.9/32\n")
    iocs = load_iocs([tmp_path / "ips.txt"])
    assert sorted(i.value for i in iocs.indicators) == ["10.0.0.0/8", "198.51.100.9", "2001:db8::/32"]
    assert sorted(s["reason"].split(" is ")[0] for s in iocs.skipped) == [
        "range 0.0.0.0/0", "range 192.0.0.0/4", "range 2000::/3"]
    assert all("too broad" in s["reason"] for s in iocs.skipped)


def test_utf16_csv_feed_is_recognised(tmp_path: Path) -> None:
    text = f"Indicator,IndicatorType\r\n{SHA},sha256\r\nevil[.]example,domainname\r\n"
    (tmp_path / "feed.csv").write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    iocs = load_iocs([tmp_path / "feed.csv"])
    assert {(i.kind, i.value) for i in iocs.indicators} == {("sha256", SHA), ("domain", "evil.example")}


def test_unreadable_lines_are_listed_with_their_line_number(tmp_path: Path) -> None:
    name, text = UNREADABLE
    (tmp_path / name).write_text(text)
    iocs = load_iocs([tmp_path / name])
    assert [i.value for i in iocs.indicators] == [SHA]
    assert [(s["line"], s["origin"].endswith(name)) for s in iocs.skipped] == [(2, True), (3, True), (4, True)]


def test_chirp_yara_rules_are_kept_for_the_scan(tmp_path: Path) -> None:
    _name, text, _e, _s = CASES["chirp yaml"]
    (tmp_path / "a.yaml").write_text(text)
    assert [origin.endswith("#rule") for origin, _ in load_iocs([tmp_path]).yara_rules] == [True]


def test_signature_base_fp_regex_and_score_are_kept(tmp_path: Path) -> None:
    _name, text, _e, _s = CASES["signature-base filenames"]
    (tmp_path / "filename-iocs.txt").write_text(text)
    by_value = {i.value: i for i in load_iocs([tmp_path]).indicators}
    assert by_value[r"\\temp\\x\.exe"].exclude == r"\\good\\" and by_value[r"\\temp\\x\.exe"].score == 60


def test_shared_feeds_load(tmp_path: Path) -> None:
    iocs = load_iocs([shared_path("iocs"), shared_path("rules", "signature-base", "iocs")])
    report = iocs.report()
    assert report["by_kind"]["sha256"] >= 45 and report["by_kind"]["path"] >= 100
    assert report["by_kind"]["filename_regex"] > 3000 and report["by_kind"]["ip"] > 10
    assert report["yara_rules"] == 8
