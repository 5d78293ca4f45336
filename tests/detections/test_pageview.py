"""The normalised page view, step by step: text in, view out (data-driven), plus the trigger and caps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exhunt.detections.pagescan import worth_normalising
from exhunt.detections.pageview import MAX_VIEW_BYTES, TECHNIQUES, normalise

# name: (file name, page, expected view, steps reported)
VIEWS: dict[str, tuple[str, bytes, bytes, tuple[str, ...]]] = {
    "hex": ("a.aspx", b'<% x = "\\x65\\x76al"; %>', b'<% x = "eval"; %>', ("hex escapes",)),
    "unicode": ("a.aspx", b"<% Pro\\u0063ess %>", b"<% Process %>", ("unicode escapes",)),
    "percent unicode": ("a.aspx", b'<% unescape("%u0065val") %>', b'<% "eval" %>', ("unicode escapes",)),
    "hex entity": ("a.aspx", b'<% x = "&#x65;v&#X61;l" %>', b'<% x = "eval" %>', ("HTML entities",)),
    "decimal entity": ("a.aspx", b'<% x = "&#101&#118;al" %>', b'<% x = "eval" %>', ("HTML entities",)),
    "percent": ("a.aspx", b'<% x = "%65%76al" %>', b'<% x = "eval" %>', ("percent escapes",)),
    "concatenation": ("a.aspx", b'<% x = "e" +\r\n "v" + @"al" %>', b'<% x = "eval" %>', ("concatenation",)),
    "vb concatenation": ("a.asp", b'<% x = "e" & "val" %>', b'<% x = "eval" %>', ("concatenation",)),
    "block comment": ("a.aspx", b"<% a/* x */.b %>", b"<% a.b %>", ("block comments",)),
    "server comment": ("a.aspx", b"<% a<%-- x --%>.b %>", b"<% a.b %>", ("server comments",)),
    "line comment": ("a.aspx", b"<% a // x\n.b %>", b"<% a \n.b %>", ("line comments",)),
    "line comment after a url": ("a.aspx", b'<% u = "http://x"; a // x\r\n.b %>', b'<% u = "http://x"; a \r\n.b %>',
                                 ("line comments",)),
    "vb comment and continuation": ("a.asp", b"<% a _ ' x\r\n b %>", b"<% a   b %>",
                                    ("line comments", "line continuations")),
    "chr": ("a.asp", b'<% x = Chr(101) & ChrW(&H76) & "al" %>', b'<% x = "eval" %>', ("char codes", "concatenation")),
    "fromCharCode": ("a.aspx", b"<% x = String.fromCharCode(101,118,97,108) %>", b'<% x = "eval" %>',
                     ("char codes",)),
    "char cast": ("a.aspx", b"<% x = (char)101 %>", b"<% x = 'e' %>", ("char codes",)),
    "char array": ("a.aspx", b"<% x = new string(new char[] { 'e', 'v', 'a', 'l' }) %>", b'<% x = "eval" %>',
                   ("char codes",)),
    "vb char array": ("a.aspx", b'<% x = New Char() {"e"c, "v"c} %>', b'<% x = "ev" %>', ("char codes",)),
    "base64 call": (
        "a.aspx", b'<% x = System.Text.Encoding.UTF8.GetString(System.Convert.FromBase64String("ZXZhbA==")) %>',
        b'<% x = "eval" %>', ("base64",)),
    "base64 utf-16": ("a.aspx", b'<% x = Encoding.Unicode.GetString(Convert.FromBase64String("ZQB2AGEAbAA=")) %>',
                      b'<% x = "eval" %>', ("base64",)),
    "base64 literal": ("a.aspx", b'<% s = "ZXZhbChSZXF1ZXN0KQ=="; Convert.FromBase64String(s) %>',
                       b'<% s = "eval(Request)"; Convert.FromBase64String(s) %>', ("base64",)),
    "StrReverse": ("a.asp", b'<% x = StrReverse("lave") %>', b'<% x = "eval" %>', ("reversed strings",)),
    "js reverse": ("a.aspx", b"<% x = 'lave'.split('').reverse().join('') %>", b"<% x = 'eval' %>",
                   ("reversed strings",)),
    "linq reverse": ("a.aspx", b'<% x = new string("lave".Reverse().ToArray()) %>', b'<% x = "eval" %>',
                     ("reversed strings",)),
    "Array.Reverse": ("a.aspx", b'<% c = "lave".ToCharArray(); Array.Reverse(c); %>',
                      b'<% c = "eval".ToCharArray(); Array.Reverse(c); %>', ("reversed strings",)),
}
KEPT = {
    "decoded quote stays escaped": b'<% x = "\\x22\\x65" %>',
    "url is not a comment": b'<% x = "http://example.org/a"; y = "//cdn" %>',
    "quote inside a VB string": b'<%@ Page Language="VB" %><% x = "it\'s" %>',
    "unclosed comment": b"<% a /* never closed %> b",
    "entity of a non-ASCII character": b"<p>&#160;&#169;</p><% x %>",
    "binary base64": b'<% b = Convert.FromBase64String("AAECAwQFBgc=") %>',
}


@pytest.mark.parametrize("case", sorted(VIEWS))
def test_each_step_undoes_its_technique(case: str) -> None:
    rel, page, view, steps = VIEWS[case]
    result = normalise(page, rel)
    assert (result.data, result.undone) == (view, steps)
    assert set(steps) <= set(TECHNIQUES)


def test_quotes_and_strings_are_kept() -> None:
    assert normalise(KEPT["decoded quote stays escaped"]).data == b'<% x = "\\x22e" %>'
    for case in ("url is not a comment", "quote inside a VB string", "unclosed comment",
                 "entity of a non-ASCII character", "binary base64"):
        assert normalise(KEPT[case]).data == KEPT[case], case


def test_a_step_can_be_left_out() -> None:
    _rel, page, _view, _steps = VIEWS["chr"]
    assert normalise(page, "a.asp", frozenset({"concatenation"})).data == b'<% x = "e" & "v" & "al" %>'


@pytest.mark.parametrize(
    "page",
    [
        b'<%@ Page Language="C#" %><% /* load */ Response.Write(Request.Form["a"]); // done\r\n %>',
        b'<%@ Page %><p>&#169; &#160; <a href="x%20y.aspx">x</a></p><%-- note --%>',
        b"<html><script>var s = '\\x65' + 'val';</script></html>",  # no server code
    ],
)
def test_trigger_skips_pages_with_nothing_to_undo(page: bytes) -> None:
    assert not worth_normalising(page)


def test_work_is_capped() -> None:
    page = b'<% x = "\\x65val" %>' + b"a" * (MAX_VIEW_BYTES + 10)
    assert len(normalise(page).data) <= MAX_VIEW_BYTES


ALPHABET = st.sampled_from([b"\\x", b"\\u00", b"%u00", b"&#x", b"&#", b"%", b"41", b"65", b"6c", b"22", b"5c", b"0",
                            b'"', b"'", b"+", b"&", b" ", b"\r\n", b"_", b"/*", b"*/", b"//", b"<%--", b"--%>", b"<%",
                            b"Chr(", b"ChrW(&H", b")", b"(char)", b"new char[]{", b"'e'", b",", b"}",
                            b"String.fromCharCode(",
                            b"Convert.FromBase64String(", b"ZXZhbA==", b"StrReverse(", b".Reverse().ToArray()",
                            b"Array.Reverse(", b".ToCharArray()", b"unescape(", b"Server.HtmlDecode(", b"e", b"\xff"])


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=60), st.sampled_from(["a.aspx", "a.asp"]))
def test_any_page_normalises_without_error_and_never_grows(parts: list[bytes], rel: str) -> None:
    page = b"".join(parts)
    view = normalise(page, rel)
    assert len(view.data) <= len(page)
    assert set(view.undone) <= set(TECHNIQUES)
    worth_normalising(page)
