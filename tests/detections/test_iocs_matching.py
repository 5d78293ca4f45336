"""IOC lists against evidence end to end: each indicator written as a responder's list writes it,
each log row as IIS, HttpProxy or the Security log writes it; the findings must be the same in the
default triage and with ``--index full`` (an indicator the prefilter cannot see is a miss)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from exhunt.api import ScanOptions, scan
from exhunt.detections.iocs.model import ip_texts, ip_value, refang

V15 = "C/Program Files/Microsoft/Exchange Server/V15/"
IIS_HEAD = (
    "#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n#Date: 2021-03-03 00:00:00\r\n"
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
    "cs(Referer) sc-status sc-substatus sc-win32-status time-taken\r\n"
)
XFF_HEAD = (
    "#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n#Date: 2021-03-03 00:00:00\r\n"
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
    "sc-status sc-substatus sc-win32-status time-taken X-Forwarded-For\r\n"
)
PROXY_HEAD = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: HttpProxy Logs\r\n"
    "#Fields: DateTime,RequestId,Protocol,UrlStem,AnchorMailbox,UserAgent,ClientIpAddress,HttpStatus,Method,"
    "UrlQuery\r\n"
)


def _iis(second: int, client: str, query: str = "-", agent: str = "Mozilla/5.0", referer: str = "-") -> str:
    return f"2021-03-03 01:00:{second:02d} 10.0.0.1 GET /owa/ {query} 443 - {client} {agent} {referer} 200 0 0 1\r\n"


def _logon(record: int, address: str) -> bytes:
    return orjson.dumps({"Event": {
        "System": {"Provider": {"@Name": "Microsoft-Windows-Security-Auditing"}, "EventID": {"#text": "4624"},
                   "TimeCreated": {"@SystemTime": "2021-03-03T10:00:00Z"}, "EventRecordID": str(record),
                   "Channel": "Security", "Computer": "exch01"},
        "EventData": {"Data": [{"@Name": "TargetUserName", "#text": "alice"},
                               {"@Name": "IpAddress", "#text": address}]},
    }}) + b"\n"


# (indicator as the list writes it, the address as the log writes it, where)
IP_CASES = {
    "IIS c-ip IPv4-mapped": ("198.51.100[.]1", "::ffff:198.51.100.1", "iis"),
    "IIS c-ip, the list's IPv6 in full": ("2001:0DB8:0000:0000:0000:0000:0000:0005", "2001:db8::5", "iis"),
    "IIS c-ip, the list's IPv6 upper-case": ("2001:DB8::6", "2001:db8::6", "iis"),
    "IIS c-ip in a CIDR range": ("192.0.2.0/24", "192.0.2.20", "iis"),
    "IIS c-ip in an IPv6 range": ("2001:db8:77::/48", "2001:db8:77::9", "iis"),
    "IIS c-ip with a zone": ("fe80::1", "fe80::1%12", "iis"),
    "the list's address with a port": ("203.0.113.44:8443", "203.0.113.44", "iis"),
    "X-Forwarded-For with a port": ("203.0.113.9", "203.0.113.9:51234", "xff"),
    "X-Forwarded-For IPv6 with a port": ("2001:db8::7", "[2001:db8::7]:443", "xff"),
    "HttpProxy ClientIpAddress IPv4-mapped": ("198.51.100.2", "::ffff:198.51.100.2", "proxy"),
    "Security 4624 IpAddress IPv4-mapped": ("198.51.100.4", "::ffff:198.51.100.4", "event"),
}
# (indicator as listed, cs-uri-query, cs(Referer), whether it is a match)
URL_CASES = {
    "URL in a referer, the list defanged": ("hxxp://dl.bad[.]example/payload.ps1", "-",
                                            "http://dl.bad.example/payload.ps1", True),
    "URL %-encoded in a query": ("https://c2.example/a/b", "u=https%3A%2F%2Fc2.example%2Fa%2Fb", "-", True),
    "URL of a bare host, upper case": ("http://Stage.Example/", "-", "http://stage.example:8080/x", True),
    "another host ending the same": ("http://c3.example/z", "u=http://notc3.example/z", "-", False),
    "a longer host starting the same": ("http://c4.example", "u=http://c4.example.net/", "-", False),
    "a longer path name starting the same": ("https://c5.example/a", "u=https%3A%2F%2Fc5.example%2Fabout", "-", False),
    "a file under the listed folder": ("https://c6.example/dir/", "-", "http://c6.example/dir/x.ps1", True),
}
# the client address the parser stores, where it is not the text the log holds (X-Forwarded-For's port)
STORED = {"203.0.113.9:51234": "203.0.113.9", "[2001:db8::7]:443": "2001:db8::7"}


def _evidence(ev: Path) -> None:
    iis, xff, proxy, events = [IIS_HEAD], [XFF_HEAD], [PROXY_HEAD], []
    for n, (_listed, logged, where) in enumerate(IP_CASES.values()):
        if where == "iis":
            iis.append(_iis(n, logged))
        elif where == "xff":
            xff.append(f"2021-03-03 02:00:{n:02d} 10.0.0.1 GET /owa/ - 443 - 10.0.0.254 Mozilla/5.0 200 0 0 1 "
                       f"{logged}\r\n")
        elif where == "proxy":
            proxy.append(f"2021-03-03T03:01:{n:02d}.000Z,r{n},Owa,/owa/auth/y.js,,Mozilla,{logged},200,GET,\r\n")
        else:
            events.append(_logon(n, logged))
    iis.append(_iis(59, "192.0.3.1"))  # outside every range
    for n, (_listed, query, referer, _match) in enumerate(URL_CASES.values()):
        iis.append(_iis(40 + n, "10.1.1.1", query=query, referer=referer))
    files = {
        "inetpub/logs/LogFiles/W3SVC1/u_ex210303.log": "".join(iis).encode(),
        "inetpub/logs/LogFiles/W3SVC2/u_ex210303.log": "".join(xff).encode(),
        V15 + "Logging/HttpProxy/Owa/HttpProxy_2021030302-1.LOG": "".join(proxy).encode(),
        "export/security.json": b"".join(events),
    }
    for rel, data in files.items():
        (ev / rel).parent.mkdir(parents=True, exist_ok=True)
        (ev / rel).write_bytes(data)


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    root = tmp_path_factory.mktemp("iocmatch")
    _evidence(root / "ev")
    listed = [case[0] for case in (*IP_CASES.values(), *URL_CASES.values())]
    (root / "iocs.txt").write_text("".join(f"{value}\n" for value in listed))
    out = {}
    for index in ("triage", "full"):
        options = ScanOptions(out=root / index, quiet=True, jobs=1, iocs=[root / "iocs.txt"], index=index)
        out[index] = [f for f in scan([root / "ev"], options).document.findings if f.check.startswith("ioc.")]
    return out


def _logged(findings: list, check: str) -> set[str]:
    return {v for f in findings if f.check == check for v in f.indicators.get("client_ip", ())}


@pytest.mark.parametrize("index", ["triage", "full"])
@pytest.mark.parametrize("case", sorted(IP_CASES))
def test_ip_indicator_matches_the_client_address_however_written(findings, case: str, index: str) -> None:  # type: ignore[no-untyped-def]
    _listed, logged, _where = IP_CASES[case]
    assert STORED.get(logged, logged) in _logged(findings[index], "ioc.client_ip")


def test_no_address_outside_the_lists(findings) -> None:  # type: ignore[no-untyped-def]
    expected = {STORED.get(logged, logged) for _i, logged, _w in IP_CASES.values()}
    assert _logged(findings["full"], "ioc.client_ip") == expected


def test_triage_and_full_agree(findings) -> None:  # type: ignore[no-untyped-def]
    def key(found: list) -> list:
        return sorted((f.check, orjson.dumps(f.indicators, option=orjson.OPT_SORT_KEYS)) for f in found)

    assert key(findings["triage"]) == key(findings["full"])


@pytest.mark.parametrize(
    "written,value",
    [("::ffff:198.51.100.1", "198.51.100.1"), ("2001:0DB8::0001", "2001:db8::1"), ("[2001:db8::1]:443", "2001:db8::1"),
     ("198.51.100.1:80", "198.51.100.1"), ("198.51.100.7/24", "198.51.100.0/24"), ("198.51.100.7/32", "198.51.100.7"),
     ("2001:db8::/32", "2001:db8::/32"), ("198.51.100.0/33", None), ("not-an-ip", None)],
)
def test_ip_values_are_canonical(written: str, value: str | None) -> None:
    assert ip_value(written) == value


@pytest.mark.parametrize(
    "value,logged,other",
    [("198.51.100.0/24", "198.51.100.77", "198.51.101.77"), ("198.51.100.0/22", "198.51.103.1", "198.51.104.1"),
     ("2001:db8:77::/48", "2001:db8:77::9", "2001:db8:78::9"),
     ("2001:db8::5", "2001:0db8:0000:0000:0000:0000:0000:0005", "2001:db8::6")],
)
def test_prefilter_texts_hold_every_address_of_the_indicator(value: str, logged: str, other: str) -> None:
    texts = ip_texts(value)
    assert any(t in logged for t in texts)
    assert not any(t in other for t in texts)


@pytest.mark.parametrize("index", ["triage", "full"])
@pytest.mark.parametrize("case", sorted(URL_CASES))
def test_url_indicator_matches_a_request_or_referer(findings, case: str, index: str) -> None:  # type: ignore[no-untyped-def]
    listed, _query, _referer, match = URL_CASES[case]
    urls = {f.key for f in findings[index] if f.check == "ioc.url"} | {
        v for f in findings[index] if f.check == "ioc.url" for v in f.indicators.get("url", ())}
    assert (refang(listed) in urls) is match
