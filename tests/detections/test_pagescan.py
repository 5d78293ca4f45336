"""Obfuscated pages: one fixture per technique, written here. Each is missed by exhunt's rules on its
raw bytes and caught on its normalised view, and the finding names the obfuscation undone."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from exhunt.detections.pagescan import ENGINE, _may_trigger, _worth, view_rows, worth_normalising
from exhunt.detections.pageview import normalise
from exhunt.detections.yara import FileScanner, load_rules
from tests.conftest import SHARED, shared_path

JS = '<%@ Page Language="JScript" %>'
CS = '<%@ Page Language="C#" %>'
RUN = ', new object[] { "cmd.exe", "/c " + Request.Form["c"] })'
PROCESS = "exhunt_webshell_process_from_page"
EVAL = "exhunt_webshell_eval_request"
REFLECT = "exhunt_webshell_reflection_by_name"
LOADER = "exhunt_webshell_assembly_loader"
# name: (file name, page, rule the view must match, obfuscation the match needed)
CASES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "hex escape hides eval": ("a.aspx", JS + '<% this["\\x65val"](Request.Item["z"], "unsafe"); %>', EVAL,
                              ("hex escapes",)),
    "unicode escapes in identifiers": (
        "a.aspx", CS + '<% System.Diagnostics.Pro\\u0063ess.St\\u0061rt("cmd.exe", "/c " + Request.Form["c"]); %>',
        PROCESS, ("unicode escapes",)),
    "unicode escape hides Request": (
        "a.aspx", CS + '<% System.Diagnostics.Process.Start("cmd.exe", "/c " + Re\\u0071uest.Form["c"]); %>',
        PROCESS, ("unicode escapes",)),
    "unicode escape hides Assembly.Load": (
        "a.aspx", CS + '<% byte[] c = Request.BinaryRead(Request.ContentLength); System.Reflection.Assembly'
        ".Lo\\u0061d(new System.Security.Cryptography.RijndaelManaged().CreateDecryptor(k, k)"
        '.TransformFinalBlock(c, 0, c.Length)).CreateInstance("U"); %>', LOADER, ("unicode escapes",)),
    "hex HTML entity in a type name": (
        "a.aspx", CS + '<% Type.GetType(HttpUtility.HtmlDecode("System.Diagnostics.&#x50;rocess"))'
        '.GetMethod("Start", new[] { typeof(string), typeof(string) }).Invoke(null' + RUN + "; %>",
        REFLECT, ("HTML entities",)),
    "decimal HTML entity hides eval": (
        "a.aspx", JS + '<% this[Server.HtmlDecode("ev&#97;l")](Request.Item["z"], "unsafe"); %>', EVAL,
        ("HTML entities",)),
    "percent escapes hide eval": (
        "a.aspx", JS + '<% this[unescape("%65v%61l")](Request.Item["z"], "unsafe"); %>', EVAL,
        ("percent escapes",)),
    "concatenation with +": ("a.aspx", JS + '<% this["e" + "va" + "l"](Request.Item["z"], "unsafe"); %>', EVAL,
                             ("concatenation",)),
    "concatenation with & across lines": (
        "a.asp", '<% Set s = CreateObject("WScript." &\r\n    "Shell")\r\ns.Run "cmd /c " & Request("c") %>',
        PROCESS, ("concatenation",)),
    "VB line continuation between tokens": ("a.asp", '<% Execute _\r\n    Request("c") %>', EVAL,
                                            ("line continuations",)),
    "block comment between tokens": (
        "a.aspx", CS + '<% System.Diagnostics.Process/* - */.Start("cmd.exe", "/c " + Request.Form["c"]); %>',
        PROCESS, ("block comments",)),
    "line comment between tokens": (
        "a.aspx", CS + '<% System.Diagnostics.Process // start\r\n    .Start("cmd.exe", "/c " + Request.Form["c"]); %>',
        PROCESS, ("line comments",)),
    "VB comment after a continuation": ("a.asp", "<% Execute _ ' run it\r\n    (Request(\"c\")) %>", EVAL,
                                        ("line comments", "line continuations")),
    "server comment between tokens": ("a.aspx", '<% eval<%-- x --%>(Request.Item["z"], "unsafe"); %>', EVAL,
                                      ("server comments",)),
    "char array": (
        "a.aspx", CS + "<% Type.GetType(\"System.Diagnostics.\" + new string(new char[] { 'P', 'r', 'o', 'c', 'e', "
        "'s', 's' })).GetMethod(\"Start\", new[] { typeof(string), typeof(string) }).Invoke(null" + RUN + "; %>",
        REFLECT, ("char codes", "concatenation")),
    "Chr codes": (
        "a.asp", '<% Set s = CreateObject(Chr(87) & Chr(83) & "cript.Shell") : s.Run "cmd /c " & Request("c") %>',
        PROCESS, ("char codes", "concatenation")),
    "String.fromCharCode": (
        "a.aspx", JS + '<% this[String.fromCharCode(101, 118, 97, 108)](Request.Item["z"], "unsafe"); %>', EVAL,
        ("char codes",)),
    "Base64 type name": (
        "a.aspx", CS + "<% Type.GetType(System.Text.Encoding.UTF8.GetString(Convert.FromBase64String("
        '"U3lzdGVtLkRpYWdub3N0aWNzLlByb2Nlc3M="))).GetMethod("Start", new[] { typeof(string), typeof(string) })'
        ".Invoke(null" + RUN + "; %>", REFLECT, ("base64",)),
    "Base64 literal in a variable": (
        "a.aspx", CS + '<% string t = "U3lzdGVtLkRpYWdub3N0aWNzLlByb2Nlc3M="; var p = Type.GetType('
        "Encoding.ASCII.GetString(Convert.FromBase64String(t))); p.GetMethod(\"Start\", new[] { typeof(string), "
        "typeof(string) }).Invoke(null" + RUN + "; %>", REFLECT, ("base64",)),
    "StrReverse": (
        "a.asp", '<% Set s = CreateObject(StrReverse("llehS.tpircSW")) : s.Run "cmd /c " & Request("c") %>',
        PROCESS, ("reversed strings",)),
    "Array.Reverse": (
        "a.aspx", CS + '<% char[] n = "ssecorP.scitsongaiD.metsyS".ToCharArray(); Array.Reverse(n); '
        'Type.GetType(new string(n)).GetMethod("Start", new[] { typeof(string), typeof(string) }).Invoke(null'
        + RUN + "; %>", REFLECT, ("reversed strings",)),
    "Activator.CreateInstance of a joined name": (
        "a.aspx", CS + '<% var p = Activator.CreateInstance(Type.GetType("System.Diagnostics.Pro" + "cess")); '
        'p.GetType().GetMethod("Start", new Type[0]).Invoke(p, null); Response.Write(Request.Form["c"]); %>',
        REFLECT, ("concatenation",)),
}


@pytest.fixture(scope="module")
def scanner(tmp_path_factory: pytest.TempPathFactory) -> FileScanner:
    return FileScanner(load_rules(cache=tmp_path_factory.mktemp("cache")).blob)


def _own(rows: list[dict]) -> list[str]:
    return [r["rule"] for r in rows if r["namespace"].startswith("exhunt.")]


@pytest.mark.parametrize("case", sorted(CASES))
def test_raw_scan_misses_and_the_normalised_view_catches(scanner: FileScanner, case: str) -> None:
    rel, page, rule, needed = CASES[case]
    data = page.encode()
    raw = scanner.scan(data, rel, "h", "0")
    assert _own(raw) == [], "the raw bytes must not be flagged already"
    assert worth_normalising(data)
    rows = view_rows(scanner, rel, "h", "0", data, raw)
    by_rule = {r["rule"]: r for r in rows}
    assert rule in by_rule, normalise(data, rel).data
    assert by_rule[rule]["engine"] == ENGINE
    assert tuple(orjson.loads(by_rule[rule]["meta"])["undone"]) == needed


@pytest.mark.parametrize(
    "page",
    [
        CS + '<% Response.Write("<b>" + "</b>"); /* layout */ %><p>&#169; 2024 &#160;<a href="a%20b.htm">x</a></p>',
        JS + '<% var s = unescape("%48%65llo"); Response.Write(s + Request.Item["n"]); %>',
        '<% Response.Write(Chr(72) & Chr(105) & " " & Request("name")) %>',
        CS + '<% var b = Convert.FromBase64String("SGVsbG8gd29ybGQ="); Response.BinaryWrite(b); %>',
    ],
)
def test_benign_obfuscation_shaped_pages_stay_quiet(scanner: FileScanner, page: str) -> None:
    data = page.encode()
    assert view_rows(scanner, "b.aspx", "h", "0", data, scanner.scan(data, "b.aspx", "h", "0")) == []


def test_only_pages_are_normalised(scanner: FileScanner) -> None:
    _rel, page, _rule, _needed = CASES["hex escape hides eval"]
    data = page.encode()
    assert view_rows(scanner, "notes.txt", "h", "0", data, []) == []


def test_a_rule_the_raw_bytes_matched_is_not_reported_again(scanner: FileScanner) -> None:
    both = '<% eval(Request.Item["a"], "unsafe"); this["e" + "va" + "l"](Request.Item["z"], "unsafe"); %>'
    data = (JS + both).encode()
    raw = scanner.scan(data, "a.aspx", "h", "0")
    assert EVAL in _own(raw)
    assert view_rows(scanner, "a.aspx", "h", "0", data, raw) == []


def _pages(*parts: str) -> list[Path]:
    return sorted(p for p in shared_path(*parts).rglob("*") if p.is_file() and p.name not in ("LICENSE", "COPYING"))


def test_no_shared_benign_page_is_flagged_in_either_view(scanner: FileScanner) -> None:
    flagged = {}
    for path in _pages("benign", "aspx"):
        data = path.read_bytes()
        raw = scanner.scan(data, path.name, "h", "0")
        rows = raw + view_rows(scanner, path.name, "h", "0", data, raw)
        if _own(rows):
            flagged[path.name] = _own(rows)
    assert flagged == {}


def test_every_shared_web_shell_is_still_flagged(scanner: FileScanner) -> None:
    missed = []
    for path in _pages("webshells"):
        data = path.read_bytes()
        raw = scanner.scan(data, path.name, "h", "0")
        if not _own(raw + view_rows(scanner, path.name, "h", "0", data, raw)):
            missed.append(path.name)
    assert missed == []


def test_user_packs_do_not_run_over_the_view(tmp_path: Path) -> None:
    (tmp_path / "user.yar").write_text('rule user_eval { strings: $a = "this[\\"eval\\"]" condition: $a }\n')
    scanner = FileScanner(load_rules([tmp_path / "user.yar"], cache=tmp_path / "cache").blob)
    _rel, page, rule, _needed = CASES["concatenation with +"]
    data = page.encode()
    raw = scanner.scan(data, "a.aspx", "h", "0")
    assert [r["rule"] for r in view_rows(scanner, "a.aspx", "h", "0", data, raw)] == [rule]


def test_no_shared_benign_page_triggers_the_normaliser() -> None:
    """The trigger is what keeps the view cheap: ordinary pages must not pay for a normalisation."""
    assert [p.name for p in _pages("benign", "aspx") if worth_normalising(p.read_bytes())] == []


SHAPES = [
    (CS + '<% var sql = "SELECT a FROM t\\n" +\r\n    "WHERE b = 1"; %>', False),  # a long string split
    (CS + '<% var t = "System.Diagnostics.Pro" + "cess"; %>', True),  # glued mid-word
    (CS + '<% var u = "http://example.org/";\r\n(function () {})(); %>', False),
    (CS + '<% var u = "http://example.org/"; Process // a link\r\n.Start(u); %>', True),
    (CS + "<% var c = (char) (i + 'a'); %>", False),  # a cast of an expression, not of a code
    (CS + "<% var c = (char)101; %>", True),
]


@pytest.mark.parametrize("page,worth", SHAPES)
def test_trigger_shapes(page: str, worth: bool) -> None:
    assert worth_normalising(page.encode()) is worth


def _gate_pages() -> list[bytes]:
    pages = [page.encode() for _, page, _, _ in CASES.values()]
    pages += [page.encode() for page, _ in SHAPES]
    pages += [p.swapcase() for p in pages]  # the gate is caseless, the exact test lower-cases
    for folder in (("benign", "aspx"), ("webshells",)):
        if (SHARED / Path(*folder)).is_dir():
            pages += [p.read_bytes() for p in sorted((SHARED / Path(*folder)).rglob("*")) if p.is_file()]
    return pages


def test_the_gate_is_a_necessary_condition_of_the_trigger() -> None:
    """The Hyperscan gate in front of the trigger never drops a page the exact test takes, and it
    does drop ordinary pages (else it would cost without saving)."""
    pages = _gate_pages()
    assert [worth_normalising(p) for p in pages] == [_worth(p) for p in pages]
    assert sum(map(_worth, pages)) >= len(CASES)
    assert not _may_trigger((CS + '<html><body><%= DateTime.Now %> // ok</body></html>').encode())


@pytest.mark.parametrize("form", ["utf-16 with bom", "utf-16-le", "utf-16-be with bom"])
def test_every_shared_web_shell_saved_as_utf16_is_flagged(scanner: FileScanner, form: str) -> None:
    """IIS serves a page saved as UTF-16; exhunt's rules, written for a page's bytes, matched none
    of the shared shells saved that way. The page's UTF-8 text is scanned, and the finding says so."""
    encode = {"utf-16 with bom": lambda t: b"\xff\xfe" + t.encode("utf-16-le"),
              "utf-16-le": lambda t: t.encode("utf-16-le"),
              "utf-16-be with bom": lambda t: b"\xfe\xff" + t.encode("utf-16-be")}[form]
    missed = []
    for path in _pages("webshells"):
        data = encode(path.read_bytes().decode("utf-8", errors="replace"))
        raw = scanner.scan(data, path.name, "h", "0")
        rows = view_rows(scanner, path.name, "h", "0", data, raw)
        if not _own(raw + rows):
            missed.append(path.name)
        assert all("utf-16" in orjson.loads(r["meta"])["undone"] for r in rows if r["engine"] == ENGINE)
    assert missed == []
