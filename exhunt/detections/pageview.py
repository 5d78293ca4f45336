"""A normalised view of a server page: the obfuscation web shells use, undone, so that exhunt's own
rules see ``Process.Start(`` where the page wrote ``Pro\\u0063ess/**/.St\\x61rt(``.

Each step is a few compiled-regex passes over bytes (callbacks run per match, never per byte), in
a fixed order: comments and VB line continuations go first (they sit between tokens), then escapes
are decoded (``\\x61``, ``\\u0061``, ``&#x61;``, ``&#97;``, ``%61``), character codes become literals
(``Chr(101)``, ``String.fromCharCode(101)``, ``(char)101``, ``new char[]{'e','v'}``), adjacent
literals are joined (``"ev" + "al"``, ``"ev" & "al"``), Base64 literals that decode to text are
decoded and reversed literals un-reversed (``StrReverse``, ``Array.Reverse``, ``split("").reverse()``).
Last, a decoder call around a single literal (``unescape("eval")``, ``Server.HtmlDecode("...")``)
becomes that literal. A decoded byte that would end a literal or is not printable stays escaped.

Whitespace is kept, not removed: the rules already allow any whitespace between tokens, and
removing it would join words (``Execute Request`` -> ``ExecuteRequest``) and the line ends that the
VBScript rules read. Only the first ``MAX_VIEW_BYTES`` of a page are normalised.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_VIEW_BYTES = 1 << 20
MAX_BASE64_LITERALS = 256
WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

# Python's re scans fast for a literal first byte and slowly for a leading group or class, so every
# pattern here starts with a literal; what must precede it is checked on the byte before the match.
# Escapes are decoded only to printable ASCII other than " ' \ (a decoded quote would end a literal):
SAFE = rb"(?:2[013-689a-fA-F]|[346][0-9a-fA-F]|5[0-9abd-fABD-F]|7[0-9a-eA-E])"
SAFE_DEC = rb"0*(?:3[235-8]|4[0-9]|[5-8][0-9]|9[013-9]|1[01][0-9]|12[0-6])"
@dataclass(frozen=True)
class PageView:
    data: bytes
    undone: tuple[str, ...]  # names of the steps that changed something, in order


# --- helpers -----------------------------------------------------------------------------------------

StepFn = Callable[[bytes, bool], tuple[bytes, int]]  # (page, is VB) -> (page, changes made)
UNSAFE = re.compile(rb"[^\x20-\x7e]|[\"'\\]")
TEXT = re.compile(rb"[\t\r\n\x20-\x7e]{4,}\Z")
Edit = tuple[int, int, bytes] | None  # replace data[start:end] with bytes; None keeps the match


def _edit(data: bytes, pattern: re.Pattern[bytes], edit: Callable[[re.Match[bytes]], Edit]) -> tuple[bytes, int]:
    """Like ``subn``, but an edit may reach before the match (a prefix checked on its own)."""
    parts, pos, count = [], 0, 0
    for m in pattern.finditer(data):
        change = edit(m)
        if change is None or change[0] < pos:
            continue
        start, end, text = change
        parts += [data[pos:start], text]
        pos, count = end, count + 1
    return (b"".join(parts) + data[pos:], count) if count else (data, 0)


def _before(data: bytes, pos: int, allowed: frozenset[int]) -> bool:
    return pos > 0 and data[pos - 1] in allowed


def _literal(raw: bytes, original: bytes, quote: bytes = b'"') -> bytes:
    return original if UNSAFE.search(raw) else quote + raw + quote


# --- comments and continuations ----------------------------------------------------------------------


def _cut(data: bytes, start: bytes, end: bytes) -> tuple[bytes, int]:
    """Remove every ``start ... end`` span (one find per span: linear, no backtracking)."""
    parts, pos, count = [], 0, 0
    while (i := data.find(start, pos)) != -1:
        j = data.find(end, i + len(start))
        if j == -1:
            break
        parts.append(data[pos:i])
        pos, count = j + len(end), count + 1
    return (b"".join(parts) + data[pos:], count) if count else (data, 0)


LINE_COMMENT, REST_OF_LINE = re.compile(rb"//"), re.compile(rb"[^\r\n]*")
NOT_COMMENT_AFTER = frozenset(b":\"'\\/*") | WORD  # http://, "//", \\server, a//b
VB_COMMENT = re.compile(rb"'[^\r\n]*")
CONTINUATION = re.compile(rb"_[ \t]*\r?\n")
BLANK = frozenset(b" \t")


def _line_comments(data: bytes, vb: bool) -> tuple[bytes, int]:
    def line_edit(m: re.Match[bytes]) -> Edit:  # every //, so a comment after "http://x" on its line is seen
        if _before(data, m.start(), NOT_COMMENT_AFTER):
            return None
        end = REST_OF_LINE.match(data, m.end())
        return m.start(), end.end() if end else m.end(), b""

    data, n = _edit(data, LINE_COMMENT, line_edit)
    if vb and b"'" in data:
        def vb_edit(m: re.Match[bytes]) -> Edit:  # a ' inside a "string" is not a comment
            line = data.rfind(b"\n", 0, m.start()) + 1
            return None if data.count(b'"', line, m.start()) % 2 else (m.start(), m.end(), b"")

        data, k = _edit(data, VB_COMMENT, vb_edit)
        n += k
    return data, n


def _continuations(data: bytes, vb: bool) -> tuple[bytes, int]:
    return _edit(data, CONTINUATION,
                 lambda m: (m.start(), m.end(), b" ") if _before(data, m.start(), BLANK) else None)


# --- escapes -----------------------------------------------------------------------------------------

HEX = re.compile(rb"\\[xX]" + SAFE + rb"(?:\\[xX]" + SAFE + rb")*")
UNI = re.compile(rb"\\u00" + SAFE + rb"(?:\\u00" + SAFE + rb")*")
PCT_UNI = re.compile(rb"%[uU]00" + SAFE + rb"(?:%[uU]00" + SAFE + rb")*")
PCT = re.compile(rb"%" + SAFE + rb"(?:%" + SAFE + rb")*")
ENT_HEX = re.compile(rb"&#[xX]0*" + SAFE + rb";?(?:&#[xX]0*" + SAFE + rb";?)*")
ENT_DEC = re.compile(rb"&#" + SAFE_DEC + rb";?(?:&#" + SAFE_DEC + rb";?)*")
ENT_PREFIX, DIGITS = re.compile(rb"&#[xX]0*|;"), re.compile(rb"\d+")


def _runs(pattern: re.Pattern[bytes], decode: Callable[[bytes], bytes]) -> StepFn:
    """A step decoding runs of escapes: one C-level conversion per run, never a loop per byte."""
    return lambda data, vb: pattern.subn(lambda m: decode(m[0]), data)


def _from_hex(run: bytes, *prefixes: bytes) -> bytes:
    for prefix in prefixes:
        run = run.replace(prefix, b"")
    return bytes.fromhex(run.decode())


ESCAPE_STEPS: tuple[tuple[str, bytes, StepFn], ...] = (
    ("hex escapes", b"\\x", _runs(HEX, lambda r: _from_hex(r, b"\\x", b"\\X"))),
    ("unicode escapes", b"\\u00", _runs(UNI, lambda r: _from_hex(r, b"\\u00"))),
    ("unicode escapes", b"%u00", _runs(PCT_UNI, lambda r: _from_hex(r.lower(), b"%u00"))),
    ("HTML entities", b"&#x", _runs(ENT_HEX, lambda r: bytes.fromhex(ENT_PREFIX.sub(b"", r).decode()))),
    ("HTML entities", b"&#", _runs(ENT_DEC, lambda r: bytes(map(int, DIGITS.findall(r))))),
    ("percent escapes", b"%", _runs(PCT, lambda r: _from_hex(r, b"%"))),
)

# --- character codes ---------------------------------------------------------------------------------

CHR = re.compile(rb"hr[Ww]?\s*\(\s*(\d{1,3}|&[hH][0-9a-fA-F]{1,2})\s*\)")  # after C/c: Chr( ChrW( chr(
CHR_START = frozenset(b"Cc")
CHAR_CAST = re.compile(rb"\(\s*char\s*\)\s*(\d{1,3})\b")
FROM_CHAR_CODE = re.compile(rb"String\s*\.\s*fromCharCode\s*\(\s*(\d{1,3}(?:\s*,\s*\d{1,3})*)\s*\)")
CS_CHARS = rb"new\s+char\s*\[\s*\]\s*\{\s*('(?:[^'\\\r\n]|\\.)'(?:\s*,\s*'(?:[^'\\\r\n]|\\.)')*)\s*,?\s*\}"
CS_STRING = re.compile(rb"new\s+(?:System\s*\.\s*)?[Ss]tring\s*\(\s*" + CS_CHARS + rb"\s*\)")
CS_ARRAY = re.compile(CS_CHARS)
VB_ARRAY = re.compile(rb"ew\s+[Cc]har\s*\(\s*\)\s*\{\s*(\"[^\"]\"c(?:\s*,\s*\"[^\"]\"c)*)\s*\}")  # after N/n
GATE_CHR, GATE_CAST = re.compile(rb"chrw?\s*\("), re.compile(rb"\(\s*char\s*\)\s*\d")
GATE_ARRAY = re.compile(rb"new\s+char\s*[\[(]")
QUOTED_CHAR = re.compile(rb"'([^'\\\r\n])'|\"([^\"])\"c")


def _code(text: bytes) -> int:
    return (int(text[2:], 16) if text[:1] == b"&" else int(text)) & 0xFF


def _chr(data: bytes, m: re.Match[bytes]) -> Edit:
    start = m.start() - 1
    if start < 0 or data[start] not in CHR_START or _before(data, start, WORD):
        return None
    return start, m.end(), _literal(bytes([_code(m[1])]), data[start:m.end()])


def _vb_array(data: bytes, m: re.Match[bytes]) -> Edit:
    start = m.start() - 1
    if start < 0 or data[start] not in b"Nn":
        return None
    return start, m.end(), _literal(_chars(m[1]), data[start:m.end()])


def _chars(listing: bytes) -> bytes:
    return b"".join(a or b for a, b in QUOTED_CHAR.findall(listing))


def _char_codes(data: bytes, vb: bool) -> tuple[bytes, int]:
    low = data.lower()
    total = 0
    if GATE_CHR.search(low):
        current = data
        data, n = _edit(data, CHR, lambda m: _chr(current, m))
        total += n
    if GATE_CAST.search(low):
        data, n = CHAR_CAST.subn(lambda m: _literal(bytes([int(m[1]) & 0xFF]), m[0], b"'"), data)
        total += n
    if b"fromcharcode" in low:
        data, n = FROM_CHAR_CODE.subn(
            lambda m: _literal(bytes(c & 0xFF for c in map(int, m[1].split(b","))), m[0]), data)
        total += n
    if GATE_ARRAY.search(low):
        for array in (CS_STRING, CS_ARRAY):
            data, n = array.subn(lambda m: _literal(_chars(m[1]), m[0]), data)
            total += n
        current = data
        data, n = _edit(data, VB_ARRAY, lambda m: _vb_array(current, m))
        total += n
    return data, total


# --- literals: concatenation, Base64, reversal, decoder calls ----------------------------------------

CONCAT_DOUBLE, CONCAT_SINGLE = re.compile(rb"\"\s*[+&]\s*@?\""), re.compile(rb"'\s*[+&]\s*'")
FROM_BASE64 = re.compile(rb"FromBase64String\s*\(\s*\"([A-Za-z0-9+/]{4,}={0,2})\"\s*\)")
BASE64_HEAD = re.compile(  # what may precede FromBase64String(: [Encoding.X.GetString(] [System.]Convert.
    rb"((?:System\s*\.\s*)?(?:Text\s*\.\s*)?Encoding\s*\.\s*\w+\s*\.\s*GetString\s*\(\s*)?"
    rb"(?:System\s*\.\s*)?Convert\s*\.\s*\Z", re.I)
CLOSE = re.compile(rb"\s*\)")
BASE64_DOUBLE = re.compile(rb"\"([A-Za-z0-9+/]{8,}={0,2})\"")
BASE64_SINGLE = re.compile(rb"'([A-Za-z0-9+/]{8,}={0,2})'")
STR_REVERSE = re.compile(rb"tr[Rr]everse\s*\(\s*\"([^\"\r\n]*)\"\s*\)")  # after S/s
JS_REVERSE = re.compile(rb"([\"'])([^\"'\r\n]*)\1\s*\.\s*split\s*\(\s*([\"'])\3\s*\)\s*\.\s*reverse\s*\(\s*\)"
                        rb"\s*\.\s*join\s*\(\s*([\"'])\4\s*\)")
LINQ_REVERSE = re.compile(rb"new\s+(?:System\s*\.\s*)?[Ss]tring\s*\(\s*\"([^\"\r\n]*)\"\s*\.\s*Reverse\s*\(\s*\)"
                          rb"\s*\.\s*ToArray\s*\(\s*\)\s*\)")
GATE_JS_REVERSE = re.compile(rb"reverse\s*\(\s*\)\s*\.\s*join")
GATE_LINQ_REVERSE = re.compile(rb"reverse\s*\(\s*\)\s*\.\s*toarray")
ARRAY_REVERSE = re.compile(rb"Array\s*\.\s*Reverse\s*\(")
CHAR_ARRAY_LITERAL = re.compile(rb"\"([^\"\r\n]*)\"(\s*\.\s*ToCharArray\s*\(\s*\))")
DECODER = re.compile(rb"(?:HtmlDecode|UrlDecode|unescape|decodeURIComponent|decodeURI)\s*\(\s*"
                     rb"(\"[^\"\r\n]*\"|'[^'\r\n]*')\s*\)")
GATE_DECODE = re.compile(rb"decode(?:uricomponent|uri)?\s*\(\s*[\"']")
GATE_UNESCAPE = re.compile(rb"unescape\s*\(\s*[\"']")
DECODER_HEAD = re.compile(rb"(?:(?:System\s*\.\s*Web\s*\.\s*)?HttpUtility|Server)\s*\.\s*\Z")


def _concatenation(data: bytes, vb: bool) -> tuple[bytes, int]:
    data, n = CONCAT_DOUBLE.subn(b"", data)
    data, k = CONCAT_SINGLE.subn(b"", data)
    return data, n + k


def _base64_text(b64: bytes) -> bytes | None:
    if len(b64) % 4:
        return None
    try:
        raw = binascii.a2b_base64(b64, strict_mode=True)
    except binascii.Error:
        return None
    if len(raw) >= 8 and not raw[1::2].strip(b"\x00"):  # UTF-16LE text
        raw = raw[0::2]
    return raw if TEXT.match(raw) else None


def _base64_call(data: bytes, m: re.Match[bytes]) -> Edit:
    text = _base64_text(m[1])
    head = BASE64_HEAD.search(data, max(0, m.start() - 120), m.start())
    if text is None or head is None:
        return None
    end = m.end()
    if head[1]:  # Encoding.X.GetString( ... ): take its closing parenthesis too
        close = CLOSE.match(data, end)
        if close is None:
            return None
        end = close.end()
    return head.start(), end, b'"' + text + b'"'


def _base64(data: bytes, vb: bool) -> tuple[bytes, int]:
    if b"frombase64string" not in data.lower():
        return data, 0
    current = data
    data, total = _edit(data, FROM_BASE64, lambda m: _base64_call(current, m))
    budget = [MAX_BASE64_LITERALS]

    def literal(m: re.Match[bytes]) -> bytes:
        budget[0] -= 1
        text = _base64_text(m[1]) if budget[0] >= 0 else None
        return m[0] if text is None else m[0][:1] + text + m[0][:1]

    for pattern in (BASE64_DOUBLE, BASE64_SINGLE):
        changed = data
        data, _ = pattern.subn(literal, data)
        total += data != changed
    return data, total


def _reversed(data: bytes, vb: bool) -> tuple[bytes, int]:
    low = data.lower()
    total = 0
    if b"strreverse" in low:
        current = data
        data, n = _edit(data, STR_REVERSE, lambda m: (m.start() - 1, m.end(), b'"' + m[1][::-1] + b'"')
                        if m.start() and current[m.start() - 1] in b"Ss" else None)
        total += n
    if GATE_JS_REVERSE.search(low):
        data, n = JS_REVERSE.subn(lambda m: m[1] + m[2][::-1] + m[1], data)
        total += n
    if GATE_LINQ_REVERSE.search(low):
        data, n = LINQ_REVERSE.subn(lambda m: b'"' + m[1][::-1] + b'"', data)
        total += n
    if ARRAY_REVERSE.search(data):
        data, n = CHAR_ARRAY_LITERAL.subn(lambda m: b'"' + m[1][::-1] + b'"' + m[2], data)
        total += n
    return data, total


def _decoder_calls(data: bytes, vb: bool) -> tuple[bytes, int]:
    low = data.lower()
    if not (GATE_DECODE.search(low) or GATE_UNESCAPE.search(low)):
        return data, 0
    current = data

    def unwrap(m: re.Match[bytes]) -> Edit:
        head = DECODER_HEAD.search(current, max(0, m.start() - 60), m.start())
        return (head.start() if head else m.start()), m.end(), m[1]

    return _edit(data, DECODER, unwrap)


VB_PAGE = re.compile(rb"language\s*=\s*[\"']?(?:vb|vbscript)\b")
JS_PAGE = re.compile(rb"language\s*=\s*[\"']?(?:jscript|javascript|c#|cs|csharp)\b")


def _is_vb(data: bytes, classic_asp: bool) -> bool:
    low = data.lower()
    return VB_PAGE.search(low) is not None or (classic_asp and JS_PAGE.search(low) is None)


def _gated(marker: bytes, step: StepFn) -> StepFn:
    return lambda data, vb: step(data, vb) if marker in data else (data, 0)


Step = tuple[str, StepFn]
# named steps are reported (and left out by name to tell which ones a match needed); "" steps always run
STEPS: tuple[Step, ...] = (
    ("server comments", lambda d, vb: _cut(d, b"<%--", b"--%>")),
    ("block comments", lambda d, vb: _cut(d, b"/*", b"*/")),
    ("line comments", _line_comments),
    ("line continuations", _gated(b"_", _continuations)),
    *((name, _gated(marker, step)) for name, marker, step in ESCAPE_STEPS),
    ("char codes", _char_codes),
    ("concatenation", _concatenation),
    ("base64", _base64),
    ("reversed strings", _reversed),
    ("concatenation", _concatenation),  # again: literals that decoding or reversal just produced
    ("", _decoder_calls),
)
TECHNIQUES = tuple(dict.fromkeys(name for name, _ in STEPS if name))


def normalise(data: bytes, rel: str = "", skip: frozenset[str] = frozenset()) -> PageView:
    """The page's normalised view; ``skip`` leaves named steps out (to tell which ones a match needed)."""
    view = data[:MAX_VIEW_BYTES]
    vb = _is_vb(view, rel.lower().endswith((".asp", ".asa")))
    undone: list[str] = []
    ran: dict[int, int] = {}  # step function -> changes made by all steps when it last ran
    changes = 0
    for name, step in STEPS:
        if name in skip or ran.get(id(step)) == changes:  # a repeated step with nothing new to work on
            continue
        view, count = step(view, vb)
        changes += count
        ran[id(step)] = changes
        if count and name and name not in undone:
            undone.append(name)
    return PageView(view, tuple(undone))
