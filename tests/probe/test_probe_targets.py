from __future__ import annotations

from pathlib import Path

import pytest

from exhunt.errors import UsageError
from exhunt.probe.targets import Target, collect_targets, parse_target


@pytest.mark.parametrize(("text", "origin"), [
    ("mail.example.org", "https://mail.example.org"),
    ("MAIL.Example.org:8443", "https://mail.example.org:8443"),
    ("mail.example.org:80", "http://mail.example.org"),
    ("http://mail.example.org:8080/", "http://mail.example.org:8080"),
    ("https://gw.example.org/exchange/?x=1#frag", "https://gw.example.org/exchange"),
    ("10.0.0.5", "https://10.0.0.5"),
    ("10.0.0.5:444", "https://10.0.0.5:444"),
    ("::1", "https://[::1]"),
    ("[::1]:8443", "https://[::1]:8443"),
    ("https://[2001:db8::1]/", "https://[2001:db8::1]"),
])
def test_single_targets(text: str, origin: str) -> None:
    (target,) = parse_target(text)
    assert target.origin == origin


@pytest.mark.parametrize("text", [
    "ftp://mail.example.org", "mail.example.org:99999", "user:pw@mail.example.org", "bad host",
    "mail.example.org/owa", "https://", "-", "a..b",
    "127.0.0.1:0", "http://mail.example.org:0/", "http://mail.example.org/a b/", "https://mail.example.org/é",
    "http://[::1", "[::1:443",
])
def test_bad_targets_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        list(parse_target(text))


def test_ranges_need_explicit_permission() -> None:
    with pytest.raises(UsageError, match="--allow-ranges"):
        list(parse_target("192.0.2.0/30"))
    assert [t.host for t in parse_target("192.0.2.0/30", allow_ranges=True)] == ["192.0.2.1", "192.0.2.2"]
    assert [t.host for t in parse_target("192.0.2.7/32", allow_ranges=True)] == ["192.0.2.7"]


def test_ranges_are_capped() -> None:
    with pytest.raises(UsageError, match="limit"):
        list(parse_target("10.0.0.0/8", allow_ranges=True))


def test_targets_file_comments_dedupe_and_location(tmp_path: Path) -> None:
    listing = tmp_path / "targets.txt"
    listing.write_text("# estate\nmail.example.org  # primary\n\nhttps://mail.example.org:443/\n10.0.0.9:8443\n",
                       encoding="utf-8")
    targets = collect_targets(["10.0.0.9:8443", "owa.example.org"], [listing])
    assert [t.origin for t in targets] == ["https://10.0.0.9:8443", "https://owa.example.org",
                                           "https://mail.example.org"]
    listing.write_text("ok.example.org\nnot a host\n", encoding="utf-8")
    with pytest.raises(UsageError) as exc:
        collect_targets([], [listing])
    assert f"{listing}:2" in str(exc.value)


def test_missing_targets_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        collect_targets([], [tmp_path / "nope.txt"])


def test_url_building_keeps_base_path() -> None:
    assert Target("https", "gw", 443, "/exchange").url("/owa/auth/logon.aspx") == \
        "https://gw/exchange/owa/auth/logon.aspx"


def test_ranges_add_up_to_one_cap(tmp_path: Path) -> None:
    """Forty /16 lines are 2.6 million targets: the run's total has the limit one range has."""
    from exhunt.probe.targets import collect_targets

    listing = tmp_path / "t.txt"
    listing.write_text("".join(f"10.{i}.0.0/16\n" for i in range(40)))
    with pytest.raises(UsageError, match="targets in all"):
        collect_targets([], [listing], allow_ranges=True)
