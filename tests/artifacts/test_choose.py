"""``choose``'s head marks skip the content sniffs only where none of them could claim the file."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from exhunt.artifacts import choose, choose_by_sniffing, may_be_content_claimed
from exhunt.artifacts.files import HEAD_BYTES
from tests.conftest import shared_path

# pieces of real heads: every artifact's markers, in other letter cases, with separators around them
PIECES = [
    b"#Software: Microsoft Internet Information Services 10.0", b"#Software: Microsoft Exchange Server",
    b"#Version: 15.01.2507.006", b"#Fields: date time s-ip cs-method", b"#fields:", b"#SOFTWARE:",
    b"#Log-type: HttpProxy Logs", b'{"Event":{"System":{"EventID":4688}}}', b'{"winlog":{"event_id":1}}',
    b'[{"Identity":"x","MailboxOwnerUPN":"a@b"}]', b"TimeCreated,Id,ProviderName,Message",
    b"Date and Time\tEvent ID\tSource", b"EventId;TimeCreated;LogName", b"1234", b"RECEIVE",
    b"MailboxOwnerUPN,LogonType,LastAccessed", b"<SearchResults>", b"<Event ", b"<?xml version=\"1.0\"?>",
    b'<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">',
    b'<Obj RefId="0"><TN RefId="0"><T>Microsoft.Exchange.Data.Directory.Management.ExchangeServer</T>',
    b'<S N="AdminDisplayVersion">Version 15.1 (Build 2507.6)</S>', b'#TYPE Microsoft.Exchange.Data.Mailbox',
    b'"Identity","ForwardingSmtpAddress","DeliverToMailboxAndForward"', b"ElfFile\x00", b"\xef\xbb\xbf",
    b"\xff\xfe", b"\xfe\xff", b"\x00", b"\n", b"\r\n", b"\r", b" ", b"\t", b",", b";", b"{", b"[", b"<", b'"',
    b'<%@ Page Language="C#" %>', b"<html><body>", b"\xe2\x84\xaa", b"\xc4\xb0", b"\x85", b"\xff",
]
PATHS = ["inetpub/logs/logfiles/w3svc1/u_ex230101.log", "v15/logging/httpproxy/owa/x.log",
         "v15/logging/oabgeneratorlog/oab.log", "export.csv", "export.json", "a/b/page.aspx", "web.config",
         "x.evtx", "readme.txt"]


def test_marks_only_skip_what_no_sniff_claims() -> None:
    """Every head built from the pieces: the shortcut and asking every artifact agree."""

    @settings(max_examples=3000, deadline=None)
    @given(st.lists(st.sampled_from(PIECES), max_size=12), st.sampled_from(PATHS),
           st.sampled_from([lambda b: b, bytes.upper, bytes.lower]))
    def check(pieces: list[bytes], path: str, case) -> None:  # type: ignore[no-untyped-def]
        head = case(b"".join(pieces))[:HEAD_BYTES]
        assert choose(path, head) is choose_by_sniffing(path, head)

    check()


def test_real_heads_agree_and_pages_take_the_shortcut() -> None:
    """The shared reference files (logs, exports, EVTX, pages, shells): the same artifact either way,
    every content-sniffing artifact claims some of them, and plain pages skip the sniffs."""
    root = shared_path()
    claimed: set[str] = set()
    shortcut = 0
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
        rel = path.relative_to(root).as_posix().lower()
        chosen = choose_by_sniffing(rel, head)
        assert choose(rel, head) is chosen, rel
        claimed.add(chosen.name if chosen else "")
        if rel.endswith(".aspx") and "benign" in rel:
            shortcut += not may_be_content_claimed(head)
    assert {"iis", "exchange_log", "evtx", "webroot"} <= claimed
    assert shortcut >= 100  # the benign ASPX pages: no sniff asked


def test_utf16_and_binary_heads_ask_every_sniff() -> None:
    head = "#Fields: date time\r\n".encode("utf-16")
    assert may_be_content_claimed(head) and may_be_content_claimed(b"MZ\x90\x00\x03")
    assert choose("u_ex1.log", head) is choose_by_sniffing("u_ex1.log", head)
