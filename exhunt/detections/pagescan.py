"""Pages scanned twice: as written and as their normalised view (``pageview``).

Which pages: every file with a page suffix wherever it lies (any IIS site folder, not only the
Exchange ones: ``inetpub/wwwroot/<site>`` or a folder named in applicationHost.config alike), whose
bytes hold server-side code and something a normalisation step could undo (``worth_normalising``,
a dozen literal-prefixed regex searches over the lower-cased page: about 20 us of CPU per 1.5 KB
page measured on a loaded machine, where the raw YARA scan of the same page took about 24 us with
exhunt's pack and 100 us with signature-base added; none of the 132 shared benign pages triggers).

Only exhunt's own rules run over the view (third-party packs were not written for it), and only
pages the raw bytes did not already flag with them are normalised (such a page is reported; its view
could only add rules). For each such match the page is normalised again
without each undone step in turn: the steps whose absence loses the match are the obfuscation the
page relied on, and the finding names them (``meta.undone``). That costs one normalisation and
scan per undone step, paid only by pages whose view matched a rule the raw bytes did not.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from exhunt.artifacts.linefilter import LineSelector, PatternError, compile_patterns
from exhunt.artifacts.linefilter import cache_dir as linefilter_cache
from exhunt.artifacts.pages import PAGES_AND_CONFIG
from exhunt.detections.pageview import MAX_VIEW_BYTES, WORD, PageView, normalise
from exhunt.detections.yara import FileScanner

ENGINE = "yara_normalised"
OWN_NAMESPACE = "exhunt."
LETTER = rb"(?:[46][1-9a-f]|[57][0-9a])"  # lower-case hex of an ASCII letter
LETTER_DEC = rb"0*(?:6[5-9]|[78][0-9]|9[07-9]|1[01][0-9]|12[0-2])\b"

# --- the trigger: run on the lower-cased page --------------------------------------------------------
TRIGGER_WORDS = (b"fromcharcode", b"frombase64string", b"strreverse")
TRIGGER_RES = tuple(re.compile(p) for p in (  # one search each; patterns sharing a first byte merged
    rb"\\(?:x|u00)" + LETTER, rb"%(?:u00)?" + LETTER, rb"&#(?:x0*" + LETTER + rb"|" + LETTER_DEC + rb")",
    rb"chrw?\s*\(", rb"new\s+char\s*[\[(]",
    rb"\(\s*char\s*\)\s*\d", rb"\.\s*reverse\s*\(", rb"\*/(?:[\w\[]|\s*[.(])", rb"--%>[\w.(]",
    rb"_[ \t]*(?:\r?\n|')",
))
# literals glued mid-word ("ev" + "al", "System.Diagnostics.Pro" & "cess"): a letter, digit, _ or . on
# both sides of the joint, the left one not an escape (a long string split after "...\n" is benign)
GLUED_LITERALS = (re.compile(rb"\"\s*[+&]\s*@?\"[\w.]"), re.compile(rb"'\s*[+&]\s*'[\w.]"))
JOINT = WORD | frozenset(b".")
# a // comment whose next line goes on with .member or (args): not after ':' (http://), a quote or a word
LINE_COMMENT_SPLIT = re.compile(rb"//[^\r\n]*\r?\n\s*[.(]")
NOT_COMMENT_AFTER = frozenset(b":\"'\\/*") | WORD
GLUED_BEFORE = ((b"/*", frozenset(b")]") | WORD), (b"<%--", frozenset(b".(") | WORD))
SERVER_CODE = (b"<%", b"runat", b"msxsl:script")
# Every pattern ``_worth`` needs one of, for a Hyperscan pass before it: caseless over the page as it
# is (a match in the lower-cased page is one in the page), a superset of the glued-comment and
# mid-word tests. About 14 us of Python per page with server code became ~2 us; 214 of the 12,549
# pages of the small-pages bench pass it to the exact test (issue 19).
GATE = (*TRIGGER_WORDS, *(r.pattern for r in TRIGGER_RES), rb"[\w)\]]/\*", rb"[\w.(]<%--",
        LINE_COMMENT_SPLIT.pattern, *(r.pattern for r in GLUED_LITERALS))
_GATE: LineSelector | None = None  # per process, built at first use
_NO_GATE = False  # Hyperscan cannot load here: ``_worth`` decides alone


def is_page(rel: str) -> bool:
    return rel.lower().endswith(PAGES_AND_CONFIG)


def _glued(low: bytes, marker: bytes, before: frozenset[int], limit: int = 200) -> bool:
    """``marker`` right after one of ``before`` (a comment glued to a token), over the first ``limit``."""
    pos = low.find(marker)
    while pos != -1 and limit:
        if pos and low[pos - 1] in before:
            return True
        pos, limit = low.find(marker, pos + 1), limit - 1
    return False


def worth_normalising(data: bytes) -> bool:
    """The cheap trigger: server-side code holding something a step could undo (an escaped letter,
    glued literals, character codes, Base64 or reversal calls, a comment or continuation glued
    between tokens). Entities such as &#160;, %20 in URLs and ordinary comments do not trigger."""
    return _may_trigger(data[:MAX_VIEW_BYTES]) and _worth(data)


def _may_trigger(data: bytes) -> bool:
    """A necessary condition of ``_worth`` in one Hyperscan pass (``GATE``); True where Hyperscan
    cannot load (``_worth`` decides alone)."""
    global _GATE, _NO_GATE
    if _GATE is None and not _NO_GATE:
        try:
            _GATE = LineSelector(compile_patterns([p.decode("ascii") for p in GATE], linefilter_cache()).blob)
        except PatternError:
            _NO_GATE = True
    return _GATE is None or _GATE.any(data)


def _worth(data: bytes) -> bool:
    low = data[:MAX_VIEW_BYTES].lower()
    if not any(marker in low for marker in SERVER_CODE):
        return False
    return (any(w in low for w in TRIGGER_WORDS) or any(r.search(low) for r in TRIGGER_RES)
            or any(_glued(low, m, before) for m, before in GLUED_BEFORE)
            or _comment_splits(low)
            or any(_mid_word(low, m.start()) for r in GLUED_LITERALS for m in r.finditer(low)))


def _comment_splits(low: bytes, limit: int = 200) -> bool:
    """A // comment (not http://, "//" or a//b) followed by a line that goes on with .member or (args)."""
    match = LINE_COMMENT_SPLIT.search(low)
    while match is not None and limit:
        if match.start() == 0 or low[match.start() - 1] not in NOT_COMMENT_AFTER:
            return True
        match, limit = LINE_COMMENT_SPLIT.search(low, match.start() + 2), limit - 1
    return False


def _mid_word(low: bytes, quote: int) -> bool:
    return quote >= 2 and low[quote - 1] in JOINT and low[quote - 2] != 0x5C  # not "...\n" + "


def _own(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["rule"]: r for r in rows if str(r["namespace"]).startswith(OWN_NAMESPACE)}


def view_rows(
    scanner: FileScanner, rel: str, host: str, sha256: str, data: bytes, raw_rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``matches`` rows (engine ``yara_normalised``) for what only the normalised view revealed.
    Raises yara_x.ScanError/TimeoutError to the caller, like ``FileScanner.scan``."""
    if is_page(rel) and not _own(raw_rows) and (text := utf16_as_utf8(data)) is not None:
        return _transcoded_rows(scanner, rel, host, sha256, text)
    if not is_page(rel) or _own(raw_rows) or not worth_normalising(data):
        return []
    view = normalise(data, rel)
    if not view.undone:
        return []
    found = _own(scanner.scan_own(view.data, rel, host, sha256))
    if not found:
        return []
    needed = _needed(scanner, rel, host, sha256, data, view, set(found))
    for rule, row in found.items():
        meta = orjson.loads(row["meta"])
        meta["undone"] = needed[rule] or list(view.undone)
        row.update(engine=ENGINE, meta=orjson.dumps(meta).decode())
    return list(found.values())


def utf16_as_utf8(data: bytes) -> bytes | None:
    """A page saved as UTF-16 (with a byte-order mark, or without: NULs in every other byte of its
    head), as UTF-8; None for any other page. IIS serves such pages, and exhunt's rules, written for
    the bytes of a page, had matched none of the shared shells saved that way."""
    head = data[:256]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec = "utf-16"
    elif b"\x00" not in head:  # every other page: one memchr
        return None
    elif len(head) >= 16 and head[1::2].count(0) * 10 >= len(head[1::2]) * 9 and head[0::2].count(0) == 0:
        codec = "utf-16-le"
    elif len(head) >= 16 and head[0::2].count(0) * 10 >= len(head[0::2]) * 9 and head[1::2].count(0) == 0:
        codec = "utf-16-be"
    else:
        return None
    return data[:MAX_VIEW_BYTES * 2].decode(codec, errors="replace").encode("utf-8")


def _transcoded_rows(scanner: FileScanner, rel: str, host: str, sha256: str, text: bytes) -> list[dict[str, Any]]:
    """The own pack's matches in a UTF-16 page's UTF-8 text, and in its normalised view."""
    found = _own(scanner.scan_own(text, rel, host, sha256))
    for row in view_rows(scanner, rel, host, sha256, text, list(found.values())):
        found.setdefault(row["rule"], row)
    for row in found.values():
        meta = orjson.loads(row["meta"])
        meta["undone"] = ["utf-16", *meta.get("undone", [])]
        row.update(engine=ENGINE, meta=orjson.dumps(meta).decode())
    return list(found.values())


def _needed(scanner: FileScanner, rel: str, host: str, sha256: str, data: bytes, view: PageView,
            rules: set[str]) -> dict[str, list[str]]:
    """For each rule: the undone steps without which the view no longer matches it."""
    out: dict[str, list[str]] = {rule: [] for rule in rules}
    for step in view.undone:
        without = normalise(data, rel, frozenset({step}))
        still = _own(scanner.scan_own(without.data, rel, host, sha256))
        for rule in rules:
            if rule not in still:
                out[rule].append(step)
    return out
